"""The REST service: FastAPI app, settings, jobs, limits and metrics. Lazy, so that the container's
health check (``python -m adjoint_sampling.service.healthcheck``) imports nothing heavy."""

from adjoint_sampling.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "create_app": ".app",
        "ServiceSettings": ".settings",
    },
)
