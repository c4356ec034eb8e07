"""The trainer on S3 (moto's server): registry and log store both in a bucket; the claims
are the store's conditional writes, so two trainers still make one run per alert."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import s3fs

from registry import Registry
from tests.trainer.conftest import MODEL, World, champion, concept, rows, write_traffic
from trainer import TrainerService, history

pytestmark = pytest.mark.s3


def test_retrain_and_one_run_per_alert_on_s3(make_bucket, s3_endpoint: str, tmp_path: Path) -> None:
    bucket = make_bucket()
    reg = Registry(f"s3://{bucket}/registry")
    champion(reg)
    local = tmp_path / "logs"
    X = rows(1500, seed=7)
    write_traffic(local, X, concept(X, drifted=True))
    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint)
    fs.put(str(local) + "/", f"{bucket}/logs/", recursive=True)
    world = World(reg, tmp_path, tmp_path)
    reg.record_event(MODEL, "model.drift.detected", version=1,
                     detail={"alert_id": "s3-alert"}, actor="monitor")  # fmt: skip
    services = []
    for i in range(2):
        ctx = world.ctx()
        ctx.logs_url = f"s3://{bucket}/logs"
        ctx.storage_options = {"endpoint_url": s3_endpoint}
        ctx.owner = f"trainer-{i}"
        services.append(TrainerService(ctx))
    barrier = threading.Barrier(2)

    def poll(service: TrainerService) -> None:
        barrier.wait()
        service.tick()

    threads = [threading.Thread(target=poll, args=(s,)) for s in services]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    runs = history(reg, MODEL)
    assert len(runs) == 1, [r.owner for r in runs]
    assert runs[0].status == "registered", runs[0].reason
    assert runs[0].rows["production"] == 1500
    assert [mv.version for mv in reg.versions(MODEL)] == [1, 2]
    assert reg.get(MODEL, 2).lineage.trigger == "alert:s3-alert"
