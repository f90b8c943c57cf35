"""The deployment files (deploy/) without a cluster: docker-compose validates compose.yml,
kubernetes-validate every manifest (its schemas are bundled: no network), HAProxy its
configuration, and scripts/check_deploy.py holds both to cluster.yml. Broken copies in a
temporary directory prove each check can fail."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from hotline.paths import ROOT
from scripts.check_deploy import load_cluster, load_manifests, problems, replica_names
from scripts.stack import GATEWAY_KEY_FILES

DEPLOY = ROOT / "deploy"
DOCKER_COMPOSE = os.environ.get("DOCKER_COMPOSE", "/usr/bin/docker-compose")
KUBERNETES_VERSION = "1.30.0"
# What compose.yml needs from the operator's environment to render (any value will do here).
OPERATOR_ENV = {"HOTLINE_DB_PASSWORD": "test-only", "HOTLINE_REDIS_PASSWORD": "test-only"}


def compose_config(compose_file: Path, extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if not Path(DOCKER_COMPOSE).exists():
        pytest.fail(f"no docker-compose at {DOCKER_COMPOSE}: run `make docker-compose` (Debian's package)")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), **extra_env}
    return subprocess.run(
        [DOCKER_COMPOSE, "-f", str(compose_file), "config", "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def broken_copy(tmp_path: Path, file: str, old: str, new: str) -> Path:
    """deploy/ copied into tmp_path with one replacement in one file (which must apply)."""
    target = tmp_path / "deploy"
    shutil.copytree(DEPLOY, target)
    text = (target / file).read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {file}: the mutation no longer applies"
    (target / file).write_text(text.replace(old, new, 1), encoding="utf-8")
    return target


def test_compose_file_is_valid_for_docker_compose() -> None:
    result = compose_config(DEPLOY / "compose.yml", OPERATOR_ENV)
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_render_without_the_database_password() -> None:
    result = compose_config(DEPLOY / "compose.yml", {"HOTLINE_REDIS_PASSWORD": "test-only"})
    assert result.returncode != 0
    assert "HOTLINE_DB_PASSWORD" in result.stderr


def test_docker_compose_catches_a_broken_file(tmp_path: Path) -> None:
    broken = broken_copy(tmp_path, "compose.yml", "    restart: unless-stopped\n", "    restart: 7\n")
    assert compose_config(broken / "compose.yml", OPERATOR_ENV).returncode != 0


@pytest.mark.parametrize("path", sorted((DEPLOY / "k8s").glob("*.yaml")), ids=lambda p: p.name)
def test_kubernetes_manifest_is_valid(path: Path) -> None:
    documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    assert documents
    for document in documents:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_kubernetes_validate_catches_an_unknown_field() -> None:
    deployment = next(doc for doc in load_manifests(DEPLOY / "k8s") if doc["kind"] == "Deployment")
    deployment["spec"]["replicaz"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def haproxy_check(config: Path) -> subprocess.CompletedProcess[str]:
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        pytest.skip("HAProxy is not installed (Debian's haproxy package)")
    return subprocess.run([haproxy, "-c", "-f", str(config)], capture_output=True, text=True, timeout=30)


def test_haproxy_configuration_is_valid() -> None:
    result = haproxy_check(DEPLOY / "haproxy.cfg")
    assert result.returncode == 0, result.stderr


def test_the_kubernetes_haproxy_configuration_is_valid(tmp_path: Path) -> None:
    config_map = next(doc for doc in load_manifests(DEPLOY / "k8s") if doc["metadata"]["name"] == "haproxy")
    text = config_map["data"]["haproxy.cfg"]
    (tmp_path / "haproxy.cfg").write_text(text, encoding="utf-8")
    result = haproxy_check(tmp_path / "haproxy.cfg")
    assert result.returncode == 0, result.stderr
    assert "option httpchk GET /health" in text and "monitor-uri /health" in text
    (tmp_path / "broken.cfg").write_text(text.replace("balance roundrobin", "balance nowhere"), encoding="utf-8")
    assert haproxy_check(tmp_path / "broken.cfg").returncode != 0


def test_haproxy_checks_health_without_stickiness() -> None:
    lines = [line.split("#", 1)[0].split() for line in (DEPLOY / "haproxy.cfg").read_text().splitlines()]
    directives = [words for words in lines if words]
    assert ["option", "httpchk", "GET", "/health"] in directives
    assert ["balance", "roundrobin"] in directives
    assert not [words for words in directives if words[0] in ("cookie", "stick", "stick-table", "hash-type")]
    gateways = replica_names("gateway", load_cluster()["processes"]["gateway"]["replicas"])
    servers = [words for words in directives if words[0] == "server"]
    assert [words[1] for words in servers] == gateways
    assert all("check" in words for words in servers)


def test_compose_and_kubernetes_match_cluster_yml() -> None:
    assert problems() == []


def test_the_local_gateway_keyring_is_cluster_yml_s() -> None:
    """`make run` gives the gateway the same files as the cluster (scripts/stack.py)."""
    assert sorted(GATEWAY_KEY_FILES) == sorted(load_cluster()["processes"]["gateway"]["keys"])


def test_the_console_alone_holds_the_private_key() -> None:
    cluster = load_cluster()
    holders = [name for name, entry in cluster["processes"].items() if "reports.key" in entry.get("keys", [])]
    assert holders == ["console"]


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        pytest.param(
            "compose.yml",
            "secrets: [reports.pub, code.salt, sender.key, gateway.key,",
            "secrets: [reports.key, reports.pub, code.salt, sender.key, gateway.key,",
            "compose: gateway-1 mounts",
            id="compose-gateway-gets-reports.key",
        ),
        pytest.param(
            "k8s/gateway.yaml",
            "              - {key: reports.pub, path: reports.pub}\n",
            "              - {key: reports.pub, path: reports.pub}\n"
            "              - {key: reports.key, path: reports.key}\n",
            "k8s: gateway mounts",
            id="k8s-gateway-gets-reports.key",
        ),
        pytest.param(
            "k8s/gateway.yaml",
            "            - {name: HOTLINE_KEYS_DIR, value: /run/secrets/hotline}\n",
            "            - {name: HOTLINE_KEYS_DIR, value: /run/secrets/hotline}\n"
            "            - {name: HOTLINE_REPORTS_PRIVATE_KEY, value: c2VjcmV0}\n",
            "k8s: gateway environment differs",
            id="k8s-gateway-gets-a-secret-variable",
        ),
        pytest.param(
            "compose.yml",
            "    HOTLINE_GATEWAY_HOST: 0.0.0.0\n",
            "    HOTLINE_GATEWAY_HOST: 0.0.0.0\n    HOTLINE_CONSOLE_SECRET: ${HOTLINE_CONSOLE_SECRET:-}\n",
            "compose: gateway-1 environment differs",
            id="compose-gateway-gets-the-console-secret",
        ),
        pytest.param(
            "k8s/settings.yaml",
            "  HOTLINE_ACTION_URL:",
            "  HOTLINE_ACTION_URL:",
            "",
            id="unchanged-copy-passes",
        ),
        pytest.param(
            "k8s/rasa.yaml",
            "              valueFrom: {secretKeyRef: {name: hotline-env, key: HOTLINE_TRACKER_URL}}",
            "              valueFrom: {configMapKeyRef: {name: hotline-settings, key: HOTLINE_TRACKER_URL}}",
            "k8s: rasa takes the secret HOTLINE_TRACKER_URL",
            id="k8s-secret-setting-from-a-configmap",
        ),
        pytest.param(
            "compose.yml",
            "HOTLINE_SMTP_PASSWORD: ${HOTLINE_SMTP_PASSWORD:-}",
            "HOTLINE_SMTP_PASSWORD: hunter2",
            "literal value for the secret HOTLINE_SMTP_PASSWORD",
            id="compose-literal-secret",
        ),
        pytest.param("k8s/rasa.yaml", "  replicas: 2", "  replicas: 3", "k8s: rasa has 3 replicas", id="k8s-replicas"),
        pytest.param(
            "k8s/actions.yaml",
            "    - {name: http, port: 5055, targetPort: 5055}",
            "    - {name: http, port: 5055, targetPort: 5056}",
            "k8s: Service actions does not lead to port 5055",
            id="k8s-service-port",
        ),
        pytest.param(
            "compose.yml", "  rasa-2: *rasa\n", "  rasa-2: *rasa\n  rasa-3: *rasa\n", "rasa-3", id="compose-replicas"
        ),
        pytest.param(
            "k8s/actions.yaml",
            "          readinessProbe:\n            httpGet: {path: /health, port: 5055}\n"
            "            periodSeconds: 10\n",
            "",
            "k8s: actions has no readinessProbe",
            id="k8s-probe-missing",
        ),
        pytest.param(
            "k8s/console.yaml",
            "            httpGet: {path: /console/health, port: 8100}",
            "            httpGet: {path: /health, port: 8100}",
            "k8s: console's readinessProbe asks /health",
            id="k8s-probe-wrong-path",
        ),
        pytest.param(
            "k8s/network-policies.yaml",
            "        - podSelector: {matchLabels: {app: gateway}}\n      ports:\n        - {protocol: TCP, port: 5005}",
            "        - podSelector: {matchLabels: {app: gateway}}\n"
            "        - podSelector: {matchLabels: {app: console}}\n"
            "      ports:\n        - {protocol: TCP, port: 5005}",
            "('console', 'rasa')",
            id="k8s-console-reaches-rasa",
        ),
        pytest.param(
            "k8s/network-policies.yaml",
            "        - namespaceSelector: {matchLabels: {hotline.example/zone: staff}}",
            "        - ipBlock: {cidr: 0.0.0.0/0}",
            "('internet', 'console')",
            id="k8s-console-from-the-internet",
        ),
        pytest.param(
            "k8s/network-policies.yaml",
            "  name: default-deny\n  namespace: hotline\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]",
            "  name: default-deny\n  namespace: hotline\nspec:\n  podSelector: {}\n  policyTypes: [Egress]",
            "no default-deny",
            id="k8s-no-default-deny",
        ),
        pytest.param(
            "compose.yml",
            "  networks: [data, mail-jobs]\n",
            "  networks: [data, mail-jobs, actions]\n",
            "network actions joins",
            id="compose-jobs-reach-actions",
        ),
        pytest.param(
            "compose.yml",
            'ports: ["127.0.0.1:8100:8100"]',
            'ports: ["8100:8100"]',
            "compose: console publishes ports on ['all']",
            id="compose-console-on-the-internet",
        ),
        pytest.param(
            "cluster.yml",
            "    keys: [reports.pub, reports.key, code.salt, sender.key, relay.key, console.key, oncall.key]",
            "    keys: [reports.pub, code.salt, sender.key, relay.key, console.key, oncall.key]",
            "compose: console mounts",
            id="cluster-yml-changed-alone",
        ),
        # -- metrics ports: served, announced, reachable by the monitoring system alone
        pytest.param(
            "k8s/network-policies.yaml",
            "        - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}\n"
            "          podSelector: {matchLabels: {app.kubernetes.io/name: prometheus}}\n"
            "      ports:\n        - {protocol: TCP, port: 9101}",
            "        - ipBlock: {cidr: 0.0.0.0/0}\n      ports:\n        - {protocol: TCP, port: 9101}",
            "('internet', 'gateway')",
            id="k8s-gateway-metrics-open-to-the-internet",
        ),
        pytest.param(
            "k8s/network-policies.yaml",
            "        - podSelector: {matchLabels: {app: loadbalancer}}\n"
            "        - podSelector: {matchLabels: {app: console}}\n"
            "      ports:\n        - {protocol: TCP, port: 8000}",
            "        - podSelector: {matchLabels: {app: loadbalancer}}\n"
            "        - podSelector: {matchLabels: {app: console}}\n"
            "      ports:\n        - {protocol: TCP, port: 8000}\n        - {protocol: TCP, port: 9101}",
            "k8s: ['console', 'loadbalancer'] may reach gateway's metrics port 9101",
            id="k8s-load-balancer-reaches-gateway-metrics",
        ),
        pytest.param(
            "k8s/network-policies.yaml",
            "        - podSelector: {matchLabels: {app: rasa}}\n      ports:\n        - {protocol: TCP, port: 5055}",
            "        - podSelector: {matchLabels: {app: rasa}}",
            "k8s: ['rasa'] may reach actions's metrics port 9102",
            id="k8s-rule-without-ports-opens-metrics",
        ),
        pytest.param(
            "k8s/network-policies.yaml",
            "      ports:\n        - {protocol: TCP, port: 9103}",
            "      ports:\n        - {protocol: TCP, port: 9103}\n        - {protocol: TCP, port: 8100}",
            "k8s: the rule for ['monitoring'] to console opens [9103, 8100], not 9103",
            id="k8s-monitoring-reaches-the-console-itself",
        ),
        pytest.param(
            "k8s/network-policies.yaml",
            "  podSelector: {matchLabels: {app: actions}}\n  policyTypes: [Ingress]\n  ingress:\n    - from:  # Prom",
            "  podSelector: {matchLabels: {app: action}}\n  policyTypes: [Ingress]\n  ingress:\n    - from:  # Prom",
            "lacks [('monitoring', 'actions')]",
            id="k8s-actions-metrics-policy-selects-nothing",
        ),
        pytest.param(
            "k8s/console.yaml",
            "            - {name: metrics, containerPort: 9103}",
            "",
            "k8s: console exposes ports {'http': 8100}",
            id="k8s-console-metrics-port-missing",
        ),
        pytest.param(
            "k8s/gateway.yaml",
            '        prometheus.io/port: "9101"',
            '        prometheus.io/port: "8000"',
            "k8s: gateway's pods are not annotated for scraping on 9101",
            id="k8s-scrape-annotation-on-the-public-port",
        ),
        pytest.param(
            "k8s/actions.yaml",
            "            - {name: HOTLINE_METRICS_HOST, value: 0.0.0.0}",
            "            - {name: HOTLINE_METRICS_HOST, value: 127.0.0.1}",
            "k8s: actions does not serve metrics on 0.0.0.0:9102",
            id="k8s-metrics-on-loopback-unscrapable",
        ),
        pytest.param(
            "compose.yml",
            '  expose: ["9101"]  # metrics',
            '  ports: ["9101:9101"]  # metrics',
            "compose: gateway-1 publishes ports on ['all']",
            id="compose-gateway-metrics-published",
        ),
        pytest.param(
            "compose.yml",
            'ports: ["127.0.0.1:8100:8100"]',
            'ports: ["127.0.0.1:8100:8100", "127.0.0.1:9103:9103"]',
            "compose: console publishes [8100, 9103], not only 8100",
            id="compose-console-metrics-published-to-staff",
        ),
        pytest.param(
            "compose.yml",
            '  expose: ["9102"]  # metrics',
            "  # no metrics exposed",
            "compose: actions-1 does not expose its metrics port 9102",
            id="compose-actions-metrics-missing",
        ),
        pytest.param(
            "compose.yml",
            '    HOTLINE_METRICS_PORT: "9101"',
            '    HOTLINE_METRICS_PORT: "8000"',
            "compose: gateway-1 serves metrics on 8000, not 9101",
            id="compose-gateway-metrics-on-the-public-port",
        ),
        pytest.param(
            "compose.yml",
            "    networks: [staff, relay, data, mail-console, metrics-console]",
            "    networks: [staff, relay, data, mail-console, metrics-console, metrics-gateway]",
            "compose: network metrics-gateway joins ['console'] with gateway",
            id="compose-console-on-the-gateway-metrics-network",
        ),
        pytest.param(
            "cluster.yml",
            "    metrics_port: 9103\n",
            "    metrics_port: 9104\n",
            "k8s: console exposes ports",
            id="cluster-yml-metrics-port-changed-alone",
        ),
        pytest.param(
            "cluster.yml",
            "    reached_by: [rasa, monitoring]",
            "    reached_by: [rasa]",
            "cluster.yml: actions has a metrics port only if monitoring reaches it",
            id="cluster-yml-metrics-port-nobody-scrapes",
        ),
    ],
)
def test_a_broken_copy_is_caught(tmp_path: Path, file: str, old: str, new: str, expected: str) -> None:
    found = problems(broken_copy(tmp_path, file, old, new))
    if not expected:
        assert found == []
    else:
        assert any(expected in problem for problem in found), found


# -- what the images hold ----------------------------------------------------------------

OUR_PACKAGES = ("hotline", "rasa_plugins", "actions", "channels", "console", "reports")
DATA_FILE = re.compile(r'\b(CONTENT|ROOT)((?: / "[^"]+")+)')  # files our code reads beside itself
IMAGE_ENTRIES = {
    "app.Dockerfile": ["actions.serve", "channels.app", "console.app", "reports.jobs", "reports.db"]
    + [f"actions.{path.stem}" for path in (ROOT / "actions").glob("*.py")],  # rasa-sdk loads every action
    "rasa.Dockerfile": [f"rasa_plugins.{path.stem}" for path in (ROOT / "rasa_plugins").glob("*.py")],
}


def copied_paths(dockerfile: Path) -> list[Path]:
    """The repository paths a Dockerfile's COPY lines put in the image (same place in /app)."""
    paths = []
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(word.startswith("--from") for word in words):
            paths += [Path(word.rstrip("/")) for word in words[1:-1]]
    return paths


def module_file(name: str) -> Path:
    relative = Path(*name.split("."))
    package = relative / "__init__.py"
    return package if (ROOT / package).exists() else relative.with_suffix(".py")


def our_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse((ROOT / path).read_text(encoding="utf-8"))):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {n for n in names if n.split(".")[0] in OUR_PACKAGES and (ROOT / module_file(n)).exists()}
    return found


def needed_files(entries: list[str]) -> set[Path]:
    """Every module the entries import (transitively, ours only) and the data files they read."""
    modules: set[str] = set()
    todo = list(entries)
    while todo:
        name = todo.pop()
        if name not in modules:
            modules.add(name)
            todo += [parent for parent in (name.rsplit(".", 1)[0],) if "." in name] + list(
                our_imports(module_file(name))
            )
    files = {module_file(name) for name in modules}
    data: set[Path] = set()
    for path in files - {Path("hotline/paths.py")}:  # paths.py names the folders, reads nothing
        for base, parts in DATA_FILE.findall((ROOT / path).read_text(encoding="utf-8")):
            relative = Path(*re.findall(r'"([^"]+)"', parts))
            if relative.parts[0] != "keys":  # mounted at run time, never in the image
                data.add(Path("content") / relative if base == "CONTENT" else relative)
    return files | data


def missing_from_image(dockerfile: Path, entries: list[str]) -> list[str]:
    copied = copied_paths(dockerfile)
    needed = sorted(needed_files(entries))
    return [str(path) for path in needed if not any(path == c or path.is_relative_to(c) for c in copied)]


@pytest.mark.parametrize("dockerfile", sorted(IMAGE_ENTRIES))
def test_the_image_holds_what_its_processes_import_and_read(dockerfile: str) -> None:
    assert missing_from_image(DEPLOY / dockerfile, IMAGE_ENTRIES[dockerfile]) == []


def test_the_image_check_sees_a_missing_copy(tmp_path: Path) -> None:
    broken = broken_copy(tmp_path, "rasa.Dockerfile", " nlu_data/danger_lexicon.yml", "")
    assert missing_from_image(broken / "rasa.Dockerfile", IMAGE_ENTRIES["rasa.Dockerfile"]) == [
        "nlu_data/danger_lexicon.yml"
    ]


def test_the_rasa_image_holds_no_app_package() -> None:
    copied = {path.parts[0] for path in copied_paths(DEPLOY / "rasa.Dockerfile")}
    assert not copied & {"actions", "channels", "console", "reports", "keys"}


def test_dockerignore_keeps_secrets_and_data_out() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    for pattern in ("keys/", "*.db", "build/", ".venv*", ".env"):
        assert pattern in ignored
