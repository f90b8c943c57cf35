"""The public figures page at /cifras/, served by the gateways (the processes the internet
already reaches through the load balancer).

The page needs only plain columns (reports/public_figures.py): no key is unsealed, so it
can live on the internet side, unlike the console. It is rendered from the database at most
once per `REFRESH_SECONDS` per gateway, in a worker thread, one rendering at a time; while
the database is down the last page is served, and before any page exists a polite 503.
`python -m reports.public_figures` still writes the same page as a static file for a site
that prefers to host it elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from reports.public_figures import count_reports, min_count, public_labels, render
from reports.questions import count_questions

logger = logging.getLogger("channels.public_page")
PATH = "/cifras/"
REFRESH_SECONDS = 600.0
CACHE_HEADERS = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"}


@dataclass
class PublicPage:
    """The last rendered page and when; a lock so that one rendering runs at a time."""

    refresh_seconds: float = REFRESH_SECONDS
    html: str | None = None
    rendered_at: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def fresh(self, now: float) -> bool:
        return self.html is not None and now - self.rendered_at < self.refresh_seconds

    async def current(self, engine: Engine) -> str | None:
        """The page, rendered again when older than the refresh time; the old one (or
        None) when the database cannot be read."""
        if self.fresh(time.monotonic()):
            return self.html
        async with self.lock:
            if self.fresh(time.monotonic()):  # another request rendered it meanwhile
                return self.html
            try:
                self.html = await asyncio.to_thread(render_page, engine)
                self.rendered_at = time.monotonic()
            except Exception as error:
                logger.warning("public figures not rendered (%s); serving the last page", type(error).__name__)
        return self.html


def render_page(engine: Engine) -> str:
    return render(count_reports(engine), min_count(), datetime.now(UTC), count_questions(engine))


async def figures(request: Request) -> Response:
    page: PublicPage = request.app.state.public_page
    html = await page.current(request.app.state.gateway.engine)
    if html is None:
        text = str(public_labels()["page"]["unavailable"])
        return PlainTextResponse(text, status_code=503, headers={"Retry-After": "300"})
    return HTMLResponse(html, headers=CACHE_HEADERS)


async def to_figures(request: Request) -> Response:
    return RedirectResponse(PATH, status_code=301)


def routes() -> list[Route]:
    """/cifras/ (and /cifras, redirected); the app's state holds `public_page`."""
    return [Route(PATH, figures, methods=["GET", "HEAD"]), Route(PATH.rstrip("/"), to_figures, methods=["GET", "HEAD"])]
