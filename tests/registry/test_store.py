"""The storage seam's atomic operations, on both backends."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from registry.errors import RegistryError
from registry.store import Store, normalize_url, open_store


@pytest.fixture
def store(registry_url: str) -> Store:
    return open_store(registry_url)


def test_create_is_exclusive(store: Store) -> None:
    assert store.create("a/b.json", b"1")
    assert not store.create("a/b.json", b"2")
    assert store.read("a/b.json") == b"1"


def test_write_if_is_compare_and_swap(store: Store) -> None:
    assert store.read_tagged("r.json") is None
    assert store.write_if("r.json", b"v1", tag=None)
    assert not store.write_if("r.json", b"again", tag=None)
    found = store.read_tagged("r.json")
    assert found is not None and found[0] == b"v1"
    assert store.write_if("r.json", b"v2", tag=found[1])
    assert not store.write_if("r.json", b"v3", tag=found[1])  # stale tag
    assert store.read("r.json") == b"v2"


def test_stamp_changes_with_content(store: Store) -> None:
    assert store.stamp("s.json") is None and not store.exists("s.json")
    store.write("s.json", b"one")
    first = store.stamp("s.json")
    store.write("s.json", b"two!")
    assert first is not None and store.stamp("s.json") not in (None, first)


def test_concurrent_appends_are_all_kept(store: Store) -> None:
    def append(i: int) -> None:
        for j in range(5):
            store.append("log.jsonl", f"{i}-{j}\n".encode())

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(append, range(6)))
    lines = store.read("log.jsonl").decode().splitlines()
    assert sorted(lines) == sorted(f"{i}-{j}" for i in range(6) for j in range(5))


def test_listing(store: Store) -> None:
    assert store.children("models") == [] and store.keys("models") == []
    for key in ["models/a/x.json", "models/a/v/1/m", "models/b/y", "models/.hidden"]:
        store.write(key, b"")
    assert store.children("models") == ["a", "b"]
    assert store.children("models/a") == ["v", "x.json"]
    assert store.keys("models/a") == ["v/1/m", "x.json"]


def test_urls() -> None:
    assert normalize_url("/tmp/x/../reg") == "file:///tmp/reg"
    assert normalize_url("S3://bucket/p/") == "s3://bucket/p"
    with pytest.raises(RegistryError, match="unsupported scheme 'ftp'"):
        open_store("ftp://host/x")


@pytest.mark.s3
@pytest.mark.parametrize("how", ["storage_options", "AWS_ENDPOINT_URL", "MLGATE_S3_ENDPOINT_URL"])
def test_s3_endpoint_sources(
    s3_endpoint: str, make_bucket: Callable[[], str], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.delenv("MLGATE_S3_ENDPOINT_URL")
    options = None
    if how == "storage_options":
        options = {"endpoint_url": s3_endpoint, "skip_instance_cache": True}
    else:
        monkeypatch.setenv(how, s3_endpoint)
        options = {"skip_instance_cache": True}
    store = open_store(f"s3://{make_bucket()}/p", storage_options=options)
    assert store.create("k", b"v") and store.read("k") == b"v"


def _write_from_child(store: Store) -> None:
    store.write("child.txt", store.read("parent.txt") + b" and child")


def test_store_survives_fork(store: Store) -> None:
    import multiprocessing

    store.write("parent.txt", b"parent")
    child = multiprocessing.get_context("fork").Process(target=_write_from_child, args=(store,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert store.read("child.txt") == b"parent and child"
