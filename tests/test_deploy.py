"""Lint the deployment assets in deploy/ as far as this machine allows (no container engine)."""

from __future__ import annotations

import json
import re
import runpy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from apns_exporter import cli, config
from apns_exporter.mock import cli as mock_cli
from apns_exporter.mock.faults import BUILTIN_SCENARIOS
from apns_exporter.mock.pki import generate_signing_key

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "Dockerfile"
UNIT = DEPLOY / "systemd" / "apns-exporter.service"
RULES = ROOT / "alerts" / "apns-exporter.rules.yml"
PORT = 10054
UID = 10054

YAML_FILES = sorted([*DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml")])
MANIFESTS = sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")


def documents(path: Path) -> list[Any]:
    """Every YAML document in ``path``."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def manifest(name: str, kind: str) -> dict[str, Any]:
    """The one object of ``kind`` in deploy/kubernetes/``name``."""
    (found,) = [d for d in documents(KUBERNETES / name) if d["kind"] == kind]
    assert isinstance(found, dict)
    return found


def compose() -> dict[str, Any]:
    """deploy/docker-compose.yml as data."""
    data = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_deploy_has_the_promised_assets() -> None:
    """The Dockerfile, compose file, Kubernetes manifests and systemd unit all exist."""
    for path in (DOCKERFILE, DEPLOY / "docker-compose.yml", UNIT, KUBERNETES / "deployment.yaml"):
        assert path.is_file(), path
    assert len(YAML_FILES) >= 10


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    """Every YAML file under deploy/ parses and holds at least one document."""
    assert documents(path)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_kubernetes_manifests_have_identity(path: Path) -> None:
    """Each Kubernetes object has apiVersion, kind, metadata.name and the app label."""
    for doc in documents(path):
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), path.name
        assert doc["metadata"]["name"] == "apns-exporter" or doc["kind"] == "Secret"
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "apns-exporter"


def test_kustomization_lists_existing_files() -> None:
    """kustomization.yaml names only files that exist, and not the sharded alternative."""
    (kustomization,) = documents(KUBERNETES / "kustomization.yaml")
    resources = kustomization["resources"]
    assert all((KUBERNETES / r).is_file() for r in resources)
    assert "deployment.yaml" in resources
    assert "statefulset-sharded.yaml" not in resources


def pod_spec(kind: str, name: str) -> dict[str, Any]:
    """The pod template spec of a workload manifest."""
    spec = manifest(name, kind)["spec"]["template"]["spec"]
    assert isinstance(spec, dict)
    return spec


@pytest.mark.parametrize(
    ("kind", "name"),
    [("Deployment", "deployment.yaml"), ("StatefulSet", "statefulset-sharded.yaml")],
)
def test_workloads_are_locked_down(kind: str, name: str) -> None:
    """Pods run as the image's non-root UID with a read-only root and no capabilities."""
    spec = pod_spec(kind, name)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == UID
    assert spec["automountServiceAccountToken"] is False
    (container,) = spec["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["ports"][0]["containerPort"] == PORT
    assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert mounts["credentials"]["readOnly"] is True
    assert "subPath" not in mounts["credentials"]  # subPath mounts never see Secret updates
    assert volumes["credentials"]["secret"]["secretName"] == "apns-exporter-credentials"
    assert mounts["tmp"]["mountPath"] == "/tmp"


def test_deployment_runs_exactly_one_replica_and_never_overlaps() -> None:
    """One replica and the Recreate strategy: canaries and JWTs are never doubled."""
    deployment = manifest("deployment.yaml", "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    text = (KUBERNETES / "deployment.yaml").read_text()
    assert "TooManyProviderTokenUpdates" in text  # the comment explains why


def test_deployment_args_parse_with_the_cli() -> None:
    """The Deployment's arguments are flags the exporter's command line accepts."""
    (container,) = pod_spec("Deployment", "deployment.yaml")["containers"]
    args = cli.build_parser().parse_args(container["args"])
    assert args.config_file == "/etc/apns-exporter/config.yml"


def test_statefulset_shards_by_pod_index() -> None:
    """Each StatefulSet pod probes shard (pod index)/replicas, a value the CLI accepts."""
    statefulset = manifest("statefulset-sharded.yaml", "StatefulSet")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    field = env["SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert field == "metadata.labels['apps.kubernetes.io/pod-index']"
    replicas = statefulset["spec"]["replicas"]
    assert f"--targets.shard=$(SHARD_INDEX)/{replicas}" in container["args"]
    # Kubernetes substitutes $(SHARD_INDEX); the last pod's value must parse.
    args = [a.replace("$(SHARD_INDEX)", str(replicas - 1)) for a in container["args"]]
    assert cli.build_parser().parse_args(args).shard == (replicas - 1, replicas)


def test_service_and_servicemonitor_agree_with_the_pods() -> None:
    """The Service selects the pods, and the ServiceMonitor scrapes the Service's named port."""
    labels = manifest("deployment.yaml", "Deployment")["spec"]["template"]["metadata"]["labels"]
    service = manifest("service.yaml", "Service")
    monitor = manifest("servicemonitor.yaml", "ServiceMonitor")
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == PORT
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == port["name"] == port["targetPort"]
    # The alert rules expect job="apns-exporter", which the operator takes from the Service.
    assert service["metadata"]["name"] == "apns-exporter"


def test_prometheusrule_embeds_exactly_the_rule_file() -> None:
    """The PrometheusRule's groups equal alerts/apns-exporter.rules.yml, and both are current."""
    rule = manifest("prometheusrule.yaml", "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    generator = runpy.run_path(str(ROOT / "alerts" / "generate.py"))
    assert generator["main"](["--check"]) == 0


def test_prometheusrule_keeps_promql_readable_and_names_its_operator_version() -> None:
    """Multi-line expressions are YAML blocks, and the header says keep_firing_for's needs."""
    text = (KUBERNETES / "prometheusrule.yaml").read_text()
    assert "expr: |" in text
    assert "prometheus-operator >= v0.66" in text


def test_configmap_config_is_valid(tmp_path: Path) -> None:
    """The example exporter config in the ConfigMap passes validation with a key in place."""
    text = manifest("configmap.yaml", "ConfigMap")["data"]["config.yml"]
    (tmp_path / "AuthKey_ABC123DEFG.p8").write_bytes(generate_signing_key().private_pem)
    text = text.replace("/secrets/", f"{tmp_path}/")
    cfg = config.parse(text, source="configmap.yaml", base_dir=tmp_path)
    assert [t.name for t in cfg.targets] == ["prod-main"]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    lines = [ln for ln in DOCKERFILE.read_text().splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def test_dockerfile_is_multi_stage_on_slim_python() -> None:
    """Two stages from python:3.12-slim: a build stage and a clean runtime stage."""
    text = DOCKERFILE.read_text()
    froms = [args for word, args in dockerfile_instructions() if word == "FROM"]
    assert len(froms) == 2
    assert froms[0].endswith("AS build")
    assert "ARG PYTHON_IMAGE=python:3.12-slim" in text
    assert "COPY --from=build" in text


def test_dockerfile_runs_as_a_fixed_numeric_uid() -> None:
    """USER is numeric (runAsNonRoot can check it) and matches the Kubernetes manifests."""
    users = [args for word, args in dockerfile_instructions() if word == "USER"]
    assert users == [f"{UID}:{UID}"]


def test_dockerfile_entrypoint_port_and_healthcheck() -> None:
    """Exec-form ENTRYPOINT/CMD, EXPOSE 10054, and a shell-free Python HEALTHCHECK."""
    instructions = dict(dockerfile_instructions())
    assert json.loads(instructions["ENTRYPOINT"]) == ["apns-exporter"]
    assert json.loads(instructions["CMD"]) == ["--config.file=/etc/apns-exporter/config.yml"]
    assert instructions["EXPOSE"] == str(PORT)
    check = instructions["HEALTHCHECK"]
    command = json.loads(check[check.index("CMD") + 3 :])
    assert command[:2] == ["python", "-c"]
    assert f"http://127.0.0.1:{PORT}/-/healthy" in command[2]
    compile(command[2], "healthcheck", "exec")  # the one-liner is valid Python


def test_dockerfile_has_no_curl_and_oci_labels() -> None:
    """No curl anywhere; the OCI title, source, version and licence labels are set."""
    text = DOCKERFILE.read_text()
    assert "curl" not in text.lower()
    for label in ("title", "description", "source", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{label}=" in text


def test_dockerfile_copies_only_what_the_context_keeps() -> None:
    """Every COPY source exists and is re-included by Dockerfile.dockerignore."""
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    for word, args in dockerfile_instructions():
        if word == "COPY" and not args.startswith("--from"):
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert f"!{source.rstrip('/')}" in {i.rstrip("/") for i in ignore}, source


def test_compose_wires_the_stack() -> None:
    """The compose file runs the exporter, the mock, Prometheus and Grafana with our files."""
    services = compose()["services"]
    assert {"pki", "apns-exporter", "mock-apns", "prometheus", "alertmanager", "grafana"} <= (
        services.keys()
    )
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source}"
    for name in ("apns-exporter", "mock-apns"):
        assert services[name]["read_only"] is True
        assert services[name]["cap_drop"] == ["ALL"]
    # The mock's certificate names 127.0.0.1, so it shares the exporter's network namespace.
    assert services["mock-apns"]["network_mode"] == "service:apns-exporter"


def test_compose_commands_parse_with_the_clis() -> None:
    """The exporter and mock-apns commands in the compose file are accepted by their parsers."""
    services = compose()["services"]
    cli.build_parser().parse_args(services["apns-exporter"]["command"])
    try:
        args = cli.build_parser().parse_args(services["mock-apns"]["command"])
    except SystemExit:
        pytest.fail(
            "apns-exporter rejects the compose mock-apns command; if the error says "
            "'ambiguous option: --config', the top-level parser needs allow_abbrev=False"
        )
    assert args.command == "mock-apns"
    assert args.scenario in BUILTIN_SCENARIOS
    assert mock_cli.parse_listen(args.listen) == ("127.0.0.1", 2197)


def test_compose_prometheus_loads_the_rules_under_the_expected_job() -> None:
    """Prometheus scrapes job apns-exporter, the job the rules select on, and loads the rules."""
    prometheus = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["job_name"] == "apns-exporter"
    assert 'job="apns-exporter"' in RULES.read_text()
    mounts = compose()["services"]["prometheus"]["volumes"]
    rule_mount = next(m for m in mounts if m.startswith("../alerts/"))
    assert rule_mount.split(":")[1] in prometheus["rule_files"]


def test_compose_sends_alerts_to_the_shipped_alertmanager_example() -> None:
    """Prometheus alerts the compose Alertmanager, which runs the package's example config."""
    prometheus = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    (alertmanagers,) = prometheus["alerting"]["alertmanagers"]
    assert alertmanagers["static_configs"][0]["targets"] == ["alertmanager:9093"]
    service = compose()["services"]["alertmanager"]
    source, destination = service["volumes"][0].split(":")[:2]
    assert (DEPLOY / source).resolve() == ROOT / "apns_exporter" / "assets" / "alertmanager.yml"
    assert f"--config.file={destination}" in service["command"]


def test_compose_configs_are_valid_against_generated_credentials(tmp_path: Path) -> None:
    """init-pki.py's files satisfy both the exporter config and the mock config."""
    init = runpy.run_path(str(DEPLOY / "compose" / "init-pki.py"))
    init["main"](tmp_path)
    text = (DEPLOY / "compose" / "apns-exporter.yml").read_text().replace("/pki/", f"{tmp_path}/")
    cfg = config.parse(text, source="apns-exporter.yml", base_dir=tmp_path)
    (target,) = cfg.targets
    assert target.auth.token is not None
    mock_text = (DEPLOY / "compose" / "mock.yml").read_text().replace("/pki/", f"{tmp_path}/")
    (tmp_path / "mock.yml").write_text(mock_text)
    (key,) = mock_cli.load_config(tmp_path / "mock.yml").keys
    assert (key.key_id, key.team_id) == (target.auth.token.key_id, target.auth.token.team_id)
    assert Path(key.key_file).is_file()
    # Idempotent: a second run keeps the credentials the services already use.
    before = (tmp_path / "AuthKey_COMPOSEKEY.p8").read_bytes()
    init["main"](tmp_path)
    assert (tmp_path / "AuthKey_COMPOSEKEY.p8").read_bytes() == before


def unit_settings() -> dict[str, list[str]]:
    """Section.Key -> values of the systemd unit, comments dropped."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not key=value: {raw!r}"
        settings.setdefault(f"{section}.{key}", []).append(value)
    return settings


def test_systemd_unit_has_the_hardening_and_lifecycle_keys() -> None:
    """The unit reloads on SIGHUP, restarts on failure, waits for the network, is sandboxed."""
    s = unit_settings()
    expected = {
        "Unit.After": "network-online.target",
        "Unit.Wants": "network-online.target",
        "Service.ExecReload": "/bin/kill -HUP $MAINPID",
        "Service.Restart": "on-failure",
        "Service.DynamicUser": "yes",
        "Service.ProtectSystem": "strict",
        "Service.ProtectHome": "yes",
        "Service.NoNewPrivileges": "yes",
        "Service.RestrictNamespaces": "yes",
        "Service.CapabilityBoundingSet": "",
        "Install.WantedBy": "multi-user.target",
    }
    for key, value in expected.items():
        assert s.get(key, [None])[0] == value, key
    assert "@system-service" in s["Service.SystemCallFilter"]
    (exec_start,) = s["Service.ExecStart"]
    assert "--config.file=/etc/apns-exporter/config.yml" in exec_start


def verifiable_unit(tmp_path: Path) -> Path:
    """A copy of the unit whose ExecStart exists here, as systemd-analyze verify checks it."""
    text = UNIT.read_text()
    text = re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", text, flags=re.MULTILINE)
    path = tmp_path / UNIT.name
    path.write_text(text)
    return path


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """systemd-analyze verify accepts the unit (or, without systemd, the unit parses)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        assert unit_settings()["Service.ExecStart"]
        return
    unit = verifiable_unit(tmp_path)
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert UNIT.name not in result.stderr, result.stderr


def test_systemd_unit_exposure_is_low(tmp_path: Path) -> None:
    """systemd-analyze security rates the sandbox OK (exposure at most 2.0), where available."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        assert "SystemCallFilter" in UNIT.read_text()
        return
    result = subprocess.run(
        [analyze, "security", "--offline=true", str(verifiable_unit(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    if match is None:  # systemd older than 252 has no --offline
        assert "unrecognized option" in result.stderr or "offline" in result.stderr
        return
    assert float(match.group(1)) <= 2.0, result.stdout


def test_monitors_relabel_instance_to_the_pod_name() -> None:
    """ServiceMonitor and PodMonitor set instance from the pod name, not the pod's IP."""
    service_monitor = manifest("servicemonitor.yaml", "ServiceMonitor")
    pod_monitor = manifest("podmonitor.yaml", "PodMonitor")
    endpoints = [*service_monitor["spec"]["endpoints"], *pod_monitor["spec"]["podMetricsEndpoints"]]
    for endpoint in endpoints:
        assert {
            "sourceLabels": ["__meta_kubernetes_pod_name"],
            "targetLabel": "instance",
        } in endpoint["relabelings"]
    # The rules select job="apns-exporter"; the pods carry it as their name label.
    assert pod_monitor["spec"]["jobLabel"] == "app.kubernetes.io/name"
    statefulset = manifest("statefulset-sharded.yaml", "StatefulSet")
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["app.kubernetes.io/name"] == "apns-exporter"
    assert pod_monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "http-metrics"
    (kustomization,) = documents(KUBERNETES / "kustomization.yaml")
    assert "podmonitor.yaml" not in kustomization["resources"], "it would scrape twice"
