"""The web page: ``GET /`` and its static assets (the page's own files and the vendored 3Dmol.js)."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
VENDOR_DIR = WEB_DIR / "node_modules" / "3dmol" / "build"

router = APIRouter()


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The conformer page."""
    return FileResponse(WEB_DIR / "index.html", media_type="text/html")


def mount_static(app: FastAPI) -> None:
    """Serve ``/static/app`` (the page's files) and ``/static/vendor/3dmol`` (after ``make web``)."""
    app.mount("/static/app", StaticFiles(directory=WEB_DIR / "static"), name="static-app")
    if VENDOR_DIR.is_dir():
        app.mount("/static/vendor/3dmol", StaticFiles(directory=VENDOR_DIR), name="static-3dmol")
    else:
        log.warning("3Dmol.js is not installed (%s); run `make web` (npm ci in service/web)", VENDOR_DIR)
