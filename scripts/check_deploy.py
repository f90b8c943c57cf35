"""Check deploy/compose.yml and deploy/k8s/ against deploy/cluster.yml, the one description
of the cluster: the same processes and replicas, each with exactly its settings and keyring
files, probes on every process that serves, network edges that are exactly cluster.yml's
`reached_by`, and each `metrics_port` served, announced to Prometheus and reachable by the
monitoring system alone. Returns problems as sentences; tests/test_deploy.py runs it on the real files
and on broken copies.

    python -m scripts.check_deploy [deploy-dir]
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KEYS_DIR_VARIABLE = "HOTLINE_KEYS_DIR"
OUTSIDERS = ("internet", "staff", "monitoring")  # reached_by names that are not pods or containers
STAFF_LABEL = ("hotline.example/zone", "staff")
MONITORING = "monitoring"  # Prometheus: reaches the metrics port alone, and only it does
MONITORING_NAMESPACE = ("kubernetes.io/metadata.name", "monitoring")
METRICS_HOST = "0.0.0.0"  # in a container: Prometheus scrapes from elsewhere; policies say who
Doc = dict[str, Any]
Edge = tuple[str, str]  # (who connects, to whom)


def load_cluster(deploy_dir: Path = DEPLOY) -> Doc:
    cluster: Doc = yaml.safe_load((deploy_dir / "cluster.yml").read_text(encoding="utf-8"))
    return cluster


def runnable(cluster: Doc) -> dict[str, Doc]:
    """Processes and one-off tasks: everything built from our images or HAProxy."""
    return {**cluster["processes"], **cluster.get("tasks", {})}


def expected_edges(cluster: Doc) -> set[Edge]:
    """Every (source, target) of cluster.yml: processes, tasks and services alike."""
    targets = {**cluster["processes"], **cluster["services"]}
    return {(source, target) for target, entry in targets.items() for source in entry.get("reached_by", [])}


def env_for(entry: Doc) -> set[str]:
    """What a container of this process must get: its settings, and where its keys are."""
    settings = set(entry.get("settings", []))
    return settings | {KEYS_DIR_VARIABLE} if entry.get("keys") else settings


def metrics_network(name: str) -> str:
    """The compose network where Prometheus (the operator's, in an override file) meets one
    process's replicas and nothing else."""
    return f"metrics-{name}"


def replica_names(name: str, replicas: int) -> list[str]:
    """Compose runs each replica as its own service: rasa-1, rasa-2; a single one keeps its name."""
    return [name] if replicas == 1 else [f"{name}-{i}" for i in range(1, replicas + 1)]


# -- compose -----------------------------------------------------------------------------


def _names(value: Any) -> list[str]:
    """A compose list of names or of {source: ...} / a mapping of names."""
    if isinstance(value, Mapping):
        return list(value)
    return [item if isinstance(item, str) else item["source"] for item in value or []]


def _published(ports: Iterable[Any]) -> set[str]:
    """Where published ports listen: "all" or the host address given."""
    where = set()
    for port in ports:
        text = str(port)
        where.add(text.split(":", 1)[0] if text.count(":") == 2 else "all")
    return where


def _published_targets(ports: Iterable[Any]) -> set[int]:
    """The container ports that published ports lead to ("127.0.0.1:8100:8100" -> 8100)."""
    return {int(str(port).rsplit(":", 1)[-1].split("/", 1)[0]) for port in ports}


def compose_problems(compose: Doc, cluster: Doc) -> list[str]:
    problems: list[str] = []
    services: dict[str, Doc] = compose.get("services", {})
    owner: dict[str, str] = {}  # compose service -> process, task or service of cluster.yml
    for name, entry in runnable(cluster).items():
        for service in replica_names(name, int(entry.get("replicas", 1))):
            owner[service] = name
    owner.update({name: name for name in cluster["services"]})
    for extra in sorted(set(services) - set(owner)):
        problems.append(f"compose: service {extra} is not in cluster.yml")
    for missing in sorted(set(owner) - set(services)):
        problems.append(f"compose: {missing} of cluster.yml has no service")
    for service, spec in sorted(services.items()):
        process = owner.get(service, "")
        if process in runnable(cluster):
            problems += _compose_service_problems(service, spec, runnable(cluster)[process])
    problems += _compose_network_problems(services, owner, cluster)
    return problems


def _compose_service_problems(service: str, spec: Doc, entry: Doc) -> list[str]:
    problems = []
    environment = spec.get("environment") or {}
    if not isinstance(environment, Mapping):
        environment = dict(item.split("=", 1) for item in environment)
    if set(environment) != env_for(entry):
        extra, missing = sorted(set(environment) - env_for(entry)), sorted(env_for(entry) - set(environment))
        problems.append(f"compose: {service} environment differs from cluster.yml (extra {extra}, missing {missing})")
    for variable in entry.get("secrets", []):
        if variable in environment and "${" not in str(environment[variable]):
            problems.append(f"compose: {service} has a literal value for the secret {variable}")
    if set(_names(spec.get("secrets"))) != set(entry.get("keys", [])):
        problems.append(f"compose: {service} mounts {sorted(_names(spec.get('secrets')))}, not {entry.get('keys', [])}")
    if "command" in entry and spec.get("command") != entry["command"]:
        problems.append(f"compose: {service} runs {spec.get('command')}, not {entry['command']}")
    if "health" in entry and not spec.get("healthcheck", {}).get("test"):
        problems.append(f"compose: {service} has no healthcheck")
    published = _published(spec.get("ports", []))
    wanted = {"all"} if "internet" in entry.get("reached_by", []) else set()
    wanted |= {"127.0.0.1"} if "staff" in entry.get("reached_by", []) else set()
    if published != wanted:
        problems.append(f"compose: {service} publishes ports on {sorted(published) or 'nothing'}, not {sorted(wanted)}")
    targets = _published_targets(spec.get("ports", []))
    if not targets <= {entry.get("port")}:
        problems.append(f"compose: {service} publishes {sorted(targets)}, not only {entry.get('port')}")
    if "metrics_port" in entry:
        problems += _compose_metrics_problems(service, spec, environment, entry)
    return problems


def _compose_metrics_problems(service: str, spec: Doc, environment: Mapping[str, Any], entry: Doc) -> list[str]:
    """The metrics port is served on every address, exposed (not published) and on the
    process's own metrics network."""
    problems = []
    port = entry["metrics_port"]
    served_port, served_host = environment.get("HOTLINE_METRICS_PORT"), environment.get("HOTLINE_METRICS_HOST")
    if str(served_port) != str(port):
        problems.append(f"compose: {service} serves metrics on {served_port}, not {port}")
    if served_host != METRICS_HOST:
        problems.append(f"compose: {service} serves metrics on {served_host}, not {METRICS_HOST}")
    if str(port) not in [str(item) for item in spec.get("expose", [])]:
        problems.append(f"compose: {service} does not expose its metrics port {port}")
    if metrics_network(owner_of(service)) not in _names(spec.get("networks")):
        problems.append(f"compose: {service} is not on the network {metrics_network(owner_of(service))}")
    return problems


def owner_of(service: str) -> str:
    """The process a compose service runs: gateway-1 -> gateway."""
    name, _, number = service.rpartition("-")
    return name if name and number.isdigit() else service


def _compose_network_problems(services: dict[str, Doc], owner: dict[str, str], cluster: Doc) -> list[str]:
    """Each edge shares a network; two processes share a network only along an edge, except
    in a network of a data service, which holds that service and exactly its users."""
    problems = []
    members: dict[str, set[str]] = {}
    for service, spec in services.items():
        for network in _names(spec.get("networks")):
            members.setdefault(network, set()).add(owner.get(service, service))
    edges = expected_edges(cluster)
    linked = {frozenset(edge) for edge in edges}
    for source, target in sorted(edges):
        if source in OUTSIDERS:
            continue
        if not any({source, target} <= names for names in members.values()):
            problems.append(f"compose: {source} and {target} share no network, yet {source} reaches {target}")
    for name, entry in cluster["processes"].items():
        network = metrics_network(name)
        if "metrics_port" in entry and members.get(network, {name}) != {name}:
            problems.append(f"compose: network {network} joins {sorted(members[network] - {name})} with {name}")
    data = set(cluster["services"])
    for network, names in sorted(members.items()):
        held = names & data
        for service in held:
            users = set(cluster["services"][service].get("reached_by", []))
            if names - {service} != users:
                problems.append(f"compose: network {network} joins {service} with {sorted(names - {service})}")
        if held:
            continue
        for a in sorted(names):
            for b in sorted(names):
                if a < b and frozenset((a, b)) not in linked:
                    problems.append(f"compose: network {network} joins {a} and {b}, which cluster.yml does not link")
    return problems


# -- kubernetes --------------------------------------------------------------------------


def load_manifests(k8s_dir: Path) -> list[Doc]:
    documents: list[Doc] = []
    for path in sorted(k8s_dir.glob("*.yaml")):
        documents += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return documents


def _of_kind(documents: list[Doc], *kinds: str) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in documents if doc.get("kind") in kinds}


def k8s_problems(documents: list[Doc], cluster: Doc) -> list[str]:
    problems: list[str] = []
    workloads = _of_kind(documents, "Deployment")
    expected = {"Deployment": cluster["processes"], "Job": cluster.get("tasks", {})}
    expected["StatefulSet"] = cluster["services"]
    for kind, entries in expected.items():
        found = _of_kind(documents, kind)
        if set(found) != set(entries):
            problems.append(f"k8s: {kind}s {sorted(found)} are not cluster.yml's {sorted(entries)}")
    for name, entry in cluster["processes"].items():
        workload = workloads.get(name)
        if workload is None:
            continue
        if workload["spec"].get("replicas", 1) != entry.get("replicas", 1):
            problems.append(f"k8s: {name} has {workload['spec'].get('replicas', 1)} replicas, not {entry['replicas']}")
        problems += _pod_problems(name, workload["spec"]["template"]["spec"], entry)
        if "metrics_port" in entry:
            problems += _scrape_problems(name, workload["spec"]["template"], entry["metrics_port"])
    for name, job in _of_kind(documents, "Job").items():
        if name in cluster.get("tasks", {}):
            problems += _pod_problems(name, job["spec"]["template"]["spec"], cluster["tasks"][name])
    problems += _service_problems(_of_kind(documents, "Service"), cluster)
    problems += _policy_problems(_of_kind(documents, "NetworkPolicy"), cluster)
    return problems


def _service_problems(services: Mapping[str, Doc], cluster: Doc) -> list[str]:
    """Whatever has a port has a Service of its name selecting its pods on that port."""
    problems = []
    for name, entry in {**cluster["processes"], **cluster["services"]}.items():
        if "port" not in entry:
            continue
        spec = services.get(name, {}).get("spec", {})
        if spec.get("selector") != {"app": name}:
            problems.append(f"k8s: no Service {name} selecting app={name}")
        elif entry["port"] not in [port.get("targetPort") for port in spec.get("ports", [])]:
            problems.append(f"k8s: Service {name} does not lead to port {entry['port']}")
    return problems


def _pod_problems(name: str, pod: Doc, entry: Doc) -> list[str]:
    problems = []
    containers = pod.get("containers", [])
    if len(containers) != 1:
        return [f"k8s: {name} has {len(containers)} containers, expected one"]
    container = containers[0]
    problems += _env_problems(name, container, entry)
    problems += _key_problems(name, pod, container, entry)
    if "command" in entry and container.get("command") != entry["command"]:
        problems.append(f"k8s: {name} runs {container.get('command')}, not {entry['command']}")
    if "health" in entry:
        for probe in ("readinessProbe", "livenessProbe"):
            spec = container.get(probe)
            if not spec:
                problems.append(f"k8s: {name} has no {probe}")
            elif "httpGet" in spec and spec["httpGet"].get("path") != entry["health"]:
                problems.append(f"k8s: {name}'s {probe} asks {spec['httpGet'].get('path')}, not {entry['health']}")
    exposed = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    wanted = {"http": entry["port"]} if "port" in entry else {}
    wanted |= {"metrics": entry["metrics_port"]} if "metrics_port" in entry else {}
    if exposed != wanted:
        problems.append(f"k8s: {name} exposes ports {exposed}, not {wanted}")
    memory = container.get("resources", {})
    if not memory.get("requests", {}).get("memory") or not memory.get("limits", {}).get("memory"):
        problems.append(f"k8s: {name} has no memory request and limit")
    return problems


def _scrape_problems(name: str, template: Doc, port: int) -> list[str]:
    """Prometheus finds the pod by its annotations and scrapes the metrics port, which the
    process serves on every address of the pod (the NetworkPolicy says who may reach it)."""
    problems = []
    annotations = template.get("metadata", {}).get("annotations", {})
    wanted = {"prometheus.io/scrape": "true", "prometheus.io/port": str(port)}
    if {key: annotations.get(key) for key in wanted} != wanted:
        problems.append(f"k8s: {name}'s pods are not annotated for scraping on {port}")
    env = {item["name"]: item.get("value") for item in template["spec"]["containers"][0].get("env", [])}
    if env.get("HOTLINE_METRICS_PORT") != str(port) or env.get("HOTLINE_METRICS_HOST") != METRICS_HOST:
        problems.append(f"k8s: {name} does not serve metrics on {METRICS_HOST}:{port}")
    return problems


def _env_problems(name: str, container: Doc, entry: Doc) -> list[str]:
    problems = []
    if container.get("envFrom"):
        problems.append(f"k8s: {name} takes envFrom: every variable must be named")
    env = {item["name"]: item for item in container.get("env", [])}
    if set(env) != env_for(entry):
        extra, missing = sorted(set(env) - env_for(entry)), sorted(env_for(entry) - set(env))
        problems.append(f"k8s: {name} environment differs from cluster.yml (extra {extra}, missing {missing})")
    secret = set(entry.get("secrets", []))
    for variable, item in env.items():
        source = item.get("valueFrom", {})
        if variable in secret and "secretKeyRef" not in source:
            problems.append(f"k8s: {name} takes the secret {variable} from elsewhere than a Secret")
        if variable not in secret and "secretKeyRef" in source:
            problems.append(f"k8s: {name} takes {variable} from a Secret, but cluster.yml does not call it secret")
    return problems


def _key_problems(name: str, pod: Doc, container: Doc, entry: Doc) -> list[str]:
    """The keyring: exactly cluster.yml's files, from Secrets, mounted where HOTLINE_KEYS_DIR says."""
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    mounted: list[str] = []
    keys_dir = next((i.get("value") for i in container.get("env", []) if i["name"] == KEYS_DIR_VARIABLE), None)
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        if "secret" in volume:
            if mount["mountPath"] != keys_dir:
                return [f"k8s: {name} mounts a Secret at {mount['mountPath']}, not at {KEYS_DIR_VARIABLE}"]
            items = volume["secret"].get("items")
            if not items:
                return [f"k8s: {name} mounts a whole Secret: list its files (items)"]
            mounted += [item["path"] for item in items]
    if sorted(mounted) != sorted(entry.get("keys", [])):
        return [f"k8s: {name} mounts {sorted(mounted)}, not {sorted(entry.get('keys', []))}"]
    return []


def _peer(peer: Doc) -> str:
    if "ipBlock" in peer:
        return "internet"
    labels = peer.get("namespaceSelector", {}).get("matchLabels", {})
    if labels.get(STAFF_LABEL[0]) == STAFF_LABEL[1]:
        return "staff"
    if labels.get(MONITORING_NAMESPACE[0]) == MONITORING_NAMESPACE[1]:
        return MONITORING
    return str(peer.get("podSelector", {}).get("matchLabels", {}).get("app", "?"))


def policy_edges(policies: Mapping[str, Doc]) -> tuple[set[Edge], set[Edge], set[str]]:
    """(ingress edges, egress edges to pods, pods with internet egress) the policies allow."""
    ingress: set[Edge] = set()
    egress: set[Edge] = set()
    outbound: set[str] = set()
    for policy in policies.values():
        spec = policy["spec"]
        selected = spec.get("podSelector", {}).get("matchLabels", {}).get("app")
        if selected is None:
            continue  # the namespace-wide ones: default deny, DNS
        for rule in spec.get("ingress", []):
            ingress |= {(_peer(peer), selected) for peer in rule.get("from", [])}
        for rule in spec.get("egress", []):
            for peer in rule.get("to", []):
                if _peer(peer) == "internet":
                    outbound.add(selected)
                else:
                    egress.add((selected, _peer(peer)))
    return ingress, egress, outbound


def _policy_problems(policies: Mapping[str, Doc], cluster: Doc) -> list[str]:
    problems = []
    deny = [p for p in policies.values() if p["spec"].get("podSelector") == {} and not p["spec"].get("ingress")]
    if not any({"Ingress", "Egress"} <= set(p["spec"].get("policyTypes", [])) for p in deny):
        problems.append("k8s: no default-deny NetworkPolicy (all pods, ingress and egress)")
    for policy in policies.values():
        if policy["spec"].get("podSelector") == {} and policy["spec"].get("ingress"):
            problems.append(f"k8s: NetworkPolicy {policy['metadata']['name']} opens ingress to every pod")
    ingress, egress, outbound = policy_edges(policies)
    edges = expected_edges(cluster)
    if ingress != edges:
        problems.append(f"k8s: ingress allows {sorted(ingress - edges)} beyond and lacks {sorted(edges - ingress)}")
    inside = {(s, t) for s, t in edges if s not in OUTSIDERS}
    if egress != inside:
        problems.append(f"k8s: egress allows {sorted(egress - inside)} beyond and lacks {sorted(inside - egress)}")
    calls_out = {name for name, entry in runnable(cluster).items() if entry.get("outbound")}
    if outbound != calls_out:
        problems.append(f"k8s: internet egress for {sorted(outbound)}, cluster.yml says {sorted(calls_out)}")
    return problems + _port_problems(policies, cluster)


def _port_problems(policies: Mapping[str, Doc], cluster: Doc) -> list[str]:
    """Ingress to a process with a metrics port names its ports: the monitoring system's
    rule the metrics port alone, every other rule never it."""
    problems = []
    for policy in policies.values():
        spec = policy["spec"]
        target = spec.get("podSelector", {}).get("matchLabels", {}).get("app")
        metrics_port = cluster["processes"].get(target, {}).get("metrics_port")
        if metrics_port is None:
            continue
        for rule in spec.get("ingress", []):
            peers = {_peer(peer) for peer in rule.get("from", [])}
            ports = [port.get("port") for port in rule.get("ports", [])]
            if MONITORING in peers and (peers != {MONITORING} or ports != [metrics_port]):
                problems.append(f"k8s: the rule for {sorted(peers)} to {target} opens {ports}, not {metrics_port}")
            elif MONITORING not in peers and (not ports or metrics_port in ports):
                problems.append(f"k8s: {sorted(peers)} may reach {target}'s metrics port {metrics_port}")
    return problems


# -- all ---------------------------------------------------------------------------------


def problems(deploy_dir: Path = DEPLOY) -> list[str]:
    """Everything wrong in deploy_dir's compose.yml and k8s/ against its cluster.yml."""
    cluster = load_cluster(deploy_dir)
    compose = yaml.safe_load((deploy_dir / "compose.yml").read_text(encoding="utf-8"))
    found = compose_problems(compose, cluster) + k8s_problems(load_manifests(deploy_dir / "k8s"), cluster)
    return found + cluster_problems(cluster)


def cluster_problems(cluster: Doc) -> list[str]:
    """cluster.yml itself: secrets are settings; reached_by names exist; monitoring reaches
    exactly the processes with a metrics port, which read the metrics settings."""
    problems = []
    known = set(runnable(cluster)) | set(cluster["services"]) | set(OUTSIDERS)
    for name, entry in runnable(cluster).items():
        if not set(entry.get("secrets", [])) <= set(entry.get("settings", [])):
            problems.append(f"cluster.yml: {name}'s secrets are not all among its settings")
        has_port = "metrics_port" in entry
        if has_port != (MONITORING in entry.get("reached_by", [])):
            problems.append(f"cluster.yml: {name} has a metrics port only if monitoring reaches it, and back")
        if has_port != ({"HOTLINE_METRICS_PORT", "HOTLINE_METRICS_HOST"} <= set(entry.get("settings", []))):
            problems.append(f"cluster.yml: {name} has a metrics port only with HOTLINE_METRICS_PORT and _HOST")
    for source, target in expected_edges(cluster):
        if source not in known:
            problems.append(f"cluster.yml: {target} is reached by {source}, which is not in the cluster")
    return problems


def main(argv: list[str]) -> int:
    deploy_dir = Path(argv[0]) if argv else DEPLOY
    found = problems(deploy_dir)
    print("\n".join(found) if found else f"{deploy_dir}: compose and k8s match cluster.yml")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
