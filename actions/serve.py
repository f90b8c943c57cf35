"""`python -m actions.serve --port N`: rasa-sdk's action server, answering only Rasa.

rasa-sdk answers anyone who reaches it and binds 0.0.0.0 by default. Here it binds
HOTLINE_ACTIONS_HOST (127.0.0.1 unless set: a private address in a cluster) and refuses
every call without the actions token (keys/actions.token, held by Rasa and this process
only), compared in constant time; `/health` (liveness) and `/ready` (the reports database
answers: reports/health.py) stay open. Metrics (actions/metrics.py) are served on their own
internal port when HOTLINE_METRICS_PORT is set. No CORS: no browser has business here.
"""

from __future__ import annotations

import argparse
import hmac
import logging
import os
from collections.abc import Sequence
from functools import partial
from typing import Any

from rasa_sdk.endpoint import create_app_for_serve
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic.worker.loader import AppLoader

from actions import config
from actions.metrics import MeasuredExecutor, outbox_gauges
from reports.config import load_settings
from reports.health import Readiness, database_probe, ready_answer
from reports.keys import load_actions_token
from reports.metrics import serve_metrics

logger = logging.getLogger("actions.serve")
OPEN_PATHS = frozenset({"/health", "/ready"})


def create_guarded_app() -> Sanic[Any, Any]:
    """The action server's app with the token check in front of every route but /health.
    Module level: Sanic's loader builds it again in its worker process."""
    executor = MeasuredExecutor()
    executor.register_package("actions")
    app: Sanic[Any, Any] = create_app_for_serve(executor, cors_origins=None)
    expected = f"Bearer {load_actions_token(load_settings())}".encode()

    async def only_rasa(request: Request) -> HTTPResponse | None:
        if request.path in OPEN_PATHS:
            return None
        provided = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(provided, expected):
            logger.warning("action call without the actions token refused")
            return response.json({"error": "forbidden"}, status=403)
        return None

    app.register_middleware(only_rasa, "request")
    readiness = Readiness({"database": database_probe(config.engine)})

    async def ready(request: Request) -> HTTPResponse:
        status, body = ready_answer(await readiness.states())
        return response.json(body, status=status)

    async def start_metrics(app: Sanic[Any, Any]) -> None:
        """In the worker that runs the actions (its counters), never the main process."""
        serve_metrics("actions", [outbox_gauges(config.engine)])

    app.add_route(ready, "/ready", methods=["GET"])
    app.register_listener(start_metrics, "before_server_start")
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5055)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    load_actions_token(load_settings())  # a missing token stops the start here, with its name
    loader = AppLoader(factory=partial(create_guarded_app))
    app = loader.load()
    host = os.environ.get("HOTLINE_ACTIONS_HOST", "127.0.0.1")
    app.prepare(host=host, port=args.port, workers=1, access_log=False)
    Sanic.serve(primary=app, app_loader=loader)


if __name__ == "__main__":
    main()
