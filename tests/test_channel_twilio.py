"""The Twilio channel (SMS and WhatsApp): signatures against the public URL, recorded webhook
payloads run through one table (courier's IncomingTestCase), SMS splitting, TwiML, and
sending against a real local fake of Twilio's REST API (tests/fake_twilio.py)."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from starlette.requests import Request
from twilio.request_validator import RequestValidator

import channels.base
from channels.base import (
    BadRequest,
    ChannelError,
    ConfigError,
    ConnectionFailed,
    ContactStopped,
    InboundMessage,
    InvalidSignature,
    Media,
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
        ("window", ProviderRejected, "63016"),
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
