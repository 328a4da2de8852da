"""Durable jobs: ``POST /v1/jobs`` queues a batch, ``GET /v1/jobs/{id}`` polls it, ``/result`` fetches it."""

from __future__ import annotations

from fastapi import APIRouter, Response

from adjoint_sampling.service.dependencies import ServiceState, State, check_count
from adjoint_sampling.service.errors import ERROR_RESPONSES, ApiError
from adjoint_sampling.service.generation import validate_options
from adjoint_sampling.service.job_store import JobRecord
from adjoint_sampling.service.schemas import BatchRequest, BatchResult, ErrorDetail, JobInfo, JobProgress

router = APIRouter(tags=["jobs"], responses=ERROR_RESPONSES)


@router.post("/v1/jobs", status_code=202, response_model=JobInfo)
async def post_job(body: BatchRequest, response: Response, state: State) -> JobInfo:
    """Queue a long request; poll ``GET /v1/jobs/{id}``, then fetch ``/v1/jobs/{id}/result``."""
    settings = state.settings
    validate_options(body, settings)
    check_count(len(body.molecules), settings.max_job_molecules, "max_job_molecules")
    assert state.store is not None and state.runner is not None
    if state.store.count("queued") >= settings.max_queued_jobs:
        raise ApiError.retry_later(
            "queue_full", f"{settings.max_queued_jobs} jobs are queued; retry later", settings.retry_after_s
        )
    job_id = state.store.create(body.model_dump(mode="json"), len(body.molecules))
    state.metrics.jobs.labels("queued").inc()
    state.metrics.jobs_queued.set(state.store.count("queued"))
    state.runner.notify()
    response.headers["Location"] = f"/v1/jobs/{job_id}"
    return _job_info(_get_job(state, job_id))


@router.get("/v1/jobs/{job_id}", response_model=JobInfo)
async def get_job(job_id: str, state: State) -> JobInfo:
    """Status and progress of a job."""
    return _job_info(_get_job(state, job_id))


@router.get("/v1/jobs/{job_id}/result", response_model=BatchResult)
async def get_job_result(job_id: str, state: State) -> BatchResult:
    """The result of a finished job (kept across restarts)."""
    job = _get_job(state, job_id)
    if job.status == "failed":
        raise ApiError(409, "job_id", "job_failed", f"job failed ({job.error_reason}): {job.error_message}")
    assert state.store is not None
    result = state.store.result(job_id) if job.status == "succeeded" else None
    if result is None:
        raise ApiError(409, "job_id", "not_finished", f"job is {job.status}; poll GET /v1/jobs/{job_id}")
    return BatchResult.model_validate(result)


def _job_info(job: JobRecord) -> JobInfo:
    """The API view of a stored job."""
    error = None
    if job.status == "failed":
        error = ErrorDetail(
            status=500, field=None, reason=job.error_reason or "failed", message=job.error_message or ""
        )
    return JobInfo(
        id=job.id,
        status=job.status,
        progress=JobProgress(molecules_done=job.molecules_done, molecules_total=job.molecules_total),
        attempts=job.attempts,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        error=error,
        result_url=f"/v1/jobs/{job.id}/result" if job.status == "succeeded" else None,
    )


def _get_job(state: ServiceState, job_id: str) -> JobRecord:
    """The stored job, or a 404 on ``job_id``; refreshes the queued-jobs gauge."""
    assert state.store is not None
    job = state.store.get(job_id)
    if job is None:
        raise ApiError(404, "job_id", "not_found", "no job with this id")
    state.metrics.jobs_queued.set(state.store.count("queued"))
    return job
