"""The services directory for staff, read-only: shelters, reception centres, legal, health and
psychosocial services of content/services.yml by country, each with its 🟡/✅ mark, sources,
source date and caveat, so staff see how sure an address or number is before they give it to
someone and know which entries still need a call (`make audit` lists the same). The entries
are shown with the corrections already exported (content/service_corrections.yml); below
them, the form to propose a correction and the corrections waiting for a second person
(console/service_corrections.py)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from console import auth, service_corrections
from console.app import console_of
from console.labels import label_map
from console.service_corrections import listed, words
from hotline.countries import country_names
from hotline.services import CORRECTABLE, KINDS, SERVES, Service, load_services
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


async def page(
    request: Request, account: StaffAccount, status: int = 200, form: dict[str, str] | None = None, **context: Any
) -> Response:
    """The directory, the correction form (filled back after a refusal) and the corrections."""
    console = console_of(request)
    context.setdefault("entry_form", {})
    services = await run_in_threadpool(load_services)
    corrections = await run_in_threadpool(listed, console.engine)
    return console.render(
        request,
        "services.html",
        status,
        account=account,
        countries=by_country(services),
        total=len(services),
        kind_names=KIND_NAMES,
        serves_names=SERVES_NAMES,
        services=sorted(services.values(), key=lambda s: s.id),
        fields=[(field, words()["fields"][field]) for field in CORRECTABLE],
        field_names=words()["fields"],
        state_names=words()["states"],
        corrections=corrections,
        can_decide=auth.has_role(account.role, "supervisor"),
        form=form or {},
        country_options=country_names(),
        **context,
    )


@auth.requires("agent")
async def services_page(request: Request, account: StaffAccount) -> Response:
    done = request.query_params.get("hecho")
    message = {"propuesta": "proposed", "approved": "approved", "rejected": "rejected"}.get(done or "")
    return await page(request, account, message=str(words()[message]) if message else None)


def routes() -> list[Route]:
    return [Route("/servicios", services_page, methods=["GET"], name="services"), *service_corrections.routes()]
