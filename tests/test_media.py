"""Photos kept with a report: only JPEG, PNG and WebP decoded, size and pixel caps read
from the header before any decoding, decoded in a separate process that holds no key,
metadata stripped (tested on photos carrying GPS EXIF), sealed, attached to the report
when it is filed, deleted when it is not; downloaded from Twilio's and Telegram's (fake)
servers over real HTTP."""

from __future__ import annotations

import asyncio
import io
import json
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import Engine, func, select

from channels.base import Media, ProviderRejected
from channels.config import load_gateway_settings
from channels.media import (
    DEFAULT_LIMITS,
    MAX_DOWNLOAD_BYTES,
    MAX_PIXELS,
    WorkerLimits,
    clean_photo,
    is_photo,
    run_worker,
    sniff,
    without_metadata,
)
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


def photo_with_gps(kind: str = "JPEG") -> bytes:
    image = Image.new("RGB", (64, 48), (200, 30, 30))
    exif = Image.Exif()
    exif[MAKE] = "PhoneMaker-X1"
    exif[GPS_IFD] = {1: "N", 2: (14.0, 38.0, 2.0), 3: "W", 4: (90.0, 30.0, 5.0)}
    out = io.BytesIO()
    image.save(out, format=kind, exif=exif.tobytes())
    return out.getvalue()


def saved(kind: str, size: tuple[int, int] = (32, 24), **options: object) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(out, format=kind, **options)
    return out.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def clean(content: bytes, limits: WorkerLimits = DEFAULT_LIMITS) -> bytes | None:
    return asyncio.run(clean_photo(content, limits))


REFUSED_FORMATS: dict[str, Callable[[], bytes]] = {
    "gif": lambda: saved("GIF"),
    "tiff": lambda: saved("TIFF"),
    "bmp": lambda: saved("BMP"),
    "ico": lambda: saved("ICO"),
    "pdf renamed .jpg": lambda: saved("PDF"),
    "psd": lambda: b"8BPS\x00\x01" + b"\x00" * 6 + struct.pack(">HIIHH", 3, 24, 32, 8, 3) + b"\x00" * 64,
    "svg": lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>',
    "heic": lambda: struct.pack(">I", 24) + b"ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64,
    "garbage": lambda: os.urandom(2048),
}


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


@pytest.mark.parametrize("name", sorted(REFUSED_FORMATS))
def test_only_jpeg_png_and_webp_are_decoded(name: str) -> None:
    content = REFUSED_FORMATS[name]()
    assert sniff(content) is None
    assert without_metadata(content) is None  # even if it reached the decoder
    assert clean(content) is None


@pytest.mark.parametrize("kind", ["JPEG", "PNG", "WEBP"])
def test_jpeg_png_and_webp_come_out_re_encoded_without_gps(kind: str) -> None:
    original = photo_with_gps(kind)
    assert sniff(original) == kind
    assert Image.open(io.BytesIO(original)).getexif().get(MAKE) == "PhoneMaker-X1"
    cleaned = clean(original)
    assert cleaned is not None and sniff(cleaned) == "JPEG"
    reopened = Image.open(io.BytesIO(cleaned))
    assert dict(reopened.getexif()) == {} and b"PhoneMaker" not in cleaned and reopened.size == (64, 48)


def test_a_header_declaring_a_huge_image_is_refused_before_decoding() -> None:
    bomb = png_declaring(50_000, 50_000)  # 2.5 gigapixels in 150 bytes
    assert len(bomb) < 200 and sniff(bomb) == "PNG"
    assert without_metadata(bomb) is None and clean(bomb) is None


def test_the_pixel_cap_is_well_below_forty_megapixels() -> None:
    assert MAX_PIXELS <= 16_000_000
    over = saved("PNG", (5000, 4000))  # 20 megapixels of one colour: a small file
    assert len(over) < MAX_DOWNLOAD_BYTES
    assert without_metadata(over) is None and clean(over) is None
    assert clean(saved("JPEG", (4000, 3000))) is not None  # a 12-megapixel phone photo


def test_truncated_and_oversized_files_are_refused() -> None:
    whole = saved("JPEG", (400, 300), quality=95)
    assert clean(whole) is not None
    assert clean(whole[: len(whole) // 2]) is None
    assert clean(saved("PNG")[:40]) is None
    assert clean(b"\xff\xd8\xff" + b"\x00" * MAX_DOWNLOAD_BYTES) is None  # over the byte cap


def test_a_worker_killed_by_its_time_or_memory_limit_refuses_and_the_next_photo_passes() -> None:
    photo = photo_with_gps()
    assert clean(photo, WorkerLimits(timeout_seconds=0.001)) is None
    assert clean(photo, WorkerLimits(memory_bytes=16 * 1024 * 1024)) is None
    assert clean(photo) is not None


def test_photos_arriving_together_are_all_decoded() -> None:
    async def together() -> list[bytes | None]:
        return await asyncio.gather(*(clean_photo(photo_with_gps(kind)) for kind in ["JPEG", "PNG", "WEBP"] * 2))

    assert all(c is not None and sniff(c) == "JPEG" for c in asyncio.run(together()))


def test_decoding_runs_in_another_process_that_holds_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_TRACKER_KEY", "a-secret-that-must-not-cross")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "another-secret")
    report = asyncio.run(run_worker(b"", DEFAULT_LIMITS, "--describe"))
    assert report is not None
    worker = json.loads(report)
    assert worker["pid"] != os.getpid()
    assert set(worker["environ"]) <= {"LC_CTYPE"}  # set by Python itself (PEP 538): no key, token or URL
    loaded = {name.split(".")[0] for name in worker["modules"]}
    assert "PIL" in loaded and not loaded & {"channels", "reports", "console", "nacl", "sqlalchemy", "httpx"}
    assert worker["memory_limit"] == DEFAULT_LIMITS.memory_bytes


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
