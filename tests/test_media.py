"""Photos kept with a report: metadata stripped (tested on a JPEG carrying GPS EXIF),
sealed, attached to the report when it is filed, deleted when it is not; downloaded from
Twilio's and Telegram's (fake) servers over real HTTP."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import Engine, func, select

from channels.base import Media, ProviderRejected
from channels.config import load_gateway_settings
from channels.media import is_photo, without_metadata
from channels.telegram import TelegramChannel
from channels.twilio import TwilioChannel
from reports.db import transaction
from reports.models import ReportAttachment
from reports.service import ReportDraft, discard_kept_photos, file_report, forget_sender, keep_photo, open_report
from tests.db_fixtures import Keyring
from tests.fake_telegram import FakeTelegram
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

GPS_IFD = 0x8825
MAKE = 0x010F


def photo_with_gps() -> bytes:
    image = Image.new("RGB", (64, 48), (200, 30, 30))
    exif = Image.Exif()
    exif[MAKE] = "PhoneMaker-X1"
    exif[GPS_IFD] = {1: "N", 2: (14.0, 38.0, 2.0), 3: "W", 4: (90.0, 30.0, 5.0)}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def test_gps_and_camera_metadata_are_stripped() -> None:
    original = photo_with_gps()
    assert Image.open(io.BytesIO(original)).getexif().get(MAKE) == "PhoneMaker-X1"  # the test photo has them
    clean = without_metadata(original)
    assert clean is not None
    reopened = Image.open(io.BytesIO(clean))
    assert dict(reopened.getexif()) == {} and "exif" not in reopened.info and "icc_profile" not in reopened.info
    assert b"PhoneMaker" not in clean and reopened.size == (64, 48)


@pytest.mark.parametrize("content", [b"", b"not an image", b"\xff\xd8\xff\xe0 truncated jpeg"])
def test_what_is_not_a_readable_photo_is_not_kept(content: bytes) -> None:
    assert without_metadata(content) is None


def test_only_photos_are_kept() -> None:
    assert is_photo("image/jpeg") and is_photo("image/png; charset=binary")
    assert not is_photo("audio/ogg") and not is_photo("video/mp4") and not is_photo("application/pdf")


def draft(sender: str) -> ReportDraft:
    return ReportDraft("Los tienen en la bodega", "GT", None, None, None, None, "labour", None, attachments_from=sender)


def count_attachments(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(ReportAttachment)).scalar_one())


def test_kept_photos_go_with_the_filed_report_sealed(engine: Engine, keyring: Keyring) -> None:
    clean = without_metadata(photo_with_gps())
    assert clean is not None
    with transaction(engine) as session:
        keep_photo(session, "sender-a", clean, "image/jpeg", keyring.keys)
        keep_photo(session, "sender-b", clean, "image/jpeg", keyring.keys)  # someone else's draft
    with transaction(engine) as session:
        filed = file_report(session, draft("sender-a"), keyring.keys, notify_channels=())
    with engine.connect() as connection:
        stored = connection.execute(select(ReportAttachment.sealed_content)).scalars().all()
    assert all(clean not in blob and b"JFIF" not in blob for blob in stored)  # sealed, not the JPEG
    with transaction(engine) as session:
        report = open_report(session, filed.report_id, keyring.private_key)
    assert [a["content"] for a in report["attachments"]] == [clean]


def test_photos_of_a_report_not_sent_are_deleted(engine: Engine, keyring: Keyring) -> None:
    clean = without_metadata(photo_with_gps())
    assert clean is not None
    with transaction(engine) as session:
        keep_photo(session, "sender-c", clean, "image/jpeg", keyring.keys)
        keep_photo(session, "sender-d", clean, "image/jpeg", keyring.keys)
    with transaction(engine) as session:
        assert discard_kept_photos(session, "sender-c", keyring.keys) == 1
        forget_sender(session, "sender-d", keyring.keys)  # erasure
    assert count_attachments(engine) == 0


def test_a_photo_too_large_or_too_many_are_refused(engine: Engine, keyring: Keyring) -> None:
    with transaction(engine) as session, pytest.raises(ValueError):
        keep_photo(session, "sender-e", b"x" * (5 * 1024 * 1024 + 1), "image/jpeg", keyring.keys)
    with transaction(engine) as session:
        for _ in range(10):
            keep_photo(session, "sender-f", b"jpeg", "image/jpeg", keyring.keys)
        with pytest.raises(ValueError):
            keep_photo(session, "sender-f", b"jpeg", "image/jpeg", keyring.keys)


def test_twilio_media_is_read_with_the_account_credentials(tmp_path: Path) -> None:
    fake = FakeTwilio()
    fake.start()
    try:
        settings = load_gateway_settings(
            {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "HOTLINE_TWILIO_API_URL": fake.url}
        )
        url = fake.add_media(b"\xff\xd8photo", "image/jpeg")
        channel = TwilioChannel("whatsapp", settings)
        assert asyncio.run(channel.fetch_media(Media(url, "image/jpeg"))) == b"\xff\xd8photo"
        assert fake.requests[-1].basic_auth == (ACCOUNT_SID, AUTH_TOKEN)
        with pytest.raises(ProviderRejected):  # only Twilio's own media host
            asyncio.run(channel.fetch_media(Media("https://evil.example/x.jpg", "image/jpeg")))
    finally:
        fake.down()


def test_telegram_photos_are_read_through_get_file() -> None:
    token = "123456789:TEST-media"
    with FakeTelegram(token) as fake:
        fake.files["AgACphoto1"] = b"\xff\xd8telegram-photo"
        settings = load_gateway_settings({"TELEGRAM_BOT_TOKEN": token, "HOTLINE_TELEGRAM_API_URL": fake.url})
        channel = TelegramChannel(settings)

        async def fetch() -> bytes:
            try:
                return await channel.fetch_media(Media("AgACphoto1", "image/jpeg"))
            finally:
                await channel.aclose()

        assert asyncio.run(fetch()) == b"\xff\xd8telegram-photo"
        assert [c.method for c in fake.calls] == ["getFile", "file"]
