"""The prediction log's crash journal: what was appended survives the writer's death, replays
into the segments the flush would have written (never twice), and a failed write is counted."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from gateway.journal import read_frames
from gateway.logwriter import FeedbackRecord, LogWriter
from tests.gateway.test_logwriter import CLASSIFIER, REGRESSOR, read, record


def dead_writer(tmp_path: Path, worker: str = "w1") -> LogWriter:
    """A started writer whose thread never flushes (as if it were killed before)."""
    writer = LogWriter(str(tmp_path / "logs"), worker_id=worker, flush_interval_s=3600,
                       journal_dir=str(tmp_path / "journal"))  # fmt: skip
    writer.start()
    return writer


def kill(writer: LogWriter) -> None:
    """What SIGKILL leaves: the journal file on disk, its lock released, nothing flushed."""
    assert writer._journal is not None
    os.close(writer._journal.fd)
    writer._journal = None


def test_a_killed_writers_rows_are_replayed_once_at_the_next_start(tmp_path: Path) -> None:
    writer = dead_writer(tmp_path)
    answered = [record(f"r{i}", rows=1 + i % 3) for i in range(40)]
    for i in range(0, 40, 8):
        assert writer.append_many(answered[i : i + 8])  # one journal write per batch
    writer.append(record("bad", ok=False))
    writer.append(record("reg", layout=REGRESSOR))
    writer.append_many([FeedbackRecord(ts_us=1, request_id="r1", model="m", label=1)])
    kill(writer)
    assert not list((tmp_path / "logs").rglob("*.parquet"))

    again = dead_writer(tmp_path, "w2")
    assert again.rows_replayed == sum(r.rows for r in answered) + 2 + 1
    frame = read(tmp_path / "logs")
    ids = frame["request_id"].to_list()
    assert len(ids) == len(set(ids))
    assert {i.split("/")[0] for i in ids} == {f"r{i}" for i in range(40)} | {"bad", "reg"}
    assert frame.filter(pl.col("request_id") == "bad")["status"].to_list() == [400]
    # the same segment names as the dead worker's own flush would have used
    assert {p.name for p in (tmp_path / "logs").rglob("*.parquet")} == {"w1-000001.parquet"}
    assert read(tmp_path / "logs", "feedback")["label_value"].to_list() == [1.0]
    assert [p.name for p in (tmp_path / "journal").iterdir()] == ["w2-000001.journal"]
    again.close()
    assert not list((tmp_path / "journal").iterdir())


def test_a_crash_between_segment_and_journal_removal_duplicates_nothing(tmp_path: Path) -> None:
    writer = dead_writer(tmp_path)
    writer.append_many([record(f"r{i}") for i in range(10)])
    journal_file = tmp_path / "journal" / "w1-000001.journal"
    kept = journal_file.read_bytes()
    writer.flush()  # segment w1-000001 written, journal 1 removed
    writer.append_many([record("late")])
    kill(writer)
    journal_file.write_bytes(kept)  # as if the process died before removing it
    again = dead_writer(tmp_path, "w2")
    ids = read(tmp_path / "logs")["request_id"].to_list()
    assert sorted(ids) == sorted([f"r{i}" for i in range(10)] + ["late"])
    assert again.rows_replayed == 11
    again.close()


def test_a_torn_last_frame_is_skipped_and_counted(tmp_path: Path) -> None:
    writer = dead_writer(tmp_path)
    writer.append_many([record("a"), record("b")])
    writer.append_many([record("c")])
    kill(writer)
    path = tmp_path / "journal" / "w1-000001.journal"
    data = path.read_bytes()
    path.write_bytes(data[:-5])  # died inside the last write
    frames, torn = read_frames(path.read_bytes())
    assert torn > 0
    again = dead_writer(tmp_path, "w2")
    assert sorted(read(tmp_path / "logs")["request_id"].to_list()) == ["a", "b"]
    assert again.journal_torn_bytes == torn
    again.close()


def test_a_live_workers_journal_is_left_alone(tmp_path: Path) -> None:
    alive = dead_writer(tmp_path)
    alive.append_many([record("mine")])
    other = dead_writer(tmp_path, "w2")
    assert other.rows_replayed == 0
    assert not list((tmp_path / "logs").rglob("*.parquet"))
    alive.close()
    other.close()
    assert read(tmp_path / "logs")["request_id"].to_list() == ["mine"]


def test_replayed_rows_equal_the_flushed_ones(tmp_path: Path) -> None:
    rows = [record(f"r{i}", rows=2, layout=CLASSIFIER) for i in range(5)]
    flushed = LogWriter(str(tmp_path / "a"), worker_id="w1")
    flushed.append_many(rows)
    flushed.flush()
    writer = dead_writer(tmp_path)
    writer.append_many(rows)
    kill(writer)
    dead_writer(tmp_path, "w2").close()
    assert read(tmp_path / "logs").equals(read(tmp_path / "a"))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_a_failed_journal_write_is_counted_and_the_rows_still_logged(tmp_path: Path) -> None:
    journal_dir = tmp_path / "journal"
    journal_dir.mkdir()
    # the next journal file of worker w1 is a disk that is always full
    (journal_dir / ".w1-000001.journal.new").symlink_to("/dev/full")
    writer = LogWriter(str(tmp_path / "logs"), worker_id="w1", flush_interval_s=3600,
                       journal_dir=str(journal_dir))  # fmt: skip
    writer.start()
    assert writer.append_many([record("a"), record("b", rows=3)])
    assert writer.journal_errors == 1
    assert writer.rows_unjournaled == 4
    writer.close()
    assert sorted(read(tmp_path / "logs")["request_id"].to_list()) == [
        "a", "b/0", "b/1", "b/2"
    ]  # fmt: skip


def test_journal_files_are_locked_while_their_worker_lives(tmp_path: Path) -> None:
    writer = dead_writer(tmp_path)
    path = tmp_path / "journal" / "w1-000001.journal"
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    writer.close()
    assert not path.exists()


def test_a_batch_journaled_from_its_own_arrays_replays_the_same_rows(tmp_path: Path) -> None:
    rows = [record(f"r{i}", rows=1 + i % 2) for i in range(6)]
    for r in rows:
        r.batch_rows = 9  # one batch: one timestamp, one size
    X = np.concatenate([r.X for r in rows if r.X is not None])
    outputs = {k: np.concatenate([r.outputs[k] for r in rows if r.outputs]) for k in
               ("predict", "predict_proba")}  # fmt: skip
    flushed = LogWriter(str(tmp_path / "a"), worker_id="w1")
    flushed.append_many(rows)
    flushed.flush()
    writer = dead_writer(tmp_path)
    writer.append_many(rows, batch=(X, outputs))
    kill(writer)
    dead_writer(tmp_path, "w2").close()
    assert read(tmp_path / "logs").equals(read(tmp_path / "a"))


def test_synthetic_traffic_tags_survive_a_replay(tmp_path: Path) -> None:
    rows = [record(f"r{i}", rows=1 + i % 2) for i in range(6)]
    for i, r in enumerate(rows):
        r.batch_rows = 9
        r.traffic = "loadtest" if i % 2 else None
    X = np.concatenate([r.X for r in rows if r.X is not None])
    outputs = {k: np.concatenate([r.outputs[k] for r in rows if r.outputs]) for k in
               ("predict", "predict_proba")}  # fmt: skip
    flushed = LogWriter(str(tmp_path / "a"), worker_id="w1")
    flushed.append_many(rows)
    flushed.flush()
    for batch in (None, (X, outputs)):
        writer = dead_writer(tmp_path)
        writer.append_many(rows, batch=batch)
        kill(writer)
        dead_writer(tmp_path, "w2").close()
        replayed = read(tmp_path / "logs")
        assert replayed.equals(read(tmp_path / "a"))
        # requests 1, 3, 5 (two rows each) are tagged; 0, 2, 4 (one row each) are real
        assert replayed["traffic"].to_list() == [None, "loadtest", "loadtest"] * 3
        for path in (tmp_path / "logs").rglob("*.parquet"):
            path.unlink()
