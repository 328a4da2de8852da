"""Operations: liveness (``/healthz``), readiness (``/readyz``), Prometheus ``/metrics``, ``/v1/models``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from adjoint_sampling.service.dependencies import State, require_ready
from adjoint_sampling.service.errors import ERROR_RESPONSES
from adjoint_sampling.service.schemas import HealthResponse, ModelLimits, ModelsResponse, ServedModel

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthResponse)
async def healthz() -> HealthResponse:
    """The process is alive and serving HTTP."""
    return HealthResponse(status="ok")


@router.get("/readyz", response_model=HealthResponse, responses=ERROR_RESPONSES, dependencies=[Depends(require_ready)])
async def readyz() -> HealthResponse:
    """The model is loaded and warmed up."""
    return HealthResponse(status="ready")


@router.get("/metrics", response_class=Response)
async def metrics_endpoint(state: State) -> Response:
    """Prometheus metrics."""
    return Response(state.metrics.render(), media_type=state.metrics.content_type)


@router.get("/v1/models", response_model=ModelsResponse)
async def models(state: State) -> ModelsResponse:
    """The served model and the request limits."""
    settings, current = state.settings, state.generator
    limits = ModelLimits(
        max_conformers=settings.max_conformers,
        max_smiles_length=settings.max_smiles_length,
        max_atoms=settings.max_atoms,
        max_batch_molecules=settings.max_batch_molecules,
        max_job_molecules=settings.max_job_molecules,
        request_timeout_s=settings.request_timeout_s,
    )
    served = ServedModel(
        name=getattr(current, "name", ""),
        version=getattr(current, "version", ""),
        source=state.model_spec,
        ready=state.ready.is_set(),
        limits=limits,
    )
    return ModelsResponse(models=[served])
