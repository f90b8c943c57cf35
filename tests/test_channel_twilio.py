"""The Twilio channel (SMS and WhatsApp): signatures against the public URL, recorded webhook
payloads run through one table (courier's IncomingTestCase), SMS splitting, TwiML, and
sending against a real local fake of Twilio's REST API (tests/fake_twilio.py)."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import secrets
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from sqlalchemy import Engine, text
from starlette.requests import Request
from twilio.request_validator import RequestValidator

import channels.base
from channels import provider_cleanup
from channels.app import DRAIN_EVERY_SECONDS
from channels.base import (
    BadRequest,
    ChannelError,
    ConfigError,
    ConnectionFailed,
    ContactStopped,
    InboundMessage,
    InvalidSignature,
    Media,
    OutsideWindow,
    ProviderRejected,
    Reply,
    SendError,
    SendResult,
    Throttled,
)
from channels.config import GatewaySettings
from channels.sms_split import split_sms, split_text
from channels.twilio import SMS, WEBHOOK_PATHS, WHATSAPP, TwilioChannel, twilio_channels
from hotline.sms import is_gsm7, segment_count, to_gsm7, ucs2_units
from reports.db import make_engine
from scripts.stack import Stack
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, Recorded, running_fake_twilio

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PUBLIC_URL = "https://hotline.example.org"
INTERNAL = ("127.0.0.1", 8000)  # what uvicorn sees behind the proxy
FORM = "application/x-www-form-urlencoded"
HOTLINE_NUMBER = "+50222220000"
PERSON = "+50255501234"
WA_PERSON = "whatsapp:" + PERSON
SETTINGS = GatewaySettings(
    public_url=PUBLIC_URL,
    rasa_urls=("http://127.0.0.1:5005",),
    database_url="sqlite://",
    keys_dir=Path("/nonexistent"),
    twilio_account_sid=ACCOUNT_SID,
    twilio_auth_token=AUTH_TOKEN,
    twilio_sms_from=HOTLINE_NUMBER,
    twilio_whatsapp_from="whatsapp:" + HOTLINE_NUMBER,
)

SPANISH = (
    "¡Hola! ¿Sabías que tenés derechos, señora, aunque no tengás papeles? Nadie puede quitarte tu pasaporte ni "
    "tu documento de identidad. Si tu empleador te obliga a trabajar para pagar una deuda, eso es "
    "un delito. ¡No estás sola! Podés pedir ayuda en el albergue más cercano, también de noche. "
    "La atención es gratuita y confidencial; nadie va a preguntar por tu situación migratoria. "
    "Escribí MENÚ para ver las opciones o AYUDA si estás en peligro ahora mismo. "
)


# -- requests ------------------------------------------------------------------------------


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes().rstrip(b"\r\n")


def form_fields(body: bytes) -> list[tuple[str, str]]:
    """The fields Twilio signed: its form values (undecodable bytes as U+FFFD)."""
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, errors="replace")


def sign(url: str, body: bytes, token: str = AUTH_TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, dict(form_fields(body))))


def webhook_request(
    path: str,
    body: bytes,
    signature: str | None,
    *,
    content_type: str = FORM,
    query: bytes = b"",
) -> Request:
    """The request as uvicorn hands it over behind the proxy: http://127.0.0.1:8000<path>."""
    headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", content_type.encode())]
    if signature is not None:
        headers.append((b"x-twilio-signature", signature.encode()))
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "server": INTERNAL,
        "client": ("127.0.0.1", 40000),
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": headers,
    }

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)


def signed_request(channel: str, body: bytes, how: str) -> Request:
    path = WEBHOOK_PATHS[channel]
    if how == "valid":
        return webhook_request(path, body, sign(PUBLIC_URL + path, body))
    if how == "invalid":
        return webhook_request(path, body, sign(PUBLIC_URL + path, body, token="not-the-auth-token"))
    return webhook_request(path, body, None)


async def verify_and_parse(channel: TwilioChannel, request: Request, body: bytes) -> list[InboundMessage]:
    await channel.verify(request, body)
    return await channel.parse_inbound(request, body)


# -- the table of recorded payloads --------------------------------------------------------


@dataclass(frozen=True)
class Case:
    label: str
    fixture: str
    channel: str
    expect: list[InboundMessage] | type[ChannelError]
    sign: str = "valid"  # valid | invalid | missing


def sms(sid: str, text: str, *media: Media) -> list[InboundMessage]:
    return [InboundMessage(SMS, PERSON, text, delivery_id=sid, media=media)]


def wa(sid: str, text: str, *media: Media) -> list[InboundMessage]:
    return [InboundMessage(WHATSAPP, WA_PERSON, text, delivery_id=sid, media=media)]


MEDIA = "https://api.twilio.com/2010-04-01/Accounts/ACtestaccount00000000000000000000/Messages"
MESSAGE_CASES = [
    Case(
        "sms accents",
        "twilio/sms_accents.txt",
        SMS,
        sms("SM0a1b2c3d4e5f60718293a4b5c6d7e8f9", "¿Dónde está el albergue? ¡Necesito ayuda, señora!"),
    ),
    Case(
        "sms emoji",
        "twilio/sms_emoji.txt",
        SMS,
        sms("SM1b2c3d4e5f60718293a4b5c6d7e8f90a", "Gracias 🙏 por la información"),
    ),
    Case("sms empty body", "twilio/sms_empty_body.txt", SMS, sms("SM2c3d4e5f60718293a4b5c6d7e8f90a1b", "")),
    Case(
        "mms image",
        "twilio/mms_image.txt",
        SMS,
        sms(
            "MM3d4e5f60718293a4b5c6d7e8f90a1b2c",
            "Mire esta foto",
            Media(f"{MEDIA}/MM3d4e5f60718293a4b5c6d7e8f90a1b2c/Media/ME4e5f60718293a4b5c6d7e8f90a1b2c3d", "image/jpeg"),
        ),
    ),
    Case(
        "sms not utf-8",
        "twilio/sms_latin1.txt",
        SMS,
        sms("SMd7e8f90a1b2c3d4e5f60718293a4b5c6", "caf\ufffd se\ufffdora \ufffd"),
    ),
    Case(
        "whatsapp text",
        "whatsapp/text.txt",
        WHATSAPP,
        wa("SM8293a4b5c6d7e8f90a1b2c3d4e5f6071", "Hola, ¿qué papeles llevo? 😟"),
    ),
    Case("whatsapp button", "whatsapp/button.txt", WHATSAPP, wa("SM93a4b5c6d7e8f90a1b2c3d4e5f607182", "1")),
    Case(
        "whatsapp media",
        "whatsapp/media.txt",
        WHATSAPP,
        wa(
            "MMb5c6d7e8f90a1b2c3d4e5f60718293a4",
            "",
            Media(f"{MEDIA}/MMb5c6d7e8f90a1b2c3d4e5f60718293a4/Media/ME0c6d7e8f90a1b2c3d4e5f60718293a4b", "image/jpeg"),
            Media(f"{MEDIA}/MMb5c6d7e8f90a1b2c3d4e5f60718293a4/Media/ME1d7e8f90a1b2c3d4e5f60718293a4b5c", "audio/ogg"),
        ),
    ),
]
OTHER_CASES = [
    Case("status delivered", "twilio/status_delivered.txt", SMS, []),
    Case("status failed 21610", "twilio/status_failed_21610.txt", SMS, []),
    Case("whatsapp status read", "whatsapp/status_read.txt", WHATSAPP, []),
    Case("status forged", "twilio/status_failed_21610.txt", SMS, InvalidSignature, sign="invalid"),
    Case("malformed: no MessageSid", "twilio/malformed_no_sid.txt", SMS, BadRequest),
    Case("whatsapp sender on the sms channel", "whatsapp/text.txt", SMS, BadRequest),
    Case("sms sender on the whatsapp channel", "twilio/sms_accents.txt", WHATSAPP, BadRequest),
]
CASES = [
    *(
        replace(
            case, label=f"{case.label} ({how})", sign=how, expect=case.expect if how == "valid" else InvalidSignature
        )
        for case in MESSAGE_CASES
        for how in ("valid", "invalid", "missing")
    ),
    *OTHER_CASES,
]


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_incoming(case: Case) -> None:
    channel = TwilioChannel(case.channel, SETTINGS)
    body = fixture(case.fixture)
    request = signed_request(case.channel, body, case.sign)
    if isinstance(case.expect, list):
        assert asyncio.run(verify_and_parse(channel, request, body)) == case.expect
    else:
        with pytest.raises(case.expect):
            asyncio.run(verify_and_parse(channel, request, body))


def test_whatsapp_profile_fields_are_not_kept() -> None:
    body = fixture("whatsapp/text.txt")
    assert b"ProfileName=Mar%C3%ADa" in body and b"WaId=50255501234" in body  # the fixture has them
    messages = asyncio.run(
        verify_and_parse(twilio_channels(SETTINGS)[WHATSAPP], signed_request(WHATSAPP, body, "valid"), body)
    )
    assert len(messages) == 1
    assert "María" not in repr(messages) and "López" not in repr(messages)


@pytest.mark.parametrize("status", ["sent", "undelivered", "partially_delivered", "some_new_status"])
def test_any_status_but_received_is_a_status_callback(status: str) -> None:
    """A callback about our own message (From is the hotline) must never become a message,
    even with a Body or a status Twilio adds later."""
    body = fixture("twilio/sms_accents.txt").replace(b"SmsStatus=received", f"SmsStatus={status}".encode())
    assert f"SmsStatus={status}".encode() in body
    assert asyncio.run(verify_and_parse(TwilioChannel(SMS, SETTINGS), signed_request(SMS, body, "valid"), body)) == []


def test_a_signed_body_changed_afterwards_is_refused() -> None:
    body = fixture("twilio/sms_accents.txt")
    request = signed_request(SMS, body, "valid")
    tampered = body.replace(b"albergue", b"alberge")
    with pytest.raises(InvalidSignature):
        asyncio.run(TwilioChannel(SMS, SETTINGS).verify(request, tampered))


# -- the public URL behind the proxy -------------------------------------------------------


def test_signature_for_the_public_url_is_valid_behind_the_proxy() -> None:
    body = fixture("twilio/sms_accents.txt")
    path = WEBHOOK_PATHS[SMS]
    request = webhook_request(path, body, sign("https://hotline.example.org/webhooks/twilio/sms", body))
    assert str(request.url) == "http://127.0.0.1:8000/webhooks/twilio/sms"  # what uvicorn sees
    channel = TwilioChannel(SMS, SETTINGS)
    assert channel.public_url(request) == "https://hotline.example.org/webhooks/twilio/sms"
    asyncio.run(channel.verify(request, body))


def test_signature_for_the_internal_url_is_refused() -> None:
    body = fixture("twilio/sms_accents.txt")
    path = WEBHOOK_PATHS[SMS]
    request = webhook_request(path, body, sign("http://127.0.0.1:8000/webhooks/twilio/sms", body))
    with pytest.raises(InvalidSignature):
        asyncio.run(TwilioChannel(SMS, SETTINGS).verify(request, body))


def test_the_query_string_is_part_of_the_signed_url() -> None:
    body = fixture("twilio/sms_accents.txt")
    path = WEBHOOK_PATHS[SMS]
    channel = TwilioChannel(SMS, SETTINGS)
    good = webhook_request(path, body, sign(f"{PUBLIC_URL}{path}?line=gt", body), query=b"line=gt")
    asyncio.run(channel.verify(good, body))
    without = webhook_request(path, body, sign(f"{PUBLIC_URL}{path}", body), query=b"line=gt")
    with pytest.raises(InvalidSignature):
        asyncio.run(channel.verify(without, body))


@pytest.mark.parametrize("token", [None, ""])
def test_no_auth_token_never_means_accept_everything(token: str | None) -> None:
    body = fixture("twilio/sms_accents.txt")
    path = WEBHOOK_PATHS[SMS]
    request = webhook_request(path, body, sign(PUBLIC_URL + path, body, token=""))
    channel = TwilioChannel(SMS, replace(SETTINGS, twilio_auth_token=token))
    with pytest.raises(InvalidSignature):
        asyncio.run(channel.verify(request, body))


def test_only_form_encoded_bodies_are_parsed() -> None:
    body = b'{"From": "+50255501234", "Body": "hola", "MessageSid": "SM1"}'
    request = webhook_request(WEBHOOK_PATHS[SMS], body, "x", content_type="application/json")
    with pytest.raises(BadRequest):
        asyncio.run(TwilioChannel(SMS, SETTINGS).parse_inbound(request, body))
    with pytest.raises(InvalidSignature):  # and it is no signed form either
        asyncio.run(TwilioChannel(SMS, SETTINGS).verify(request, body))


def test_an_oversized_body_is_refused() -> None:
    body = fixture("twilio/sms_accents.txt") + b"&Padding=" + b"x" * 70_000
    request = signed_request(SMS, body, "valid")
    with pytest.raises(BadRequest):
        asyncio.run(TwilioChannel(SMS, SETTINGS).parse_inbound(request, body))


def test_form_charset_parameter_is_accepted() -> None:
    body = fixture("twilio/sms_accents.txt")
    path = WEBHOOK_PATHS[SMS]
    request = webhook_request(path, body, sign(PUBLIC_URL + path, body), content_type=f"{FORM}; charset=utf-8")
    assert asyncio.run(verify_and_parse(TwilioChannel(SMS, SETTINGS), request, body)) == MESSAGE_CASES[0].expect


# -- splitting -----------------------------------------------------------------------------


def spanish(chars: int) -> str:
    text = (SPANISH * (chars // len(SPANISH) + 1))[:chars]
    return text.rsplit(" ", 1)[0]  # end on a whole word


@pytest.mark.parametrize(("chars", "parts_expected"), [(200, 1), (400, 2), (1000, 4)])
def test_split_sms_spanish(chars: int, parts_expected: int) -> None:
    folded = to_gsm7(spanish(chars))
    assert is_gsm7(folded) and "á" not in folded and "¿" in folded and "¡" in folded and "ñ" in spanish(chars)
    parts = split_sms(folded)
    assert len(parts) == parts_expected
    assert all(segment_count(part) <= 2 and is_gsm7(part) for part in parts)
    assert " ".join(parts).split() == folded.split()  # nothing lost, no word cut
    for part, following in itertools.pairwise(parts):
        assert segment_count(f"{part} {following.split()[0]}") > 2  # each part is as full as it can be


def test_split_sms_keeps_spanish_gsm7_letters() -> None:
    folded = to_gsm7("¡Señora! ¿Está en peligro? Pídale ayuda a la Policía")
    assert folded == "¡Señora! ¿Esta en peligro? Pidale ayuda a la Policia"
    assert split_sms(folded) == [folded]
    assert segment_count(folded) == 1


def test_split_sms_counts_emoji_as_ucs2() -> None:
    text = "Estamos con vos 🙏 " + "escribinos cuando quieras " * 5  # 150 characters: 1 GSM-7 segment, 3 UCS-2
    assert segment_count(text.replace("🙏", "")) == 1 and segment_count(text.strip()) == 3
    parts = split_sms(text)
    assert len(parts) == 2
    assert not is_gsm7(parts[0]) and ucs2_units(parts[0]) <= 2 * 67
    assert all(segment_count(part) <= 2 for part in parts)
    assert " ".join(parts).split() == text.split()


def test_split_sms_extension_characters_cost_two() -> None:
    text = "€" * 160  # 320 septets: three segments
    parts = split_sms(text)
    assert parts == ["€" * 153, "€" * 7]


def test_split_sms_hard_splits_only_an_overlong_word() -> None:
    link = "https://hotline.example.org/" + "a" * 400
    parts = split_sms(f"Mira {link} ahora")
    assert "".join(parts).replace(" ", "") == f"Mira{link}ahora"
    assert all(segment_count(part) <= 2 for part in parts)
    assert parts[0] == "Mira" and parts[-1].endswith(" ahora")  # only the link is cut
    assert split_sms("   ") == [] and split_sms("") == []


def test_split_sms_one_segment_parts() -> None:
    parts = split_sms(to_gsm7(spanish(400)), max_segments=1)
    assert all(len(part) <= 160 for part in parts) and len(parts) == 3


def test_split_text_for_whatsapp() -> None:
    text = spanish(3500)
    parts = split_text(text)
    assert [len(part) <= 1600 for part in parts] == [True, True, True]
    assert " ".join(parts).split() == text.split()
    assert split_text("corto") == ["corto"]


# -- TwiML ---------------------------------------------------------------------------------


def twiml_bodies(content: bytes | memoryview) -> list[str]:
    root = ET.fromstring(bytes(content))
    assert root.tag == "Response"
    assert all(child.tag == "Message" for child in root)
    return [child.text or "" for child in root]


def test_render_sms_folds_and_splits() -> None:
    long_reply = spanish(400)
    replies = [Reply(long_reply), Reply("Elegí una opción:\n1 Tus derechos\n2 Albergue <cerca> & seguro")]
    channel = TwilioChannel(SMS, SETTINGS)
    response = channel.render(sms("SM1", "hola")[0], replies)
    assert response.status_code == 200 and response.media_type == "application/xml"
    bodies = twiml_bodies(response.body)
    assert bodies == [*split_sms(to_gsm7(long_reply)), "Elegi una opcion:\n1 Tus derechos\n2 Albergue <cerca> & seguro"]
    assert len(bodies) == 3
    assert all(segment_count(body) <= 2 and is_gsm7(body) for body in bodies)
    assert not any(ch in "".join(bodies) for ch in "áíóú") and "¿" in bodies[0] and "ñ" in "".join(bodies)


def test_render_whatsapp_keeps_the_text() -> None:
    replies = [Reply("¿Cómo estás? 😊 Aquí tenés información."), Reply("1 Tus derechos\n2 Albergue")]
    response = TwilioChannel(WHATSAPP, SETTINGS).render(wa("SM1", "hola")[0], replies)
    assert response.media_type == "application/xml"
    assert twiml_bodies(response.body) == [reply.text for reply in replies]


def test_render_whatsapp_splits_past_1600() -> None:
    text = spanish(2000)
    bodies = twiml_bodies(TwilioChannel(WHATSAPP, SETTINGS).render(None, [Reply(text)]).body)
    assert len(bodies) == 2 and all(len(body) <= 1600 for body in bodies)


@pytest.mark.parametrize("channel", [SMS, WHATSAPP])
def test_render_nothing(channel: str) -> None:
    response = TwilioChannel(channel, SETTINGS).render(None, [])
    assert response.status_code == 200
    assert twiml_bodies(response.body) == []


# -- sending -------------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with running_fake_twilio() as running:
        yield running


def sending(fake: FakeTwilio, **changes: str | None) -> GatewaySettings:
    return replace(SETTINGS, twilio_api_url=fake.url, **changes)  # type: ignore[arg-type]


def posted(fake: FakeTwilio, bodies: list[str], to: str, **origin: str) -> list[Recorded]:
    return [
        Recorded(
            "POST",
            fake.messages_path(),
            {"To": [to], "Body": [body], **{k: [v] for k, v in origin.items()}},
            (ACCOUNT_SID, AUTH_TOKEN),
        )
        for body in bodies
    ]


def test_send_sms_in_parts(fake: FakeTwilio) -> None:
    channel = TwilioChannel(SMS, sending(fake))
    replies = [Reply(spanish(400)), Reply("¿Algo más?")]
    result = asyncio.run(channel.send(PERSON, replies))
    bodies = [*split_sms(to_gsm7(spanish(400))), "¿Algo mas?"]
    assert len(bodies) == 3
    assert fake.requests == posted(fake, bodies, PERSON, From=HOTLINE_NUMBER)
    assert fake.messages_path() == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert result == SendResult(provider_ids=(f"SM{1:032x}", f"SM{2:032x}", f"SM{3:032x}"))


def test_send_whatsapp(fake: FakeTwilio) -> None:
    text = "Hola 👋 ¿cómo estás?"
    result = asyncio.run(TwilioChannel(WHATSAPP, sending(fake)).send(WA_PERSON, [Reply(text)]))
    assert fake.requests == posted(fake, [text], WA_PERSON, From="whatsapp:" + HOTLINE_NUMBER)
    assert result.provider_ids == (f"SM{1:032x}",)


def test_send_whatsapp_from_a_bare_number(fake: FakeTwilio) -> None:
    channel = TwilioChannel(WHATSAPP, sending(fake, twilio_whatsapp_from=HOTLINE_NUMBER))
    asyncio.run(channel.send(WA_PERSON, [Reply("hola")]))
    assert fake.requests == posted(fake, ["hola"], WA_PERSON, From="whatsapp:" + HOTLINE_NUMBER)


def test_send_ignores_twilio_region_variables(fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_EDGE", "sydney")  # the twilio library would send to api.sydney.au1.twilio.com
    monkeypatch.setenv("TWILIO_REGION", "au1")
    asyncio.run(TwilioChannel(SMS, sending(fake)).send(PERSON, [Reply("hola")]))
    assert fake.requests == posted(fake, ["hola"], PERSON, From=HOTLINE_NUMBER)


def test_send_through_a_messaging_service(fake: FakeTwilio) -> None:
    service = "MG" + "ab" * 16
    channel = TwilioChannel(SMS, sending(fake, twilio_sms_from=service))
    asyncio.run(channel.send(PERSON, [Reply("hola")]))
    assert fake.requests == posted(fake, ["hola"], PERSON, MessagingServiceSid=service)


def test_send_nothing(fake: FakeTwilio) -> None:
    assert asyncio.run(TwilioChannel(SMS, sending(fake)).send(PERSON, [])) == SendResult()
    assert asyncio.run(TwilioChannel(SMS, sending(fake)).send(PERSON, [Reply("  ")])) == SendResult()
    assert fake.requests == []


@pytest.mark.parametrize(
    ("answer", "error", "code"),
    [
        ("stopped", ContactStopped, None),
        ("blocked", ContactStopped, None),
        ("window", OutsideWindow, None),  # 63016: channels/core.py takes the template path
        ("invalid_to", ProviderRejected, "21211"),
        ("auth", ConfigError, None),
        ("throttled", Throttled, None),
        ("server_error", ConnectionFailed, None),
    ],
)
def test_send_errors(fake: FakeTwilio, answer: str, error: type[SendError], code: str | None) -> None:
    fake.answer = answer
    with pytest.raises(error) as raised:
        asyncio.run(TwilioChannel(SMS, sending(fake)).send(PERSON, [Reply("hola")]))
    assert type(raised.value) is error
    if code is not None:
        assert isinstance(raised.value, ProviderRejected) and raised.value.provider_code == code
    assert PERSON not in str(raised.value) and "55501234" not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert fake.requests == posted(fake, ["hola"], PERSON, From=HOTLINE_NUMBER)


def test_send_stops_at_the_first_failed_part(fake: FakeTwilio) -> None:
    fake.answer, fake.fail_after = "stopped", 1
    with pytest.raises(ContactStopped):
        asyncio.run(TwilioChannel(SMS, sending(fake)).send(PERSON, [Reply("uno"), Reply("dos"), Reply("tres")]))
    assert fake.requests == posted(fake, ["uno", "dos"], PERSON, From=HOTLINE_NUMBER)


def test_send_when_twilio_is_down(fake: FakeTwilio) -> None:
    fake.down()
    with pytest.raises(ConnectionFailed):
        asyncio.run(TwilioChannel(SMS, sending(fake)).send(PERSON, [Reply("hola")]))
    assert fake.requests == []


@pytest.mark.parametrize(
    "missing", ["twilio_account_sid", "twilio_auth_token", "twilio_sms_from"], ids=["sid", "token", "from"]
)
def test_send_without_configuration(fake: FakeTwilio, missing: str) -> None:
    channel = TwilioChannel(SMS, sending(fake, **{missing: None}))
    with pytest.raises(ConfigError):
        asyncio.run(channel.send(PERSON, [Reply("hola")]))
    assert fake.requests == []


def test_whatsapp_without_its_sender_is_a_config_error(fake: FakeTwilio) -> None:
    channel = TwilioChannel(WHATSAPP, sending(fake, twilio_whatsapp_from=None))
    with pytest.raises(ConfigError):
        asyncio.run(channel.send(WA_PERSON, [Reply("hola")]))
    assert fake.requests == []


@pytest.mark.parametrize(("channel", "address"), [(SMS, WA_PERSON), (WHATSAPP, PERSON)])
def test_send_to_another_channels_address(fake: FakeTwilio, channel: str, address: str) -> None:
    with pytest.raises(ProviderRejected) as raised:
        asyncio.run(TwilioChannel(channel, sending(fake)).send(address, [Reply("hola")]))
    assert raised.value.provider_code == "invalid_address"
    assert fake.requests == []


def test_nothing_to_delete_on_a_phone() -> None:
    assert asyncio.run(TwilioChannel(SMS, SETTINGS).delete_messages(PERSON, ["SM1", "SM2"])) == 0


def test_registry_factory() -> None:
    channels = twilio_channels(SETTINGS)
    assert {name: channel.name for name, channel in channels.items()} == {"sms": "sms", "whatsapp": "whatsapp"}
    with pytest.raises(ValueError):
        TwilioChannel("telegram", SETTINGS)


# -- logs and errors -----------------------------------------------------------------------


def test_logs_carry_no_number_text_or_token(fake: FakeTwilio, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    text = "¿Dónde está el albergue? ¡Necesito ayuda, señora!"
    settings = sending(fake)
    for channel_name, fixture_name, address in [
        (SMS, "twilio/sms_accents.txt", PERSON),
        (WHATSAPP, "whatsapp/text.txt", WA_PERSON),
    ]:
        channel = TwilioChannel(channel_name, settings)
        body = fixture(fixture_name)
        messages = asyncio.run(verify_and_parse(channel, signed_request(channel_name, body, "valid"), body))
        assert messages[0].address == address
        channel.render(messages[0], [Reply(f"Recibimos: {text}")])
        asyncio.run(channel.send(address, [Reply(f"Recibimos: {text}")]))
    status = fixture("twilio/status_failed_21610.txt")
    assert (
        asyncio.run(verify_and_parse(TwilioChannel(SMS, settings), signed_request(SMS, status, "valid"), status)) == []
    )
    fake.answer = "invalid_to"  # Twilio's error text quotes the number
    with pytest.raises(ProviderRejected):
        asyncio.run(TwilioChannel(SMS, settings).send(PERSON, [Reply(text)]))
    forged = fixture("twilio/sms_accents.txt")
    with pytest.raises(InvalidSignature):
        asyncio.run(verify_and_parse(TwilioChannel(SMS, settings), signed_request(SMS, forged, "invalid"), forged))

    logged = caplog.text
    assert "sent channel=sms" in logged and "sent channel=whatsapp" in logged and "error=21610" in logged
    assert "send failed channel=sms error=provider_rejected" in logged
    for secret in (PERSON, "55501234", "albergue", "Dónde", "Donde", "Recibimos", "María", AUTH_TOKEN):
        assert secret not in logged, secret


def test_error_codes_are_unique() -> None:
    classes = [
        value for value in vars(channels.base).values() if inspect.isclass(value) and issubclass(value, ChannelError)
    ]
    assert len(classes) >= 9
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), codes


# -- Twilio's copies: deleted once answered (channels/provider_cleanup.py) ----------------

INBOUND_SID = "SM" + "1a" * 16
MMS_SID = "MM" + "2b" * 16
REPLY_SID = "SM" + "3c" * 16  # a reply sent as TwiML: its SID comes in a status callback
CODE = "TRT-7K4M-Q2XH-5"


def inbound_body(sid: str, text: str, *media_urls: str) -> bytes:
    fields = [("SmsStatus", "received"), ("From", PERSON), ("To", HOTLINE_NUMBER), ("MessageSid", sid)]
    fields += [("Body", text), ("NumMedia", str(len(media_urls)))]
    fields += [(f"MediaUrl{n}", url) for n, url in enumerate(media_urls)]
    return urlencode(fields).encode()


def status_body(sid: str, status: str) -> bytes:
    return urlencode(
        [("MessageSid", sid), ("MessageStatus", status), ("To", PERSON), ("From", HOTLINE_NUMBER)]
    ).encode()


def webhook(channel: TwilioChannel, body: bytes) -> list[InboundMessage]:
    return asyncio.run(verify_and_parse(channel, signed_request(SMS, body, "valid"), body))


def cleanup(engine: Engine, channel: TwilioChannel, now: datetime) -> provider_cleanup.CleanupCounts:
    return asyncio.run(provider_cleanup.run(engine, {SMS: channel}, now=now))


def stored_records(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text("SELECT * FROM provider_records"))]


def deletions(fake: FakeTwilio) -> list[str]:
    return [r.path.rsplit("/", 1)[1].removesuffix(".json") for r in fake.requests if r.method == "DELETE"]


def test_an_answered_message_its_photo_and_the_replies_are_deleted_from_twilio(
    fake: FakeTwilio, engine: Engine
) -> None:
    channel = TwilioChannel(SMS, sending(fake))
    photo = fake.add_media(b"\xff\xd8jpeg with GPS", "image/jpeg", message_sid=MMS_SID)
    media_sid = photo.rsplit("/", 1)[1]
    fake.add_inbound(INBOUND_SID)
    text_message = webhook(channel, inbound_body(INBOUND_SID, "en el bar tienen encerradas a unas muchachas"))
    twiml = channel.render(text_message[0], [Reply(f"Tu código es {CODE}")])
    # Each reply asks Twilio for status callbacks at the webhook: they tell the reply's SID.
    root = ET.fromstring(bytes(twiml.body))
    assert [m.get("action") for m in root] == [PUBLIC_URL + WEBHOOK_PATHS[SMS]]
    channel.render(webhook(channel, inbound_body(MMS_SID, "", photo))[0], [Reply("Recibimos la foto")])
    fake.statuses[REPLY_SID] = "sent"  # Twilio created the TwiML reply; no delivery receipt yet
    assert webhook(channel, status_body(REPLY_SID, "sent")) == []
    sent = asyncio.run(channel.send(PERSON, [Reply("Respuesta tardía")]))  # a late answer by the REST API
    late_sid = sent.provider_ids[0]
    kept_before = fake.kept()
    assert {INBOUND_SID, MMS_SID, media_sid, REPLY_SID, late_sid} <= kept_before

    start = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    counts = cleanup(engine, channel, start)
    assert counts.recorded == 5 and counts.deleted == 0  # Twilio asks to wait a minute first
    assert deletions(fake) == []
    # The table holds Twilio SIDs and times: no number, no pseudonym, no text.
    dumped = repr(stored_records(engine))
    for secret in (PERSON, "55501234", "encerradas", "muchachas", CODE, "Respuesta"):
        assert secret not in dumped

    counts = cleanup(engine, channel, start + timedelta(minutes=3))
    assert counts.deleted == 3 and counts.retried == 2  # the replies are not final yet (20009)
    tried = deletions(fake)
    assert {INBOUND_SID, MMS_SID, media_sid, REPLY_SID, late_sid} == set(tried)
    assert tried.index(media_sid) < tried.index(MMS_SID)  # a photo before its message
    assert fake.kept() == {REPLY_SID, late_sid}
    fake.statuses[REPLY_SID] = fake.statuses[late_sid] = "delivered"
    assert cleanup(engine, channel, start + timedelta(minutes=4)).deleted == 0  # not due yet
    counts = cleanup(engine, channel, start + timedelta(minutes=9))
    assert counts.deleted == 2 and fake.kept() == set() and stored_records(engine) == []
    assert all(r.basic_auth == (ACCOUNT_SID, AUTH_TOKEN) for r in fake.requests if r.method == "DELETE")


def test_a_record_twilio_no_longer_has_is_done_and_a_callback_twice_is_one_record(
    fake: FakeTwilio, engine: Engine
) -> None:
    channel = TwilioChannel(SMS, sending(fake))
    for status in ("sent", "delivered", "delivered"):
        webhook(channel, status_body(REPLY_SID, status))  # Twilio does not know it (deleted by hand)
    start = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    assert cleanup(engine, channel, start).recorded == 1
    counts = cleanup(engine, channel, start + timedelta(minutes=3))
    assert counts.deleted == 1 and deletions(fake) == [REPLY_SID]  # 404: nothing left to delete
    assert stored_records(engine) == []


def test_a_deletion_refused_for_days_is_given_up_and_counted(
    fake: FakeTwilio, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    channel = TwilioChannel(SMS, sending(fake))
    fake.statuses[REPLY_SID] = "sent"  # never reaches a final state
    webhook(channel, status_body(REPLY_SID, "sent"))
    now = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    cleanup(engine, channel, now)
    given_up = 0
    while stored_records(engine):
        now += timedelta(hours=1)
        given_up += cleanup(engine, channel, now).given_up
        assert now < datetime(2026, 12, 23, tzinfo=UTC), "retried forever"
    assert given_up == 1 and REPLY_SID in fake.kept()
    assert provider_cleanup.GIVE_UP_AFTER <= now - datetime(2026, 12, 6, 10, 0, tzinfo=UTC) <= timedelta(days=16)
    assert 10 <= len(deletions(fake)) <= 80  # growing delays: not one call per round
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "channels.provider_cleanup")
    assert "provider records given up after 15 days: 1" in logged
    assert REPLY_SID not in logged and PERSON not in logged  # counts only


def test_sids_wait_in_memory_while_the_database_is_down(fake: FakeTwilio, engine: Engine, tmp_path: Path) -> None:
    channel = TwilioChannel(SMS, sending(fake))
    fake.add_inbound(INBOUND_SID)
    channel.render(webhook(channel, inbound_body(INBOUND_SID, "hola"))[0], [Reply("Hola")])
    unmigrated = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")  # no provider_records table
    try:
        assert cleanup(unmigrated, channel, datetime(2026, 12, 6, 10, 0, tzinfo=UTC)).recorded == 0
    finally:
        unmigrated.dispose()
    start = datetime(2026, 12, 6, 10, 5, tzinfo=UTC)
    assert cleanup(engine, channel, start).recorded == 1
    assert cleanup(engine, channel, start + timedelta(minutes=3)).deleted == 1
    assert INBOUND_SID not in fake.kept()


def test_only_twilio_sids_are_noted() -> None:
    channel = TwilioChannel(SMS, SETTINGS)
    forged = InboundMessage(SMS, PERSON, "hola", delivery_id="'; DROP TABLE x; --", media=(Media("https://x/y", ""),))
    channel.render(forged, [Reply("Hola")])
    other = InboundMessage(SMS, PERSON, "hola", delivery_id=INBOUND_SID, media=(Media("https://api.twilio.com/x", ""),))
    channel.render(other, [])
    assert channel.take_provider_records() == [(INBOUND_SID, "")]


@pytest.mark.rasa
def test_the_running_gateway_notes_what_it_answered_for_deletion(stack: Stack) -> None:
    """Through the real gateway process: a signed SMS is answered with TwiML whose replies ask
    for status callbacks; a callback for a reply comes in; the gateway's background work
    stores both SIDs (and nothing else) for deletion."""
    phone, sid, reply_sid = (
        f"+5025{secrets.randbelow(10**7):07d}",
        "SM" + secrets.token_hex(16),
        "SM" + secrets.token_hex(16),
    )
    url = f"{stack.gateway_url}{WEBHOOK_PATHS[SMS]}"
    with httpx.Client(timeout=30.0) as client:
        for form in (
            {"From": phone, "To": HOTLINE_NUMBER, "Body": "hola", "MessageSid": sid, "SmsStatus": "received"},
            {"From": HOTLINE_NUMBER, "To": phone, "MessageSid": reply_sid, "MessageStatus": "delivered"},
        ):
            signature = RequestValidator(AUTH_TOKEN).compute_signature(url, form)
            response = client.post(url, data=form, headers={"X-Twilio-Signature": signature})
            assert response.status_code == 200
            if "Body" in form:
                actions = {m.get("action") for m in ET.fromstring(response.text).iter("Message")}
                assert actions == {url}  # HOTLINE_PUBLIC_URL is the gateway's own URL in the stack
    engine = make_engine(stack.database_url)
    try:
        deadline = time.monotonic() + 4 * DRAIN_EVERY_SECONDS
        stored: list[tuple[object, ...]] = []
        while time.monotonic() < deadline and len(stored) < 2:
            stored = [r for r in stored_records(engine) if sid in r or reply_sid in r]
            time.sleep(0.5)  # polling the background loop's work, not covering a race
    finally:
        engine.dispose()
    assert sorted((r[1], r[2], r[3]) for r in stored) == sorted([(SMS, sid, ""), (SMS, reply_sid, "")])
    assert phone not in repr(stored) and phone[1:] not in repr(stored)
