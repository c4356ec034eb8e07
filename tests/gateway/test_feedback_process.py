"""``FeedbackProcess`` on its own: a spooled body parsed, matched and written by the helper
process as one feedback segment of an object store (a real moto S3 server), and a malformed
body refused with the parser's message."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import s3fs

from gateway.answered import AnsweredIds
from gateway.errors import BadRequest
from gateway.feedback_process import FeedbackProcess

pytestmark = [pytest.mark.slow]


def spooled(helper: FeedbackProcess, body: bytes) -> str:
    fd, path = helper.new_spool()
    with os.fdopen(fd, "wb") as f:
        f.write(body)
    return path


@pytest.mark.s3
def test_helper_writes_one_segment_to_s3(make_bucket: Callable[[], str], s3_endpoint: str) -> None:
    bucket = make_bucket()
    options = {"endpoint_url": s3_endpoint}
    helper = FeedbackProcess(
        f"s3://{bucket}/logs", worker_id="w1", compression="zstd", storage_options=options
    )
    answered = AnsweredIds(capacity=10)
    answered.add("r1", 1)
    answered.add("r2", 3)
    labels = [{"id": "r1", "label": "yes"}, {"id": "r2/2", "label": 0.5}, {"id": "r9", "label": 1}]
    try:
        body = json.dumps({"labels": labels * 1000}).encode()
        path = spooled(helper, body)
        received, matched = asyncio.run(helper.handle("churn", path, 10_000, answered))
        assert (received, matched) == (3000, 2000)
        assert not Path(path).exists()  # the spool file is removed

        bad = spooled(helper, b'{"labels": [{"id": "a", "label": {"x": 1}}]}')
        with pytest.raises(BadRequest, match=r"labels\[0\]\.label: expected a scalar"):
            asyncio.run(helper.handle("churn", bad, 10_000, answered))
    finally:
        helper.close()
    fs = s3fs.S3FileSystem(**options)
    segments = fs.glob(f"{bucket}/logs/feedback/model=churn/date=*/*.parquet")
    assert [p.rsplit("/", 1)[1] for p in segments] == ["w1-feedback-000001.parquet"]
    with fs.open(segments[0], "rb") as f:
        frame = pl.read_parquet(f)
    assert frame.height == 3000
    assert frame["label"].head(3).to_list() == ["yes", "0.5", "1"]
    assert frame["label_value"].head(3).to_list() == [None, 0.5, 1.0]
    assert helper.requests == 2 and helper.failures == 0


def test_a_cancelled_request_leaves_the_helper_in_step(tmp_path: Path) -> None:
    """The caller gives up while the helper works (a timeout): the helper finishes that job,
    the next request gets its own answer, and the first spool file is removed after all."""
    helper = FeedbackProcess(str(tmp_path / "logs"), worker_id="w2", compression="lz4")
    answered = AnsweredIds(capacity=10)
    big = json.dumps({"labels": [{"id": f"x{i}", "label": "a"} for i in range(300_000)]})
    small = json.dumps({"labels": [{"id": "x1", "label": "b"}]})

    async def scenario() -> tuple[int, int]:
        helper.warm()
        first = spooled(helper, big.encode())
        task = asyncio.ensure_future(helper.handle("m", first, 1_000_000, answered))
        # the helper was started just now: its interpreter alone takes longer than this, so
        # the job is still queued or being parsed when the caller gives up
        await asyncio.sleep(0.05)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        counts = await helper.handle("m", spooled(helper, small.encode()), 10, answered)
        for _ in range(100):
            if not Path(first).exists():
                break
            await asyncio.sleep(0.05)
        assert not Path(first).exists()
        return counts

    try:
        assert asyncio.run(scenario()) == (1, 0)
    finally:
        helper.close()
    frames = pl.read_parquet(tmp_path / "logs" / "feedback" / "**" / "*.parquet")
    assert sorted(frames.group_by("label").len().rows()) == [("a", 300_000), ("b", 1)]
