"""Reading the files under ``deploy/``: every YAML document, by folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.30.0"  # the oldest Kubernetes the manifests promise to run on


def documents(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document of ``path``."""
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def kustomization() -> dict[str, Any]:
    return documents(K8S / "kustomization.yaml")[0]


def base_objects() -> list[dict[str, Any]]:
    """The objects of the kustomization's resources, in order."""
    return [doc for name in kustomization()["resources"] for doc in documents(K8S / name)]


def by_kind(kind: str, name: str) -> dict[str, Any]:
    found = [o for o in base_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: found {len(found)}"
    return found[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env_names(ctr: dict[str, Any]) -> set[str]:
    return {e["name"] for e in ctr.get("env", [])}
