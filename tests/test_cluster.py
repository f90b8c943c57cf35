"""The cluster of deploy/cluster.yml, started by the same code as `make cluster`: real
PostgreSQL, real Redis, real HAProxy, two real Rasa replicas, two action servers and two
gateways. Any gateway serves any message; a conversation keeps its turns in order across
gateways; a Rasa replica that dies is stepped around and comes back; two replicas never
handle one conversation at once (Rasa's lock store in Redis); a misconfigured cluster
refuses to start with a clear message."""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from scripts.cluster import (
    CLUSTER_ENDPOINTS,
    REDIS_URL,
    Cluster,
    ClusterError,
    check_redis,
    check_same_model,
    process_command,
    process_names,
    running_cluster,
    topology,
)
from scripts.stack import MODEL, ROOT
from tests.conftest import channel_credentials, edge_signed
from tests.fake_telegram import FakeTelegram
from tests.fake_twilio import FakeTwilio
from tests.test_e2e_gateway import new_phone, pseudonym, sms_form, twilio_post, twiml_messages

pytestmark = pytest.mark.rasa


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, fake_twilio: FakeTwilio, fake_telegram: FakeTelegram
) -> Iterator[Cluster]:
    work = tmp_path_factory.mktemp("cluster")
    with running_cluster(
        work / "logs",
        keys_dir=work / "keys",
        extra_env=channel_credentials(fake_twilio, fake_telegram),
        drop_after=True,
    ) as running:
        yield running


def answered_by(cluster: Cluster) -> dict[str, int]:
    """How many messages each gateway answered (its log says so, without content)."""
    return {
        name: (cluster.log_dir / f"{name}.log").read_text(encoding="utf-8").count("answered channel=")
        for name in cluster.processes
        if name.startswith("gateway-")
    }


def say(client: httpx.Client, cluster: Cluster, phone: str, text: str) -> list[str]:
    return twiml_messages(twilio_post(client, cluster, "sms", sms_form(phone, text)))  # type: ignore[arg-type]


def user_texts(client: httpx.Client, cluster: Cluster, sender: str) -> list[str]:
    tracker = client.get(f"{cluster.rasa_url}/conversations/{sender}/tracker", params=cluster.rasa_params).json()
    return [e["text"] for e in tracker["events"] if e["event"] == "user"]


def test_any_gateway_serves_any_message_and_a_conversation_keeps_its_order(
    client: httpx.Client, cluster: Cluster
) -> None:
    before = answered_by(cluster)
    phone = new_phone()
    texts = ["hola", "me ofrecieron un trabajo", "en Estados Unidos", "1", "2", "hola"]
    for text in texts:
        assert say(client, cluster, phone, text), text  # every turn answered
    after = answered_by(cluster)
    assert all(after[name] > before[name] for name in after), (before, after)  # both gateways took turns
    sender = pseudonym(cluster, "sms", phone)  # type: ignore[arg-type]
    assert user_texts(client, cluster, sender) == texts  # one tracker, in order, whichever replica


def test_two_replicas_never_take_one_conversation_at_once(client: httpx.Client, cluster: Cluster) -> None:
    """The same sender's messages sent to both Rasa replicas at the same moment, ten times:
    with Rasa's lock store in Redis each turn waits for the other, so the tracker holds every
    message once, each answered before the next is read (an in-memory lock per replica
    would let both replicas load the same tracker and one would overwrite the other)."""
    sender = "lock-" + secrets.token_hex(8)
    sent = [f"hola {i}" for i in range(20)]
    metadata = edge_signed(cluster, sender, {})  # type: ignore[arg-type]

    async def both_at_once() -> list[int]:
        statuses = []
        async with httpx.AsyncClient(timeout=60) as http:
            for first, second in zip(sent[::2], sent[1::2], strict=True):
                answers = await asyncio.gather(
                    *(
                        http.post(
                            f"{url}/webhooks/gateway/webhook",
                            params=cluster.rasa_params,
                            json={"sender": sender, "message": text, "metadata": metadata},
                        )
                        for url, text in zip(cluster.rasa_urls, (first, second), strict=True)
                    )
                )
                statuses += [answer.status_code for answer in answers]
        return statuses

    assert asyncio.run(both_at_once()) == [200] * len(sent)
    tracker = client.get(f"{cluster.rasa_url}/conversations/{sender}/tracker", params=cluster.rasa_params).json()
    kinds = [e["event"] for e in tracker["events"] if e["event"] in ("user", "bot")]
    assert sorted(e["text"] for e in tracker["events"] if e["event"] == "user") == sorted(sent)
    assert all(kinds[i + 1] == "bot" for i, kind in enumerate(kinds) if kind == "user"), kinds


def test_a_message_sent_again_to_the_other_replica_is_answered_from_the_shared_tracker(
    client: httpx.Client, cluster: Cluster
) -> None:
    """The first try reached one replica (its answer lost on the way back); the gateway
    sends the message again under the same id, to the other one: that replica, under the
    Redis lock, finds the turn in the shared tracker store and sends the same answer."""
    sender = "again-" + secrets.token_hex(8)
    body = {"sender": sender, "message": "que es la trata", "metadata": edge_signed(cluster, sender, {})}  # type: ignore[arg-type]
    message_id = secrets.token_hex(16)
    first_url, other_url = cluster.rasa_urls[0], cluster.rasa_urls[1]
    first = client.post(
        f"{first_url}/webhooks/gateway/webhook", params=cluster.rasa_params, json={**body, "message_id": message_id}
    )
    again = client.post(
        f"{other_url}/webhooks/gateway/webhook",
        params=cluster.rasa_params,
        json={**body, "message_id": message_id, "retry": True},
    )
    assert first.status_code == again.status_code == 200
    assert first.json() and again.json() == first.json()
    assert user_texts(client, cluster, sender) == ["que es la trata"]


def test_redis_holds_no_pseudonym(client: httpx.Client, cluster: Cluster) -> None:
    phone = new_phone()
    sender = pseudonym(cluster, "sms", phone)  # type: ignore[arg-type]
    say(client, cluster, phone, "hola")
    store = redis.Redis.from_url(cluster.redis_url)
    try:
        for key in store.scan_iter(count=1000):
            value = store.get(key) if store.type(key) == b"string" else b""
            assert sender.encode() not in key and sender.encode() not in (value or b"")
    finally:
        store.close()


def test_a_dead_rasa_replica_is_stepped_around_and_comes_back(client: httpx.Client, cluster: Cluster) -> None:
    """Killed (SIGKILL): every conversation is still answered by the other replica, without the
    "we are slow" answer; started again, it loads the model and takes its senders back."""
    cluster.kill("rasa-2")
    try:
        phones = [new_phone() for _ in range(8)]
        for phone in phones:
            replies = say(client, cluster, phone, "hola")
            assert replies and not any("tardando" in r or "problema" in r for r in replies), replies
    finally:
        cluster.start("rasa-2")
        cluster.wait_ready(["rasa-2"])
    check_same_model(cluster)
    phone = new_phone()
    assert say(client, cluster, phone, "hola")


def test_a_replica_with_another_model_is_refused(tmp_path: Path, cluster: Cluster) -> None:
    """rasa-2 restarted on a model trained elsewhere (same files, another fingerprint):
    the cluster's check names the problem; restarted on the shared model, all is well."""
    other = tmp_path / "other.tar.gz"
    with tarfile.open(MODEL) as original, tarfile.open(other, "w:gz") as copy:
        for member in original.getmembers():
            data = original.extractfile(member) if member.isfile() else None
            if member.name.endswith("metadata.json") and data is not None:
                metadata = json.loads(data.read())
                metadata["model_id"] = secrets.token_hex(16)
                blob = json.dumps(metadata).encode()
                member.size = len(blob)
                copy.addfile(member, io.BytesIO(blob))
            else:
                copy.addfile(member, data)
    command, env = cluster.commands["rasa-2"]
    cluster.kill("rasa-2")
    altered = [str(other) if part == str(MODEL) else part for part in command]
    cluster.commands["rasa-2"] = (altered, env)
    try:
        cluster.start("rasa-2")
        cluster.wait_ready(["rasa-2"])
        with pytest.raises(ClusterError, match="different models"):
            check_same_model(cluster)
    finally:
        cluster.kill("rasa-2")
        cluster.commands["rasa-2"] = (command, env)
        cluster.start("rasa-2")
        cluster.wait_ready(["rasa-2"])
    check_same_model(cluster)


def test_a_wrong_redis_url_is_refused_before_anything_starts() -> None:
    with pytest.raises(ClusterError, match="Redis does not answer"):
        check_redis("redis://127.0.0.1:1/0")
    check_redis(REDIS_URL)


def test_a_rasa_replica_without_its_lock_store_setting_refuses_to_start(keys_dir: Path) -> None:
    """The launcher stops at once, naming the setting, instead of Rasa failing later."""
    env = {"HOTLINE_KEYS_DIR": str(keys_dir), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    for url, message in (("", "HOTLINE_REDIS_URL must look like"), ("redis://h:6379/x", "must be a number")):
        done = subprocess.run(
            [str(ROOT / ".venv-rasa/bin/python"), "-m", "rasa_plugins.serve", "--endpoints", str(CLUSTER_ENDPOINTS)],
            env={**env, "HOTLINE_REDIS_URL": url},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert done.returncode != 0 and message in done.stderr, done.stderr


def test_make_cluster_runs_what_deploy_files_run(tmp_path: Path) -> None:
    """Same processes, same replica counts, same modules as deploy/cluster.yml (which the
    compose file and the manifests are held to by tests/test_deploy.py)."""
    names = process_names()
    ports = {name: 1 for name in ["loadbalancer", "actions-lb", *names]}
    cluster = Cluster(ports, tmp_path, tmp_path, tmp_path, "db", "tracker", REDIS_URL, "p:")
    for role, spec in topology().items():
        if role == "loadbalancer":
            continue
        count = int(str(spec["replicas"]))
        mine = [n for n in names if n.split("-")[0] == role]
        assert len(mine) == count, (role, mine)
        deployed = list(spec["command"])  # type: ignore[call-overload]
        command, _ = process_command(cluster, mine[0], {}, MODEL)
        assert command[command.index("-m") + 1] == deployed[deployed.index("-m") + 1], role
        if role == "jobs":
            assert command[-1] == deployed[-1] == "run"
