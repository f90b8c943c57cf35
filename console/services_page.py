"""The services directory for staff, read-only: shelters, reception centres, legal, health and
psychosocial services of content/services.yml by country, each with its 🟡/✅ mark, sources,
source date and caveat, so staff see how sure an address or number is before they give it to
someone and know which entries still need a call (`make audit` lists the same). Nothing here
writes: changes go through content/services.yml and its validator (hotline/services.py)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console import auth
from console.app import console_of
from console.labels import label_map
from hotline.countries import country_names
from hotline.services import KINDS, SERVES, Service, load_services
from reports.models import StaffAccount

KIND_NAMES = label_map("services", "kinds", keys=KINDS)
SERVES_NAMES = label_map("services", "serves", keys=SERVES)


def by_country(services: dict[str, Service]) -> list[tuple[str, list[Service]]]:
    """(country name, its services by city then name), countries in content/countries.yml order."""
    names = country_names()
    grouped: dict[str, list[Service]] = {}
    for service in services.values():
        grouped.setdefault(service.country, []).append(service)
    order = [code for code in names if code in grouped]
    return [
        (names[code], sorted(grouped[code], key=lambda s: ((s.city or "").lower(), s.name.lower()))) for code in order
    ]


@auth.requires("agent")
async def services_page(request: Request, account: StaffAccount) -> Response:
    services = await run_in_threadpool(load_services)
    return console_of(request).render(
        request,
        "services.html",
        account=account,
        countries=by_country(services),
        total=len(services),
        kind_names=KIND_NAMES,
        serves_names=SERVES_NAMES,
    )


def routes() -> list[Route]:
    return [Route("/servicios", services_page, methods=["GET"], name="services")]
