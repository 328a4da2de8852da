"""Shared fixture of the service tests: an HTTP client of the module's ``server``."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture(scope="module")
def client(server):
    """An httpx client of the module's ``server`` fixture (a started ``ServerProcess``)."""
    with httpx.Client(base_url=server.base_url, timeout=60) as c:
        yield c
