"""What the actions may believe about a message: only what the channel gateway signed.

A message's metadata names its channel and a sealed reply address (`reply_to`). Anyone who
reaches Rasa, or who holds the staff public key, could write those; only the gateway can
sign them (hotline.edge). Metadata without a valid proof is ignored, logged without content
and written to the staff audit log, so a forged "consenting" report or hand-off never makes
staff text a number an attacker chose.
"""

from __future__ import annotations

import logging

from rasa_sdk import Tracker

from actions.config import edge_key, engine
from hotline.edge import ForgedMetadata, verify_metadata
from reports.db import transaction
from reports.models import AuditEntry, utcnow

logger = logging.getLogger(__name__)


def trusted_metadata(tracker: Tracker) -> dict[str, str]:
    """The latest message's channel and reply_to when the gateway vouched for them, else {}."""
    metadata = tracker.latest_message.get("metadata") or {}
    try:
        return verify_metadata(edge_key(), tracker.sender_id, metadata)
    except ForgedMetadata as forged:
        logger.warning("message metadata without the gateway's valid proof ignored (%s)", forged)
        record_forgery(str(forged))
        return {}


def record_forgery(reason: str) -> None:
    """An audit row for staff: something inside our walls sent metadata the edge did not make."""
    try:
        with transaction(engine()) as session:
            session.add(AuditEntry(at=utcnow(), actor="actions", action="forged_metadata", detail=reason[:300]))
    except Exception as error:  # the audit row is evidence, not a condition for answering
        logger.error("audit of forged metadata failed (%s)", type(error).__name__)
