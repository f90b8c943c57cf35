"""End to end through the gateway, Rasa and the action server: while a person writes a
report, only a real JPEG, PNG or WebP is kept with it; a GIF sent as a JPEG, a header
declaring a gigapixel image and a truncated JPEG get the polite "media received" answer and
leave nothing behind. Twilio's media host is a local fake."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from channels.core import gateway_text
from channels.media import sniff
from scripts.stack import Stack
from tests.fake_twilio import FakeTwilio
from tests.reporting import opened, report_ids
from tests.test_e2e_gateway import new_phone, sms_form, twilio_post, twiml_messages
from tests.test_media import MAKE, photo_with_gps, png_declaring, saved

pytestmark = pytest.mark.rasa


def photo_form(fake_twilio: FakeTwilio, phone: str, content: bytes, content_type: str) -> dict[str, str]:
    form = {**sms_form(phone, ""), "NumMedia": "1", "MediaUrl0": fake_twilio.add_media(content, content_type)}
    form["MediaContentType0"] = content_type
    return form


def test_only_real_photos_are_kept_with_a_report(client: httpx.Client, stack: Stack, fake_twilio: FakeTwilio) -> None:
    phone = "whatsapp:" + new_phone()
    before = report_ids(stack)
    for text in ("quiero denunciar", "Los tienen encerrados en esta casa"):
        twilio_post(client, stack, "whatsapp", sms_form(phone, text))
    refused = {
        "a GIF sent as a JPEG": saved("GIF"),
        "a 2.5-gigapixel PNG header": png_declaring(50_000, 50_000),
        "a truncated JPEG": saved("JPEG", (400, 300))[:300],
    }
    for name, content in refused.items():
        form = photo_form(fake_twilio, phone, content, "image/jpeg")
        assert twiml_messages(twilio_post(client, stack, "whatsapp", form)) == [gateway_text("media_received")], name
    webp = photo_form(fake_twilio, phone, photo_with_gps("WEBP"), "image/webp")
    assert gateway_text("photo_kept") in twiml_messages(twilio_post(client, stack, "whatsapp", webp))
    for text in ("listo", "guatemala", "saltar", "saltar", "saltar", "no", "2", "no", "no", "si"):
        twilio_post(client, stack, "whatsapp", sms_form(phone, text))
    (report_id,) = [r for r in report_ids(stack) if r not in before]
    (attachment,) = opened(stack, report_id)["attachments"]  # the WebP only
    assert sniff(attachment["content"]) == "JPEG"
    kept = Image.open(io.BytesIO(attachment["content"]))
    assert kept.size == (64, 48) and kept.getexif().get(MAKE) is None and dict(kept.getexif()) == {}
