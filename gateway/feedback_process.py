"""Large feedback requests, parsed and written by a helper process.

A million labels are seconds of interpreter work (decoding, building the segment's columns).
On a thread of the gateway worker that work takes turns with the event loop on one
interpreter lock, and every hand-off of every prediction waits for it (predict p99 8 -> 74 ms
during a 1M-label request on an idle machine). So a feedback body of ``feedback_process_bytes``
or more goes to one helper process per gateway worker, started on first use:

- the worker writes the body to a spool file as it arrives (``gateway.http.body.spool``: it
  never holds the whole body, whose one copy alone stalled the loop for ~40 ms), and sends
  the path with a snapshot of the request ids it answered recently (two C-level joins:
  ``gateway.answered``);
- the helper parses the body (``gateway.codecs.feedback``), counts the labels that match an
  answered id, writes them as one feedback segment of the log store (``SegmentStore``: a local
  directory or an object store) and answers the counts;
- the labels are on disk (or in the object store) before the client gets its answer, so they
  need no crash journal; if the helper dies or the write fails, the client gets a 503 and
  nothing was kept (send again), and the next request starts a new helper.

Requests wait for the helper one at a time, so the worker holds at most one large body being
handled plus those queued behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import tempfile
import time
from datetime import UTC, datetime
from itertools import count
from typing import TYPE_CHECKING, Any

import msgspec

from gateway.answered import AnsweredIds
from gateway.errors import BadRequest, LogUnavailable
from registry.logschema import FEEDBACK

if TYPE_CHECKING:
    from gateway.logwriter import SegmentStore

log = logging.getLogger(__name__)


class Job(msgspec.Struct, frozen=True):
    """One large feedback request, as the helper gets it."""

    spool_path: str  # the body (inflated), removed by the worker after the answer
    model: str
    max_labels: int
    answered_ids: str | list[str]  # AnsweredIds.snapshot()
    answered_rows: bytes
    ts_us: int
    segment_name: str


class Counts(msgspec.Struct, frozen=True):
    received: int
    matched: int


class FeedbackProcess:
    """The helper process of one gateway worker (started on first use, restarted after it
    dies), and what the worker needs to hand it a request."""

    def __init__(
        self,
        logs_url: str,
        *,
        worker_id: str,
        compression: str,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.worker_id = worker_id
        # where the helper writes: it builds its SegmentStore from these once, at its start
        self._store_args = (logs_url, compression, storage_options or {})
        self._helper: _Helper | None = None
        self._closed = False
        self._lock = asyncio.Lock()  # one request in the helper at a time
        self._sequence = count(1)
        self.requests = 0
        self.failures = 0  # requests answered 503: the helper died or the write failed

    def warm(self) -> None:
        """Start the helper now (a feedback request of any size calls this, so that the first
        large one does not wait for an interpreter to start)."""
        if self._helper is None and not self._closed:
            self._helper = _Helper(self._store_args)

    def new_spool(self) -> tuple[int, str]:
        """An open file (descriptor, path) for a request's body; ``handle`` removes it."""
        return tempfile.mkstemp(prefix=".feedback-", suffix=".json")

    async def handle(
        self, model: str, spool_path: str, max_labels: int, answered: AnsweredIds
    ) -> tuple[int, int]:
        """Parse and write the labels of the body in ``spool_path`` (inflated JSON, removed
        here) in the helper: (received, matched). A ``BadRequest`` for a malformed body,
        ``LogUnavailable`` when the labels could not be written (nothing was kept)."""
        work = asyncio.ensure_future(self._submit(model, spool_path, max_labels, answered))
        try:
            outcome = await asyncio.shield(work)
        except asyncio.CancelledError:
            # the caller gave up (a timeout, a shutdown): the helper still finishes this job,
            # so that its answer does not wait in the pipe for the next one; the file goes after
            work.add_done_callback(lambda _: _remove(spool_path))
            raise
        finally:
            if work.done():
                _remove(spool_path)
        self.requests += 1
        if isinstance(outcome, Counts):
            return outcome.received, outcome.matched
        kind, message = outcome
        if kind == "bad":
            raise BadRequest(message)
        self.failures += 1
        raise LogUnavailable(f"feedback: the labels could not be written, none kept: {message}")

    async def _submit(
        self, model: str, spool_path: str, max_labels: int, answered: AnsweredIds
    ) -> Counts | tuple[str, str]:
        async with self._lock:
            return await self._run(
                Job(
                    spool_path=spool_path,
                    model=model,
                    max_labels=max_labels,
                    # taken when the body is whole: the ids answered until now count as matched
                    answered_ids=(snapshot := answered.snapshot())[0],
                    answered_rows=snapshot[1],
                    ts_us=time.time_ns() // 1000,
                    segment_name=f"{self.worker_id}-feedback-{next(self._sequence):06d}.parquet",
                )
            )

    async def _run(self, job: Job) -> Counts | tuple[str, str]:
        for _ in range(2):
            if self._helper is not None and not self._helper.ready():
                self._restart()  # it died while idle: nothing was lost
            self.warm()
            if self._helper is None:
                return ("failed", "the gateway is shutting down")
            try:  # the helper says "taken" before it starts: a job it never took is retried
                await self._helper.hand_over(job)
            except (EOFError, OSError):
                self._restart()
                continue
            try:
                return await self._helper.receive()
            except (EOFError, OSError) as exc:
                self._restart()
                return ("failed", f"the helper process died while handling them ({exc!r})")
        return ("failed", "the helper process could not be started")

    def _restart(self) -> None:
        log.error("feedback helper process died; starting a new one")
        if self._helper is not None:
            self._helper.stop()
        self._helper = None

    def close(self) -> None:
        self._closed = True
        if self._helper is not None:
            self._helper.stop()
            self._helper = None


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


class _Helper:
    """One helper process and the pipe to it: a job sent, its outcome received, one at a time.
    A daemon process: stopped when the worker exits; when the worker is killed, its end of the
    pipe reads end-of-file and it exits by itself."""

    def __init__(self, store_args: tuple[str, str, dict[str, Any]]) -> None:
        # a fresh interpreter: forking a worker would copy its threads' locks in whatever state
        context = multiprocessing.get_context("spawn")
        self._conn, child_end = context.Pipe()
        self.process = context.Process(
            target=serve_jobs, args=(child_end, *store_args), name="mlgate-feedback", daemon=True
        )
        self.process.start()
        child_end.close()

    def ready(self) -> bool:
        """Alive and waiting for a job, as far as can be told: an idle helper sends nothing,
        so a readable pipe means its end closed. A helper being killed right now still looks
        ready (its pipe closes only once its last thread has exited, and polars runs a dozen),
        which ``hand_over`` then finds out."""
        try:
            return not self._conn.poll() and self.process.is_alive()
        except OSError:
            return False

    async def hand_over(self, job: Job) -> None:
        """Send ``job`` and wait for the helper to take it (EOFError or OSError: it died
        before it did)."""
        self._conn.send(job)  # a few hundred bytes, and the snapshot of answered ids
        taken = await asyncio.to_thread(self._conn.recv)
        if taken != TAKEN:
            raise EOFError(f"expected {TAKEN!r} from the helper, got {taken!r}")

    async def receive(self) -> Counts | tuple[str, str]:
        outcome: Counts | tuple[str, str] = await asyncio.to_thread(self._conn.recv)
        return outcome

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.close()
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=5)


TAKEN = "taken"  # the helper's answer to a job, before it starts on it
HELPER_NICENESS = 19  # and SCHED_IDLE: the helper yields the cores to predictions


def _lower_priority() -> None:
    with contextlib.suppress(OSError, AttributeError):
        os.nice(HELPER_NICENESS)
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


# -- in the helper process ---------------------------------------------------------------------
def serve_jobs(
    conn: multiprocessing.connection.Connection,
    logs_url: str,
    compression: str,
    storage_options: dict[str, Any],
) -> None:
    """The helper's life: take jobs from the worker until its end of the pipe closes."""
    from gateway.logwriter import SegmentStore

    _lower_priority()
    store = SegmentStore(logs_url, compression=compression, storage_options=storage_options)
    while True:
        try:
            job = conn.recv()
            conn.send(TAKEN)
        except (EOFError, OSError):
            return
        conn.send(handle_job(job, store))


def handle_job(job: Job, store: SegmentStore) -> Counts | tuple[str, str]:
    """Parse, match and write one request's labels: their counts, or ``("bad", message)`` for
    a malformed body, ``("failed", message)`` when the segment could not be written."""
    from gateway.codecs.feedback import parse_feedback
    from gateway.logwriter import FeedbackBatch, feedback_frame

    try:
        with open(job.spool_path, "rb") as f:
            body = f.read()
    except OSError as exc:
        return ("failed", f"the spooled body could not be read: {exc}")
    try:
        ids, labels = parse_feedback(body, job.max_labels)
    except BadRequest as exc:
        return ("bad", str(exc))
    del body
    answered = AnsweredIds.from_snapshot(job.answered_ids, job.answered_rows)
    matched = sum(map(answered.matches, ids))
    batch = FeedbackBatch(ts_us=job.ts_us, model=job.model, request_ids=ids, labels=labels)
    day = datetime.fromtimestamp(job.ts_us / 1e6, tz=UTC).strftime("%Y-%m-%d")
    try:
        store.write(feedback_frame([batch]), FEEDBACK, job.model, day, job.segment_name)
    except Exception as exc:  # noqa: BLE001 - answered as a 503: the client sends again
        log.exception("feedback helper: could not write %d labels of %s", len(ids), job.model)
        return ("failed", f"{type(exc).__name__}: {exc}")
    return Counts(received=len(ids), matched=matched)
