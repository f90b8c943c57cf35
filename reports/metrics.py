"""Prometheus metrics shared by every process of the app environment (gateway, actions,
console): where each serves them, and gauges read from the database at scrape time.

Each process serves its metrics on its own internal port, never on its public one:
HOTLINE_METRICS_PORT (unset: no metrics server, as in `make run`) on HOTLINE_METRICS_HOST
(127.0.0.1 unless set: a private address in a cluster, never the internet). Every label
value comes from a fixed set written in code (a channel name, a priority, an action name):
a pseudonym, a number or a message text never becomes a label. This module stays out of
hotline/: the Rasa environment imports that, and has no prometheus-client.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from prometheus_client import REGISTRY, Counter, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

logger = logging.getLogger("reports.metrics")

SCRAPE_QUERY_SECONDS = 1.0  # a scrape never waits longer than this on the database
_STARTED: set[int] = set()  # ports this process already serves (a second start is a no-op)


@dataclass(frozen=True)
class MetricsAddress:
    host: str
    port: int


def metrics_address(env: Mapping[str, str] = os.environ) -> MetricsAddress | None:
    """HOTLINE_METRICS_HOST / HOTLINE_METRICS_PORT; None when the port is unset (no server).
    A bad port stops the start-up with the variable's name rather than running unwatched."""
    raw = env.get("HOTLINE_METRICS_PORT", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"HOTLINE_METRICS_PORT must be a port number (1-65535), not {raw!r}")
    host = env.get("HOTLINE_METRICS_HOST", "").strip() or "127.0.0.1"
    return MetricsAddress(host, int(raw))


def serve_metrics(role: str, collectors: Sequence[Collector] = (), env: Mapping[str, str] = os.environ) -> bool:
    """Serve this process's metrics (prometheus_client's own HTTP server, in a thread) when
    HOTLINE_METRICS_PORT is set, with `collectors` (database gauges) registered. Returns
    whether a server runs."""
    address = metrics_address(env)
    if address is None:
        return False
    if address.port in _STARTED:
        return True
    for collector in collectors:
        REGISTRY.register(collector)
    start_http_server(address.port, addr=address.host)
    _STARTED.add(address.port)
    logger.info("%s metrics on http://%s:%d/metrics", role, address.host, address.port)
    return True


def bound_statement(session: Session, milliseconds: int = int(SCRAPE_QUERY_SECONDS * 1000)) -> None:
    """PostgreSQL stops a metrics query that runs longer than this (SQLite has no such limit;
    the caller's timeout covers it)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL statement_timeout = {int(milliseconds)}"))


class DatabaseGauges(Collector):
    """Gauges computed from the database when Prometheus scrapes (the outbox, held messages,
    open hand-offs): one cheap query, in a worker thread, at most SCRAPE_QUERY_SECONDS. A
    query that fails or hangs gives no sample (alert on their absence) and counts an error;
    a hung one is not started again until it ends."""

    def __init__(
        self,
        read: Callable[[Engine], list[Metric]],
        engine: Callable[[], Engine],
        empty: Callable[[], list[Metric]],
        failures: Counter,
        timeout: float = SCRAPE_QUERY_SECONDS,
    ) -> None:
        self.read, self.engine, self.empty, self.failures, self.timeout = read, engine, empty, failures, timeout
        self._running: Future[list[Metric]] | None = None

    def describe(self) -> Iterable[Metric]:
        """The families without samples: registering must not query the database."""
        return self.empty()

    def collect(self) -> Iterator[Metric]:
        if self._running is None or self._running.done():
            self._running = self._start()
        try:
            families = self._running.result(timeout=self.timeout)
        except Exception as error:  # TimeoutError or the database's own: no sample this time
            self.failures.inc()
            logger.warning("metrics query failed (%s)", type(error).__name__)
            return
        yield from families

    def _start(self) -> Future[list[Metric]]:
        """The query in a daemon thread: one that hangs never holds the process at exit."""
        future: Future[list[Metric]] = Future()

        def run() -> None:
            try:
                future.set_result(self.read(self.engine()))
            except Exception as error:
                future.set_exception(error)

        threading.Thread(target=run, name="metrics-db", daemon=True).start()
        return future


def gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=list(labels) if labels else None)
