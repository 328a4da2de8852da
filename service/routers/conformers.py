"""Synchronous conformers: ``POST /v1/conformers`` (one molecule) and ``POST /v1/conformers/batch``.

Computed in the worker processes (``state.pool``) when there are any, else in worker threads.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from fastapi import APIRouter

from adjoint_sampling.service.dependencies import State, check_count, compute, compute_in_pool, require_ready
from adjoint_sampling.service.errors import ERROR_RESPONSES, ApiError
from adjoint_sampling.service.generation import (
    batch_result,
    failed_outcome,
    generate,
    validate_molecule,
    validate_options,
)
from adjoint_sampling.service.schemas import BatchRequest, BatchResult, ConformerRequest, ConformerResult
from adjoint_sampling.service.worker_process import BATCH, CONFORMERS, safe_process

log = logging.getLogger(__name__)

router = APIRouter(tags=["conformers"], responses=ERROR_RESPONSES)


@router.post("/v1/conformers", response_model=ConformerResult)
async def post_conformers(body: ConformerRequest, state: State) -> ConformerResult:
    """Conformers of one molecule, computed now (within the time limit)."""
    start = time.perf_counter()
    validate_options(body, state.settings)
    parsed = validate_molecule(body, state.settings, strip_fragments=body.strip_fragments)
    current = require_ready(state)
    try:
        if state.pool is not None:  # the worker parses the molecule again (plain data crosses the pipe)
            result = await compute_in_pool(state, CONFORMERS, body.model_dump())
        else:
            result = await compute(state, lambda: generate(current, body, body, parsed=parsed))
    except ApiError as exc:
        if exc.status == 422:
            state.metrics.molecules.labels("failed").inc()
        raise
    state.metrics.molecules.labels("ok").inc()
    state.metrics.conformers.inc(result["num_returned"])
    result["timings"]["service_total"] = time.perf_counter() - start
    return ConformerResult.model_validate(result)


@router.post("/v1/conformers/batch", response_model=BatchResult)
async def post_batch(body: BatchRequest, state: State) -> BatchResult:
    """Conformers of several molecules; each gets its own status, one bad molecule fails alone."""
    start = time.perf_counter()
    settings = state.settings
    validate_options(body, settings)
    check_count(len(body.molecules), settings.max_batch_molecules, "max_batch_molecules")
    current = require_ready(state)
    outcomes: list[dict[str, Any]] = []
    stop = threading.Event()

    def run_all() -> list[dict[str, Any]]:
        for index, molecule in enumerate(body.molecules):
            if stop.is_set():
                break
            outcomes.append(safe_process(current, index, molecule, body, settings))
        return outcomes

    def partial() -> list[dict[str, Any]]:
        stop.set()
        done = list(outcomes)
        message = f"not reached within the request time limit of {settings.request_timeout_s:g} s"
        for index in range(len(done), len(body.molecules)):
            error = ApiError(504, f"molecules.{index}", "timeout", message)
            done.append(failed_outcome(index, body.molecules[index], error))
        return done

    if state.pool is not None:
        payload = body.model_dump()
        finished = await compute_in_pool(state, BATCH, payload, on_timeout=partial, on_outcome=outcomes.append)
    else:
        finished = await compute(state, run_all, on_timeout=partial)
    if finished is None:  # the pool's batch answers with its streamed outcomes
        finished = list(outcomes)
    for outcome in finished:
        state.count_outcome(outcome)
    return BatchResult.model_validate(batch_result(finished, time.perf_counter() - start))

