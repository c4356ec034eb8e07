"""The Kubernetes manifests: valid against the Kubernetes schemas (offline, strict), the
kustomization complete, and the topology right (probes, replicas, strategy, secrets, scraping)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

import pytest
import typer
from typer.testing import CliRunner

from gateway.settings import GatewaySettings
from mlgate.cli import app
from monitor import MonitorConfig
from tests.deploy.manifests import (
    DEPLOY,
    K8S,
    KUBERNETES_VERSION,
    base_objects,
    by_kind,
    container,
    documents,
    env_names,
    kustomization,
)

# Validates every file given on the command line in a process whose sockets are refused, so a
# schema fetched from the network would fail the test instead of passing quietly.
OFFLINE_VALIDATOR = """
import json, sys, yaml, kubernetes_validate

def no_network(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
        raise RuntimeError(f"network use during validation: {event} {args!r}")

sys.addaudithook(no_network)
out = []
for path in sys.argv[2:]:
    for doc in yaml.safe_load_all(open(path)):
        if doc is None:
            continue
        try:
            kubernetes_validate.validate(doc, sys.argv[1], strict=True)
            out.append([path, doc["kind"], doc["metadata"]["name"], None])
        except kubernetes_validate.ValidationError as exc:
            out.append([path, doc["kind"], doc["metadata"]["name"], str(exc.message)])
print(json.dumps(out))
"""

CRD_FILES = ["k8s/extras/servicemonitor.yaml", "kserve/cluster-serving-runtime.yaml"]


def core_files() -> list[str]:
    files = [str(K8S / name) for name in kustomization()["resources"]]
    return [*files, str(K8S / "extras" / "secrets.example.yaml")]


def test_every_manifest_validates_against_the_kubernetes_schemas_offline() -> None:
    run = subprocess.run(
        [sys.executable, "-c", OFFLINE_VALIDATOR, KUBERNETES_VERSION, *core_files()],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)
    kinds = {kind for _path, kind, _name, _error in results}
    assert kinds >= {
        "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
        "PersistentVolumeClaim", "ServiceAccount", "Secret",
    }  # fmt: skip
    errors = [r for r in results if r[3] is not None]
    assert errors == []


def test_the_validator_rejects_broken_manifests_offline(tmp_path) -> None:  # noqa: ANN001
    """The check above has teeth: a wrong type and a misspelt field are each reported."""
    wrong_type = documents(K8S / "gateway.yaml")[0]
    wrong_type["spec"]["replicas"] = "two"
    misspelt = documents(K8S / "gateway.yaml")[0]
    misspelt["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    path = tmp_path / "broken.yaml"
    path.write_text("---\n".join(json.dumps(d) + "\n" for d in (wrong_type, misspelt)))
    run = subprocess.run(
        [sys.executable, "-c", OFFLINE_VALIDATOR, KUBERNETES_VERSION, str(path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    errors = [error for _path, _kind, _name, error in json.loads(run.stdout)]
    assert len(errors) == 2 and all(errors), errors
    assert "'two' is not of type 'integer'" in errors[0]
    assert "httpGett" in errors[1]


def test_the_kustomization_names_every_file_and_generates_the_config() -> None:
    k = kustomization()
    assert k["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and k["kind"] == "Kustomization"
    listed = set(k["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    generated = {g["name"]: g for g in k["configMapGenerator"]}
    assert set(generated) == {"mlgate-env", "mlgate-config"}
    for name in generated["mlgate-config"]["files"]:
        assert (K8S / name).is_file()
    env = dict(line.split("=", 1) for line in generated["mlgate-env"]["literals"])
    assert env["MLGATE_REGISTRY"].startswith("s3://") and env["MLGATE_LOGS"].startswith("s3://")
    # every ConfigMap a pod reads is generated here; every Secret is one docs/deploy.md names
    secrets = {d["metadata"]["name"] for d in documents(K8S / "extras/secrets.example.yaml")}
    for obj in base_objects():
        if obj["kind"] != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        ctr = container(obj)
        maps = {e["configMapRef"]["name"] for e in ctr.get("envFrom", [])}
        maps |= {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
        assert maps <= set(generated)
        refs = [e["valueFrom"]["secretKeyRef"] for e in ctr["env"] if "valueFrom" in e]
        assert refs and all(r["name"] in secrets and r.get("optional") for r in refs)
        assert {v["name"] for v in pod["volumes"]} == {m["name"] for m in ctr["volumeMounts"]}


def test_the_config_map_is_a_valid_mlgate_toml() -> None:
    config = tomllib.loads((K8S / "mlgate.toml").read_text())
    GatewaySettings.from_mapping(config["gateway"])  # raises on an unknown or bad setting
    MonitorConfig.from_section(config["monitor"], environ={})


def test_gateway_replicas_probes_and_scraping() -> None:
    gateway = by_kind("Deployment", "mlgate-gateway")
    assert gateway["spec"]["replicas"] >= 2
    assert gateway["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    ctr = container(gateway)
    assert ctr["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert ctr["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert ctr["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    ports = {p["name"]: p["containerPort"] for p in ctr["ports"]}
    assert ports == {"http": 8080, "grpc": 8081}
    annotations = gateway["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080"
    assert {"MLGATE_ADMIN_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= env_names(ctr)
    # the drain fits in the grace period: preStop sleep + drain_timeout_s
    config = tomllib.loads((K8S / "mlgate.toml").read_text())
    grace = gateway["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert 5 + config["gateway"]["drain_timeout_s"] < grace


def test_service_hpa_and_pdb_point_at_the_gateway_pods() -> None:
    gateway = by_kind("Deployment", "mlgate-gateway")
    labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert gateway["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = by_kind("Service", "mlgate-gateway")
    assert service["spec"]["selector"].items() <= labels.items()
    port_names = {p["name"] for p in container(gateway)["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} == port_names == {"http", "grpc"}
    pdb = by_kind("PodDisruptionBudget", "mlgate-gateway")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = by_kind("HorizontalPodAutoscaler", "mlgate-gateway")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "mlgate-gateway"
    }  # fmt: skip
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


@pytest.mark.parametrize("role", ["monitor", "trainer"])
def test_monitor_and_trainer_are_single_replica_with_recreate(role: str) -> None:
    deployment = by_kind("Deployment", f"mlgate-{role}")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert container(deployment)["args"] == ["serve", "--role", role]


def test_the_monitor_keeps_its_state_and_exports_metrics() -> None:
    monitor = by_kind("Deployment", "mlgate-monitor")
    pod = monitor["spec"]["template"]["spec"]
    home = next(v for v in pod["volumes"] if v["name"] == "home")
    claim = by_kind("PersistentVolumeClaim", home["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    ctr = container(monitor)
    env = {e["name"]: e.get("value") for e in ctr["env"]}
    assert env["MLGATE_MONITOR_METRICS_PORT"] == "9100"
    assert env["MLGATE_MONITOR_METRICS_HOST"] == "0.0.0.0"
    annotations = monitor["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == env["MLGATE_MONITOR_METRICS_PORT"]
    assert {"MLGATE_WEBHOOK_URL", "MLGATE_WEBHOOK_SECRET"} <= set(env)


def test_the_trainer_exports_its_rollout_metrics() -> None:
    trainer = by_kind("Deployment", "mlgate-trainer")
    env = {e["name"]: e.get("value") for e in container(trainer)["env"]}
    port = env["MLGATE_TRAINER_METRICS_PORT"]
    assert env["MLGATE_TRAINER_METRICS_HOST"] == "0.0.0.0"
    assert trainer["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == port
    assert {p["containerPort"] for p in container(trainer)["ports"]} == {int(port)}
    command = typer.main.get_command(app).commands["trainer"].commands["run"]  # type: ignore[attr-defined]
    envvars = {p.envvar for p in command.params}
    assert {"MLGATE_TRAINER_METRICS_PORT", "MLGATE_TRAINER_METRICS_HOST"} <= envvars


def test_every_pod_runs_as_the_image_user_without_privileges() -> None:
    for obj in base_objects():
        if obj["kind"] != "Deployment":
            continue
        pod = obj["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["automountServiceAccountToken"] is False
        sec = container(obj)["securityContext"]
        assert sec["allowPrivilegeEscalation"] is False and sec["readOnlyRootFilesystem"] is True
        assert sec["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"] for m in container(obj)["volumeMounts"]}
        # the only writable paths: home, numba's cache, /tmp (the root filesystem is read-only)
        assert {"/var/lib/mlgate", "/var/cache/mlgate/numba", "/tmp"} <= mounts


def test_container_arguments_are_options_the_cli_accepts() -> None:
    """Each ``--option`` in the manifests' args is one ``mlgate serve`` really has."""
    help_text = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).output
    runtime = documents(DEPLOY / "kserve/cluster-serving-runtime.yaml")[0]
    arg_lists = [container(o)["args"] for o in base_objects() if o["kind"] == "Deployment"]
    arg_lists.append(runtime["spec"]["containers"][0]["args"])
    for args in arg_lists:
        assert args[0] == "serve"
        for option in (a for a in args if a.startswith("--")):
            assert option in help_text, f"{option} is not an option of mlgate serve"


def test_custom_resources_have_their_required_fields() -> None:
    """CRDs are not in the Kubernetes schemas: check the fields their operators require."""
    [runtime] = documents(DEPLOY / "kserve/cluster-serving-runtime.yaml")
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    assert runtime["kind"] == "ClusterServingRuntime"
    spec = runtime["spec"]
    assert "v2" in spec["protocolVersions"]
    assert {f["name"] for f in spec["supportedModelFormats"]} >= {"mlgate", "sklearn", "onnx"}
    [ctr] = spec["containers"]
    assert ctr["name"] == "kserve-container"  # the name KServe expects for the predictor
    assert ctr["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    [monitor] = documents(K8S / "extras/servicemonitor.yaml")
    assert (
        monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "ServiceMonitor"
    )
    ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    service_ports = {
        p["name"] for o in base_objects() if o["kind"] == "Service" for p in o["spec"]["ports"]
    }
    assert ports <= service_ports
    for name in CRD_FILES:
        assert (DEPLOY / name).is_file()
