"""Triton's model control (repository load/unload) mapped onto the registry.

The registry, not a gateway, decides what is served: every replica loads the versions a
model's route names. So ``load`` means "re-read this model's route now, retry versions that
failed, and answer once it serves"; ``unload`` is refused (501) with what to do instead,
because one gateway dropping a routed model would make its replicas disagree.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, NoReturn

from gateway.errors import BadRequest, InferenceFailed, NotReady, NotSupported, UnknownModel

if TYPE_CHECKING:
    from gateway.models import ModelState
    from gateway.service import Gateway


async def load_model(
    gw: Gateway, name: str, *, timeout_s: float, parameters: dict[str, object] | None = None
) -> ModelState:
    """Reload ``name`` from the registry and wait until every routed version is loaded."""
    if parameters:
        raise BadRequest(
            f"load {name!r}: parameters {sorted(parameters)} are not taken: mlgate loads "
            f"models from its registry (register a version, then route it)"
        )
    names = await asyncio.to_thread(gw.registry.list)
    if name not in names:
        raise UnknownModel(f"model {name!r} not found in the registry: it has {sorted(names)}")
    gw.models.reload(name)
    deadline = time.monotonic() + timeout_s
    while True:
        state = gw.models.states.get(name)
        if state is not None and state.ready:
            return state
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    if state is not None and state.failures:
        reasons = "; ".join(f"version {v}: {m}" for v, m in sorted(state.failures.items()))
        raise InferenceFailed(f"load {name!r}: a routed version failed to load: {reasons}")
    raise NotReady(f"load {name!r}: not ready within {timeout_s} s; still loading")


def unload_model(name: str) -> NoReturn:
    raise NotSupported(
        f"unload {name!r}: mlgate serves what the registry routes, on every replica alike; "
        f"to stop a version taking traffic change the route instead (mlgate rollout "
        f"rollback/weight/shadow --off, or PUT /admin/models/{name}/route)"
    )
