"""The docker compose file: MinIO, two gateways, monitor, trainer, Prometheus, Grafana; every
file it mounts exists, and Prometheus scrapes what the services listen on."""

from __future__ import annotations

import json

import yaml

from tests.deploy.manifests import DEPLOY, ROOT, documents

COMPOSE = DEPLOY / "compose"
MLGATE_SERVICES = ("gateway-1", "gateway-2", "monitor", "trainer")


def compose() -> dict:  # type: ignore[type-arg]
    [doc] = documents(COMPOSE / "compose.yaml")
    return doc


def test_services_and_roles() -> None:
    services = compose()["services"]
    assert set(services) >= {"minio", "minio-init", *MLGATE_SERVICES, "prometheus", "grafana"}
    for name in MLGATE_SERVICES:
        service = services[name]
        command = service["command"]
        role = command[command.index("--role") + 1]
        assert role == name.split("-")[0]
        env = service["environment"]
        assert env["MLGATE_REGISTRY"].startswith("s3://") and env["MLGATE_LOGS"].startswith("s3://")
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
        assert service["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
        build = service["build"]
        assert (COMPOSE / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    host_ports = [p.split(":")[0] for s in services.values() for p in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)), "two services publish the same host port"
    assert services["monitor"]["environment"]["MLGATE_MONITOR_METRICS_HOST"] == "0.0.0.0"


def test_every_mounted_file_exists() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE / source).exists(), f"{name}: {source}"


def test_prometheus_scrapes_the_gateways_and_the_monitor() -> None:
    services = compose()["services"]
    config = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets["mlgate-gateway"] == ["gateway-1:8080", "gateway-2:8080"]
    monitor_port = services["monitor"]["command"][-1]
    assert targets["mlgate-monitor"] == [f"monitor:{monitor_port}"]
    trainer_port = services["trainer"]["environment"]["MLGATE_TRAINER_METRICS_PORT"]
    assert targets["mlgate-trainer"] == [f"trainer:{trainer_port}"]
    assert config["rule_files"] == ["/etc/prometheus/alerts.yaml"]
    mounts = services["prometheus"]["volumes"]
    assert "../prometheus/alerts.yaml:/etc/prometheus/alerts.yaml:ro" in mounts


def test_grafana_is_provisioned_with_the_dashboard() -> None:
    grafana = compose()["services"]["grafana"]
    dashboard = next(v for v in grafana["volumes"] if v.endswith(".json:ro"))
    source, target = dashboard.split(":")[:2]
    assert json.loads((COMPOSE / source).read_text())["uid"] == "mlgate-overview"
    provider = yaml.safe_load((COMPOSE / "grafana/dashboards.yaml").read_text())
    assert target.startswith(provider["providers"][0]["options"]["path"])
    assert (ROOT / "deploy/grafana/mlgate-dashboard.json").is_file()
