"""The crash journal of the prediction log: what was answered is on disk before the answer.

Each gateway worker appends framed records to its own file, ``<worker>-<gen>.journal`` in the
journal directory, with one ``os.write`` per answered batch (not per request), before the batch's
answers are released. Once written, the operating system has the bytes: a SIGKILL of the
process cannot lose them (a power loss can, unless ``fsync="always"``). When the log writer has
folded generation ``gen`` into Parquet segments (named ``<worker>-<gen>.parquet``), it deletes
that file; what a dead worker leaves behind is replayed at the next start of a worker on the same
journal directory, into segments of the *same* names, so a segment written just before the crash
is rewritten rather than duplicated.

A live worker holds an exclusive ``flock`` on its file; a starting worker replays only files
whose lock it can take (their owner is gone), so workers can share a directory.

Frame: ``u32 payload length | u32 crc32(payload) | payload`` (msgpack). A torn last frame
(the process died inside ``write``) fails its length or checksum and is counted, not replayed.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import re
import struct
import zlib
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from gateway.logwriter import LogLayout, PredictionRecord, Record

log = logging.getLogger(__name__)

FSYNC_POLICIES = ("none", "always")
SUFFIX = ".journal"
_HEADER = struct.Struct("<II")
_NAME = re.compile(r"^(?P<worker>.+)-(?P<gen>\d{6,})\.journal$")
_encoder = msgspec.msgpack.Encoder()
_layout_keys = itertools.count(1)


def new_layout_key() -> int:
    """A key naming a log layout inside one journal file (never reused in a process)."""
    return next(_layout_keys)


def frame(payload: Any) -> bytes:
    """One framed record.

    >>> read_frames(frame({"t": "x"}) + frame([1, 2]))[0]
    [{'t': 'x'}, [1, 2]]
    """
    body = _encoder.encode(payload)
    return _HEADER.pack(len(body), zlib.crc32(body)) + body


def read_frames(data: bytes) -> tuple[list[Any], int]:
    """The decoded frames of a journal file, and how many bytes at its end were torn."""
    frames: list[Any] = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        body = data[offset + _HEADER.size : offset + _HEADER.size + length]
        if len(body) < length or zlib.crc32(body) != crc:
            break
        frames.append(msgspec.msgpack.decode(body))
        offset += _HEADER.size + length
    return frames, len(data) - offset


# -- encoding ---------------------------------------------------------------------------------
def _array(arr: np.ndarray) -> list[Any]:
    if arr.dtype.kind in "biufU":
        return [arr.dtype.str, list(arr.shape), np.ascontiguousarray(arr).tobytes()]
    return ["list", list(arr.shape), arr.tolist()]


def _unarray(spec: list[Any]) -> np.ndarray:
    dtype, shape, data = spec
    if dtype == "list":
        return np.array(data, dtype=object).reshape(shape)
    return np.frombuffer(data, dtype=np.dtype(dtype)).reshape(shape)


def layout_payload(layout: LogLayout) -> dict[str, Any]:
    return {
        "t": "L",
        "k": layout.key,
        "f": layout.feature_columns,
        "lab": [[j, list(labels.items())] for j, labels in layout.labels.items()],
        "c": layout.classification,
        "p": layout.proba_columns,
    }


def predictions_payload(records: Sequence[PredictionRecord]) -> dict[str, Any]:
    """Records of one layout: answered ones carry their inputs and outputs (concatenated)."""
    first = records[0]
    answered = [r for r in records if r.outputs is not None]
    payload: dict[str, Any] = {
        "t": "p",
        "k": first.layout.key,
        "ts": [r.ts_us for r in records],
        "id": [r.request_id for r in records],
        "m": [r.model for r in records],
        "v": [r.version for r in records],
        "r": [r.route for r in records],
        "lat": [r.latency_us for r in records],
        "br": [r.batch_rows for r in records],
        "st": [r.status for r in records],
        "n": [r.rows if r.outputs is not None else 0 for r in records],
    }
    if any(r.traffic is not None for r in records):
        payload["tr"] = [r.traffic for r in records]
    if answered:
        X = [r.X for r in answered if r.X is not None]
        payload["X"] = _array(X[0] if len(X) == 1 else np.concatenate(X))
        names = list(answered[0].outputs or {})
        payload["o"] = {
            name: _array(
                answered[0].outputs[name]  # type: ignore[index]
                if len(answered) == 1
                else np.concatenate([r.outputs[name] for r in answered])  # type: ignore[index]
            )
            for name in names
        }
    return payload


def batch_payload(
    records: Sequence[PredictionRecord], X: np.ndarray, outputs: dict[str, np.ndarray]
) -> dict[str, Any]:
    """The answers of one batch (all served, one model version, one timestamp): the fields
    the records share are stored once and the rows are the batch's own arrays."""
    first = records[0]
    payload: dict[str, Any] = {
        "t": "P",
        "k": first.layout.key,
        "ts": first.ts_us,
        "m": first.model,
        "v": first.version,
        "br": first.batch_rows,
        "id": [r.request_id for r in records],
        "r": [r.route for r in records],
        "lat": [r.latency_us for r in records],
        "n": [r.rows for r in records],
        "X": _array(X),
        "o": {name: _array(value) for name, value in outputs.items()},
    }
    if any(r.traffic is not None for r in records):
        payload["tr"] = [r.traffic for r in records]
    return payload


def feedback_columns(records: Sequence[Any]) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """Times, ids, models and labels of feedback records and batches (their ``columns()``),
    each as one list."""
    if len(records) == 1:  # a batch's own lists, not copied (read only)
        return records[0].columns()  # type: ignore[no-any-return]
    ts, ids, models, labels = [], [], [], []
    for r in records:
        t, i, m, v = r.columns()
        ts.extend(t)
        ids.extend(i)
        models.extend(m)
        labels.extend(v)
    return ts, ids, models, labels


def feedback_payload(records: Sequence[Any]) -> dict[str, Any]:
    """One frame of feedback records and batches."""
    ts, ids, models, labels = feedback_columns(records)
    return {"t": "b", "ts": ts, "id": ids, "m": models, "label": labels}


def decode_records(frames: list[Any]) -> list[Record]:
    """The log records of a journal's frames, in the order they were written."""
    from gateway.logwriter import FeedbackBatch, FeedbackRecord, LogLayout, PredictionRecord

    layouts: dict[int, LogLayout] = {}
    records: list[Record] = []
    for item in frames:
        kind = item["t"]
        if kind == "L":
            labels = {int(j): {float(c): str(v) for c, v in pairs} for j, pairs in item["lab"]}
            layouts[item["k"]] = LogLayout.restore(
                feature_columns=item["f"],
                labels=labels,
                classification=item["c"],
                proba_columns=item["p"],
            )
        elif kind == "b" and len(set(item["ts"])) == 1 and len(set(item["m"])) == 1:
            records.append(  # a batch (one request's labels): one record again
                FeedbackBatch(
                    ts_us=item["ts"][0],
                    model=item["m"][0],
                    request_ids=item["id"],
                    labels=item["label"],
                )  # fmt: skip
            )
        elif kind == "b":
            records.extend(
                FeedbackRecord(ts_us=ts, request_id=rid, model=m, label=label)
                for ts, rid, m, label in zip(
                    item["ts"], item["id"], item["m"], item["label"], strict=True
                )
            )
        elif kind in ("p", "P"):
            if kind == "P":  # one batch: widen the shared fields
                count = len(item["id"])
                for name in ("ts", "m", "v", "br"):
                    item[name] = [item[name]] * count
                item["st"] = [200] * count
            layout = layouts[item["k"]]
            X = _unarray(item["X"]) if "X" in item else None
            outputs = {k: _unarray(v) for k, v in item.get("o", {}).items()}
            offset = 0
            for i, rows in enumerate(item["n"]):
                served = rows > 0
                sl = slice(offset, offset + rows)
                records.append(
                    PredictionRecord(
                        ts_us=item["ts"][i],
                        request_id=item["id"][i],
                        model=item["m"][i],
                        version=item["v"][i],
                        route=item["r"][i],
                        layout=layout,
                        X=X[sl] if served and X is not None else None,
                        outputs={k: v[sl] for k, v in outputs.items()} if served else None,
                        latency_us=item["lat"][i],
                        batch_rows=item["br"][i],
                        status=item["st"][i],
                        traffic=item["tr"][i] if "tr" in item else None,
                    )
                )
                offset += rows
    return records


# -- files ------------------------------------------------------------------------------------
def file_name(worker_id: str, gen: int) -> str:
    """
    >>> file_name("host-12-ab", 7)
    'host-12-ab-000007.journal'
    """
    return f"{worker_id}-{gen:06d}{SUFFIX}"


def parse_name(name: str) -> tuple[str, int] | None:
    """``(worker, gen)`` of a journal file name, ``None`` for anything else.

    >>> parse_name("host-12-ab-000007.journal")
    ('host-12-ab', 7)
    """
    match = _NAME.match(name)
    return (match["worker"], int(match["gen"])) if match else None


class JournalFile:
    """One generation's file, created and locked before anyone can see it under its name."""

    def __init__(self, directory: str, worker_id: str, gen: int, *, fsync: str) -> None:
        self.path = os.path.join(directory, file_name(worker_id, gen))
        self.gen = gen
        self.fsync = fsync
        self.bytes_written = 0
        self.declared: set[int] = set()  # layout keys whose description is in this file
        temp = os.path.join(directory, f".{file_name(worker_id, gen)}.new")
        self.fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        try:
            # locked before it has its name: a starting worker never takes a live file for
            # a dead one's
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(temp, self.path)
        except OSError:
            os.close(self.fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def write(self, data: bytes) -> None:
        """All of ``data`` handed to the OS (and to the disk with ``fsync="always"``)."""
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]
        self.bytes_written += len(data)
        if self.fsync == "always":
            os.fdatasync(self.fd)

    def close(self, *, remove: bool) -> None:
        if remove:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        os.close(self.fd)  # releases the lock


def orphans(directory: str) -> Iterator[tuple[str, str, int, int]]:
    """Journal files whose worker is gone, each yielded while we hold its lock:
    ``(path, worker, gen, fd)``. The caller removes the file before the next item."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return
    for name in names:
        parsed = parse_name(name)
        if parsed is None:
            continue
        path = os.path.join(directory, name)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # replayed by another worker meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its worker is alive
            if os.fstat(fd).st_nlink == 0:
                continue  # another worker replayed and removed it while we waited
            yield path, parsed[0], parsed[1], fd
        finally:
            os.close(fd)


def read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
