"""Feedback against a live ``mlgate serve``: large label batches decoded off the event loop
(predictions keep their latency meanwhile), matched / unmatched counts, and the body limits
(413 naming ``max_body_bytes``, 400 for malformed bodies and for ``max_feedback_labels``)."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from registry import Registry
from tests.gateway.conftest import fit_iris
from tests.gateway.mlgate_process import mlgate_serve

ROW = [5.1, 3.5, 1.4, 0.2]
MAX_BODY = 12_000_000
MAX_LABELS = 250_000
CONFIG = (
    '[gateway]\nbackend = "sklearn"\nlog_flush_interval_s = 0.5\n'
    f"max_body_bytes = {MAX_BODY}\nmax_feedback_labels = {MAX_LABELS}\n"
)


def predict(c: httpx.Client, request_id: str, rows: int = 1) -> float:
    """One predict with ``request_id``; its latency in seconds."""
    start = time.perf_counter()
    r = c.post("/v1/models/iris:predict", json={"instances": [ROW] * rows},
               headers={"X-Request-Id": request_id})  # fmt: skip
    assert r.status_code == 200, r.text
    return time.perf_counter() - start


def labels_body(ids: list[str]) -> bytes:
    return json.dumps({"labels": [{"id": i, "label": "setosa"} for i in ids]}).encode()


def test_feedback_off_loop_counts_and_limits(tmp_path: Path) -> None:
    registry = Registry("file://" + str(tmp_path / "registry"))
    registry.register("iris", fit_iris())
    with (
        mlgate_serve(tmp_path, CONFIG) as served,
        httpx.Client(base_url=served.http_url, timeout=60) as c,
    ):
        for i in range(50):  # warm up
            predict(c, f"warm-{i}")
        baseline = [predict(c, f"base-{i}") for i in range(300)]
        predict(c, "multi", rows=3)

        # -- matched / unmatched ----------------------------------------------------------
        small = ["base-0", "base-299", "multi/0", "multi/2", "multi/3", "multi", "ghost"]
        r = c.post("/v2/models/iris/feedback", content=labels_body(small))
        assert r.status_code == 200, r.text
        assert r.json() == {"received": 7, "accepted": 7, "matched": 4, "unmatched": 3}

        # -- 200k labels while predictions are measured ----------------------------------
        n = 200_000
        ids = [f"base-{i}" for i in range(300)] + [f"ghost-{i}" for i in range(n - 300)]
        big = labels_body(ids)
        assert len(big) > 1024 * 1024  # above decode_off_loop_bytes: decoded on a thread
        answers: list[dict[str, int]] = []
        posting = threading.Event()

        def post_feedback() -> None:
            with httpx.Client(base_url=served.http_url, timeout=120) as fc:
                for _ in range(3):
                    reply = fc.post("/v2/models/iris/feedback", content=big,
                                    headers={"Content-Type": "application/json"})  # fmt: skip
                    assert reply.status_code == 200, reply.text[:300]
                    answers.append(reply.json())
            posting.clear()

        posting.set()
        poster = threading.Thread(target=post_feedback)
        poster.start()
        during: list[float] = []
        i = 0
        while posting.is_set():
            during.append(predict(c, f"during-{i}"))
            i += 1
        poster.join()
        assert answers == [{"received": n, "accepted": n, "matched": 300, "unmatched": n - 300}] * 3
        p99_base = float(np.percentile(baseline, 99))
        p99_during = float(np.percentile(during, 99))
        print(f"predict p99 {p99_base * 1e3:.1f} ms alone, {p99_during * 1e3:.1f} ms during "
              f"3 x {n} labels ({len(during)} predictions)")  # fmt: skip
        assert len(during) >= 20  # predictions kept being answered throughout
        # Generous: on a 2-core machine shared with other jobs the decode thread takes a core
        # the predictions would use (measured there: p99 7-13 ms alone, 60-140 ms during; decoded
        # on the loop, each 200k-label post stalls every request for about 0.5 s).
        assert p99_during <= 1.5 * p99_base + 0.15, (p99_base, p99_during)

        # -- limits and malformed bodies --------------------------------------------------
        with socket.create_connection(("127.0.0.1", int(served.http_url.rsplit(":", 1)[1]))) as s:
            s.sendall(b"POST /v2/models/iris/feedback HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1))  # fmt: skip
            head = s.recv(65536).decode()
        assert head.startswith("HTTP/1.1 413"), head[:200]
        assert f"max_body_bytes={MAX_BODY}" in head
        bomb = gzip.compress(b'{"labels": [' + b" " * (MAX_BODY + 10) + b"]}")
        r = c.post("/v2/models/iris/feedback", content=bomb,
                   headers={"Content-Encoding": "gzip"})  # fmt: skip
        assert r.status_code == 413 and "max_body_bytes" in r.json()["error"]
        too_many = labels_body([f"x{i}" for i in range(MAX_LABELS + 1)])
        r = c.post("/v2/models/iris/feedback", content=too_many)
        assert r.status_code == 400
        assert f"max_feedback_labels={MAX_LABELS} labels, got {MAX_LABELS + 1}" in r.json()["error"]
        for body, words in [
            (b'{"labels": [', "invalid JSON"),
            (b"[1, 2]", "expected a JSON object"),
            (b'{"labels": []}', "got no labels"),
            (b'{"labels": [{"id": "a"}]}', "labels[0]: expected an object with 'id' and 'label'"),
            (b'{"labels": [{"id": "a", "label": null}]}', "labels[0].label: expected a scalar"),
            (b'{"labels": [{"id": true, "label": 1}]}', "labels[0].id: expected a string"),
        ]:
            r = c.post("/v2/models/iris/feedback", content=body)
            assert r.status_code == 400, (body, r.text)
            assert words in r.json()["error"], (body, r.text)
        assert c.post("/v2/models/nope/feedback", content=labels_body(["a"])).status_code == 404
        predict(c, "still-serving")
