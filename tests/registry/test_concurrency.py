"""Race-freedom on both backends, with real processes: version allocation, route
compare-and-swap, and a writer killed between artifact upload and manifest write."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from registry import Canary, ModelNotFound, Registry, VersionNotFound
from tests.registry import workers
from tests.registry.onnx_models import linear_regressor

pytestmark = pytest.mark.slow

WRITERS = 8
PER_WRITER = 5


@pytest.fixture(scope="module")
def pool(s3_endpoint: str) -> Iterator[Any]:
    """Eight warm worker processes (spawned after the S3 endpoint is in the environment)."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(WRITERS, initializer=workers.warm_up) as p:
        yield p
        p.terminate()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # ONNX keeps the worker processes light: registering it needs no scikit-learn import.
    path = tmp_path_factory.mktemp("model") / "model.onnx"
    path.write_bytes(linear_regressor().SerializeToString())
    return path


def _race(pool: Any, fn: Callable[..., Any], args: list[tuple[Any, ...]], sync: Path) -> list[Any]:
    """Start one task per worker, release them together once all are waiting."""
    sync.mkdir()
    pending = pool.starmap_async(fn, [(*a, str(sync), i) for i, a in enumerate(args)], chunksize=1)
    deadline = time.monotonic() + 120
    while len(list(sync.glob("ready-*"))) < len(args):
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.01)
    (sync / "go").touch()
    return list(pending.get(timeout=240))


def test_concurrent_registrations_get_distinct_versions(
    pool: Any, registry_url: str, model_path: Path, tmp_path: Path
) -> None:
    reg = Registry(registry_url)
    seen: dict[int, str] = {}
    done = threading.Event()
    errors: list[BaseException] = []

    def observe() -> None:
        # Every version a reader can see must already verify against its manifest.
        try:
            while not done.is_set():
                try:
                    for mv in reg.versions("race"):
                        if mv.version not in seen:
                            reg.artifact_bytes(mv)
                            seen[mv.version] = mv.sha256
                except ModelNotFound:
                    pass
                done.wait(0.005)  # poll often: the race itself lasts well under a second
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    observer = threading.Thread(target=observe)
    observer.start()
    try:
        args = [(registry_url, "race", str(model_path), PER_WRITER)] * WRITERS
        results = _race(pool, workers.register_many, args, tmp_path / "sync")
    finally:
        done.set()
        observer.join()
    assert not errors
    pids = {pid for pid, _ in results}
    got = sorted(v for _, versions in results for v in versions)
    committed = [mv.version for mv in reg.versions("race")]
    print(f"{registry_url.split(':')[0]}: {len(pids)} processes, versions {got[0]}..{got[-1]}, "
          f"{len(got)} returned, {len(set(got))} distinct, observer saw {len(seen)}")  # fmt: skip
    assert len(pids) == WRITERS
    assert got == list(range(1, WRITERS * PER_WRITER + 1))
    assert committed == got
    assert seen, "the observer thread saw no committed version while the race ran"
    for mv in reg.versions("race"):
        assert seen.get(mv.version, mv.sha256) == mv.sha256 == reg.get("race", mv.version).sha256
        reg.artifact_bytes(mv)
    events = [e for e in reg.events("race") if e.kind == "register"]
    assert sorted(e.version for e in events if e.version is not None) == got


def test_concurrent_canary_increments_lose_no_update(
    pool: Any, registry_url: str, model_path: Path, tmp_path: Path
) -> None:
    reg = Registry(registry_url)
    reg.register("canary", model_path)
    reg.register("canary", model_path)
    start = reg.update_route(
        "canary",
        lambda r: type(r)(champion=r.champion, canary=Canary(version=2, weight=0.0)),
        kind="canary",
    )
    args = [(registry_url, "canary", PER_WRITER)] * WRITERS
    results = _race(pool, workers.bump_canary, args, tmp_path / "sync")
    route = reg.route("canary")
    assert len({pid for pid, _ in results}) == WRITERS
    assert route.canary is not None
    lost = WRITERS * PER_WRITER - route.canary.weight
    print(f"{registry_url.split(':')[0]}: canary weight {route.canary.weight}, lost {lost}")
    assert route.canary.weight == WRITERS * PER_WRITER
    assert route.generation == start.generation + WRITERS * PER_WRITER
    bumps = [e for e in reg.events("canary") if e.kind == "canary"]
    assert len(bumps) == 1 + WRITERS * PER_WRITER
    assert sorted(e.generation or 0 for e in bumps) == list(
        range(start.generation, route.generation + 1)
    )


CHILD = """
import pathlib, sys, threading
from registry import Registry

def hold():  # at the commit point: say so, then wait to be killed
    pathlib.Path(sys.argv[3], "held").touch()
    threading.Event().wait(120)

Registry(sys.argv[1], before_commit=hold).register("crash", sys.argv[2])
"""


def test_writer_killed_before_manifest_leaves_no_version(
    registry_url: str, model_path: Path, tmp_path: Path
) -> None:
    reg = Registry(registry_url)
    assert reg.register("crash", model_path).version == 1
    hold = tmp_path / "hold"
    hold.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, registry_url, str(model_path), str(hold)], cwd=os.getcwd()
    )
    try:
        deadline = time.monotonic() + 60
        while not (hold / "held").exists():
            assert child.poll() is None, "the registering process died early"
            assert time.monotonic() < deadline, "the registering process never reached the hold"
            time.sleep(0.01)
        # The artifact of version 2 is stored, its manifest is not: kill now.
        assert reg.store.exists("models/crash/versions/2/model.onnx")
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert [mv.version for mv in reg.versions("crash")] == [1]
    with pytest.raises(VersionNotFound):
        reg.get("crash", 2)
    assert reg.get("crash", "latest").version == 1
    assert reg.route("crash").champion == 1
    assert not reg.store.exists("models/crash/versions/2/manifest.json")
    # The number stays burnt; the next writer moves past it.
    assert reg.register("crash", model_path).version == 3
    assert [mv.version for mv in reg.versions("crash")] == [1, 3]
