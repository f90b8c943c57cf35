"""The gateway's Prometheus metrics (served by reports.metrics on HOTLINE_METRICS_PORT).

Labels take values from the fixed sets below only: a channel outside CHANNELS counts as
"other", and nothing a person sends (their number, chat id, pseudonym or text) is ever a
label. Gauges of shared state (held messages, open hand-offs) are read from the database
at scrape time: every gateway reports the same numbers (take max, not sum)."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import Engine, func, select

from reports.db import transaction
from reports.metrics import DatabaseGauges, bound_statement, gauge
from reports.models import Handoff, PendingMessage, utcnow

CHANNELS = ("sms", "whatsapp", "telegram", "simulator")
VIAS = ("webhook", "api", "template")  # in the webhook's answer (TwiML), through the channel's API, a WhatsApp template
EMERGENCY_HOW = ("lexicon", "rasa", "fallback")
FALLBACK_REASONS = ("slow", "failed", "unavailable")
HELD_BACK_REASONS = ("flood", "opted_out")
REJECTION_STATUSES = ("400", "403", "413")
RASA_CALLS = ("message", "tracker", "events")
RASA_OUTCOMES = ("ok", "timeout", "unavailable", "error")
ERROR_PLACES = ("pipeline", "background", "send")
HANDOFF_OPEN_STATES = ("waiting", "live")

MESSAGES_IN = Counter("hotline_gateway_messages_in", "Messages received from people", ["channel"])
MESSAGES_OUT = Counter("hotline_gateway_messages_out", "Messages sent to people", ["channel", "via"])
EMERGENCY_ANSWERS = Counter(
    "hotline_gateway_emergency_answers",
    "Answers carrying the emergency numbers to a message read as an emergency, or that Rasa answered so: "
    "lexicon (the gateway added them), rasa (Rasa's answer had them), fallback (Rasa or the pipeline failed)",
    ["channel", "how"],
)
FALLBACK_ANSWERS = Counter(
    "hotline_gateway_fallback_answers",
    "The gateway's own answers when the assistant could not answer in time",
    ["channel", "reason"],
)
HELD_BACK = Counter(
    "hotline_gateway_held_back", "Messages not taken to Rasa (flood guard, opted out)", ["channel", "reason"]
)
DUPLICATES = Counter("hotline_gateway_duplicates", "Deliveries dropped as seen before", ["channel"])
WEBHOOK_REJECTIONS = Counter(
    "hotline_gateway_webhook_rejections",
    "Webhook requests refused (403 signature, 400 malformed, 413 too large)",
    ["channel", "status"],
)
RASA_SECONDS = Histogram(
    "hotline_gateway_rasa_seconds",
    "Duration of calls to the Rasa server",
    ["call", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0),
)
ERRORS = Counter("hotline_gateway_errors", "Errors caught by the gateway (logged without content)", ["where"])
SCRAPE_FAILURES = Counter("hotline_gateway_metrics_query_failures", "Scrapes whose database gauges failed")


def channel(name: str) -> str:
    """A channel name as a label: one of CHANNELS, else "other"."""
    return name if name in CHANNELS else "other"


def _initialise() -> None:
    """Every label combination starts at 0: rates and alerts work before the first event."""
    for name in (*CHANNELS, "other"):
        MESSAGES_IN.labels(name)
        DUPLICATES.labels(name)
        for via in VIAS:
            MESSAGES_OUT.labels(name, via)
        for how in EMERGENCY_HOW:
            EMERGENCY_ANSWERS.labels(name, how)
        for reason in FALLBACK_REASONS:
            FALLBACK_ANSWERS.labels(name, reason)
        for reason in HELD_BACK_REASONS:
            HELD_BACK.labels(name, reason)
        for status in REJECTION_STATUSES:
            WEBHOOK_REJECTIONS.labels(name, status)
    for call in RASA_CALLS:
        for outcome in RASA_OUTCOMES:
            RASA_SECONDS.labels(call, outcome)
    for where in ERROR_PLACES:
        ERRORS.labels(where)


_initialise()


def state_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    return (
        gauge("hotline_gateway_held_messages", "Messages kept while Rasa was down, not yet answered"),
        gauge("hotline_gateway_held_oldest_seconds", "Age of the oldest kept message (0 when none)"),
        gauge("hotline_gateway_open_handoffs", "Hand-offs waiting for a person or live", ["state"]),
    )


def read_state(engine: Engine, now: datetime | None = None) -> list[Metric]:
    """Held messages and open hand-offs, from the shared database (counts only)."""
    now = now or utcnow()
    held, oldest, handoffs = state_families()
    with transaction(engine) as session:
        bound_statement(session)
        count = session.scalar(select(func.count()).select_from(PendingMessage)) or 0
        first = session.scalar(select(func.min(PendingMessage.received_at)))
        rows = session.execute(
            select(Handoff.state, func.count()).where(Handoff.state.in_(HANDOFF_OPEN_STATES)).group_by(Handoff.state)
        ).all()
    held.add_metric([], count)
    oldest.add_metric([], max(0.0, (now - first).total_seconds()) if first else 0.0)
    by_state = {str(state): int(n) for state, n in rows}
    for state in HANDOFF_OPEN_STATES:
        handoffs.add_metric([state], by_state.get(state, 0))
    return [held, oldest, handoffs]


def state_gauges(engine: Engine) -> DatabaseGauges:
    return DatabaseGauges(read_state, lambda: engine, lambda: list(state_families()), SCRAPE_FAILURES)
