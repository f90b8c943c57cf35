"""The action server's Prometheus metrics (served by reports.metrics on HOTLINE_METRICS_PORT
from the Sanic worker that runs the actions).

Labels: action names (fixed: the actions this package registers; anything else counts as
"unknown"), report priorities (reports/triage.py), outcomes. The alert outbox gauges are
read from the reports database at scrape time: every action server reports the same
numbers (take max, not sum)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection, ActionNotFoundException
from sqlalchemy import Engine, func, select

from reports.db import transaction
from reports.metrics import DatabaseGauges, bound_statement, gauge
from reports.models import Notification, utcnow
from reports.notify import MAX_ATTEMPTS

PRIORITIES = ("urgent", "high", "normal")
ACTION_OUTCOMES = ("ok", "rejected", "error")
OUTBOX_STATES = ("pending", "failed", "given_up")  # given_up: failed MAX_ATTEMPTS times, a person must look

REPORTS_FILED = Counter("hotline_actions_reports_filed", "Reports filed (sealed, with a case code)", ["priority"])
REPORTS_FAILED = Counter("hotline_actions_report_filing_failures", "Reports that could not be filed (database)")
ACTION_RUNS = Counter("hotline_actions_runs", "Custom action runs", ["action", "outcome"])
ACTION_SECONDS = Histogram(
    "hotline_actions_seconds",
    "Duration of custom action runs",
    ["action"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
)
SCRAPE_FAILURES = Counter("hotline_actions_metrics_query_failures", "Scrapes whose database gauges failed")

for _priority in PRIORITIES:
    REPORTS_FILED.labels(_priority)


class MeasuredExecutor(ActionExecutor):
    """rasa-sdk's executor, counting and timing each run by action name."""

    def register_package(self, package: Any) -> None:
        super().register_package(package)
        for name in self.actions:  # every known action starts at 0
            ACTION_SECONDS.labels(name)
            for outcome in ACTION_OUTCOMES:
                ACTION_RUNS.labels(name, outcome)

    async def run(self, action_call: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        requested = action_call.get("next_action")
        name = requested if isinstance(requested, str) and requested in self.actions else "unknown"
        started, outcome = time.monotonic(), "error"
        try:
            result = await super().run(action_call, *args, **kwargs)
            outcome = "ok"
            return result
        except (ActionExecutionRejection, ActionNotFoundException):
            outcome = "rejected"
            raise
        finally:
            ACTION_RUNS.labels(name, outcome).inc()
            ACTION_SECONDS.labels(name).observe(time.monotonic() - started)


def outbox_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    return (
        gauge("hotline_alert_outbox_notifications", "Staff alerts not sent, by state", ["state"]),
        gauge("hotline_alert_outbox_oldest_seconds", "Age of the oldest staff alert still to send (0 when none)"),
    )


def read_outbox(engine: Engine) -> list[Metric]:
    """The staff alert outbox (reports/notify.py): counts by state and the oldest still due."""
    now = utcnow()
    depth, oldest = outbox_families()
    given_up = (Notification.status == "failed") & (Notification.attempts >= MAX_ATTEMPTS)
    due = Notification.status.in_(("pending", "failed")) & (Notification.attempts < MAX_ATTEMPTS)
    with transaction(engine) as session:
        bound_statement(session)
        rows = session.execute(select(Notification.status, func.count()).where(due).group_by(Notification.status)).all()
        stuck = session.scalar(select(func.count()).select_from(Notification).where(given_up)) or 0
        first = session.scalar(select(func.min(Notification.created_at)).where(due))
    counts = {str(status): int(n) for status, n in rows}
    counts["given_up"] = int(stuck)
    for state in OUTBOX_STATES:
        depth.add_metric([state], counts.get(state, 0))
    oldest.add_metric([], max(0.0, (now - first).total_seconds()) if first else 0.0)
    return [depth, oldest]


def outbox_gauges(engine: Any) -> DatabaseGauges:
    """`engine`: a callable giving the action server's engine (made on first use)."""
    return DatabaseGauges(read_outbox, engine, lambda: list(outbox_families()), SCRAPE_FAILURES)
