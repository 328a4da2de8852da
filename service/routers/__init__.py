"""The HTTP routes, one ``APIRouter`` per area; :func:`adjoint_sampling.service.app.create_app` includes
them (and :func:`mount_static` serves the web page's assets)."""

from adjoint_sampling.service.routers.conformers import router as conformers_router
from adjoint_sampling.service.routers.jobs import router as jobs_router
from adjoint_sampling.service.routers.operations import router as operations_router
from adjoint_sampling.service.routers.web import mount_static
from adjoint_sampling.service.routers.web import router as web_router

ROUTERS = (conformers_router, jobs_router, operations_router, web_router)

__all__ = ["ROUTERS", "conformers_router", "jobs_router", "mount_static", "operations_router", "web_router"]
