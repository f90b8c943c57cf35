"""Alembic environment: the URL comes from `reports.db.upgrade()` (sqlalchemy.url) or from
HOTLINE_DATABASE_URL; SQLite gets batch mode, since it cannot ALTER most things in place."""

from __future__ import annotations

from alembic import context

from reports.config import load_settings
from reports.db import include_object, make_engine, normalize_url
from reports.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return normalize_url(config.get_main_option("sqlalchemy.url") or load_settings().database_url)


def run_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
                include_object=include_object,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
