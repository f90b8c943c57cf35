"""Console links are built from route names (console.app.link / redirect_to, the templates'
`url(...)`), never spelled out: every link in a template names a route that exists, with
the parameters it needs, and no handler builds a path by f-string."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.routing import NoMatchFound, Route

from console.app import create_console_app
from console.config import ConsoleSettings
from reports.db import make_engine

CONSOLE = Path(__file__).resolve().parent.parent / "console"
LINK_ATTRIBUTE = re.compile(r'(?:href|action|src|data-poll)="([^"]*)"')
URL_CALL = re.compile(r"\{\{ url\('(\w+)'((?:, \w+=[\w.]+)*)\) \}\}")
# Links that leave the console on purpose, each from a setting: the public figures page is a
# static page served by the public web server (reports/public_figures.py), not a route here.
OUTSIDE_THE_CONSOLE = {"{{ public_url }}"}


@pytest.fixture
def routes(tmp_path: Path) -> dict[str, set[str]]:
    """Each named console route and its path parameters."""
    settings = ConsoleSettings(database_url=f"sqlite:///{tmp_path / 'c.db'}", keys_dir=tmp_path / "keys")
    app = create_console_app(settings, engine=make_engine(settings.database_url))
    return {r.name: set(r.param_convertors) for r in app.routes if isinstance(r, Route)}


def test_every_template_link_names_an_existing_route_with_its_parameters(routes: dict[str, set[str]]) -> None:
    seen = 0
    for template in sorted((CONSOLE / "templates").glob("*.html")):
        for value in LINK_ATTRIBUTE.findall(template.read_text(encoding="utf-8")):
            if value in OUTSIDE_THE_CONSOLE:
                continue
            call = URL_CALL.fullmatch(value)
            assert call, f"{template.name}: {value!r} is not built by url(...)"
            name, arguments = call.group(1), set(re.findall(r"(\w+)=", call.group(2)))
            assert name in routes, f"{template.name}: no route named {name!r}"
            assert arguments == routes[name], f"{template.name}: {name} takes {routes[name]}, not {arguments}"
            seen += 1
    assert seen >= 40  # the console's pages do link to each other


def test_a_route_name_gives_its_path_and_needs_its_parameters(tmp_path: Path) -> None:
    settings = ConsoleSettings(database_url=f"sqlite:///{tmp_path / 'c.db'}", keys_dir=tmp_path / "keys")
    app = create_console_app(settings, engine=make_engine(settings.database_url))
    assert app.url_path_for("case", report_id="abc") == "/casos/abc"
    assert app.url_path_for("handoff_messages", handoff_id="7") == "/conversaciones/7/mensajes"
    with pytest.raises(NoMatchFound):
        app.url_path_for("case")


def test_no_handler_spells_a_console_path() -> None:
    for module in sorted(CONSOLE.glob("*.py")):
        source = module.read_text(encoding="utf-8")
        assert not re.search(r'RedirectResponse\(f"', source), module.name
        assert "base_path(request)}/" not in source, module.name
