"""New database connections made again while a PostgreSQL restarts or fails over.

Shared by both environments (SQLAlchemy 1.4 in Rasa's, 2 in ours): the reports engines
(reports/db.py) and Rasa's tracker store (rasa_plugins/tracker_store.py)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event

CONNECT_RETRY_SECONDS = 5.0  # a PostgreSQL restart or failover refuses connections this long


def retry_connections(engine: Any, budget: float = CONNECT_RETRY_SECONDS) -> None:
    """Each new connection is tried again for up to `budget` seconds before the error
    reaches the caller. Nothing has been sent on a connection not yet made, so trying again
    is always safe; with pre-ping, a pooled connection a restart cut is replaced this way."""

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        dbapi = getattr(dialect, "loaded_dbapi", None) or dialect.dbapi  # SQLAlchemy 2 or 1.4
        deadline = time.monotonic() + budget
        delay = 0.05
        while True:
            try:
                return dialect.connect(*cargs, **cparams)
            except dbapi.OperationalError:
                if time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)  # back-off between connection attempts
                delay = min(delay * 2, 0.5)
