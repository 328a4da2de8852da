"""Property-based fuzzing of the live API from its OpenAPI schema (schemathesis, bounded): no 5xx,
responses match the documented schemas, status codes and content types."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from adjoint_sampling.service.app import create_app
from adjoint_sampling.service.settings import ServiceSettings
from adjoint_sampling.service.testing import start_server

MAX_EXAMPLES = 30


def server_error_counts(base_url: str) -> dict[str, float]:
    """``as_http_requests_total`` series with a 5xx status -> count, from ``/metrics``."""
    import httpx

    counts = {}
    for line in httpx.get(f"{base_url}/metrics", timeout=10).text.splitlines():
        if line.startswith("as_http_requests_total{") and 'status="5' in line:
            series, value = line.rsplit(" ", 1)
            counts[series] = float(value)
    return counts


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = start_server(
        tmp_path_factory.mktemp("fuzz"),
        {
            # small limits keep every accepted request cheap; a generous time limit keeps 504 out
            "AS_MAX_CONFORMERS": "3",
            "AS_MAX_ATOMS": "30",
            "AS_MAX_BATCH_MOLECULES": "3",
            "AS_MAX_JOB_MOLECULES": "3",
            "AS_REQUEST_TIMEOUT_S": "120",
            "AS_MAX_CONCURRENCY": "4",
        },
    )
    # the start-up readiness polls may have seen the documented 503 of /readyz before warm-up
    proc.server_errors_before_fuzzing = server_error_counts(proc.base_url)
    yield proc
    proc.stop()


# the OpenAPI document does not depend on the settings: build it in-process at collection time
schema = schemathesis.openapi.from_dict(create_app(ServiceSettings(model="etkdg")).openapi())


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_has_no_server_errors(case, server):
    case.call_and_validate(
        base_url=server.base_url,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
        timeout=120,
    )


def test_server_is_alive_after_fuzzing(server):
    import httpx

    assert server.process.poll() is None
    assert httpx.get(f"{server.base_url}/healthz", timeout=10).status_code == 200
    assert "Traceback" not in server.log_text()
    # the fuzzer also reached the happy path (schema examples), not only the validation errors
    metrics = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    assert 'as_http_requests_total{method="POST",route="/v1/conformers",status="200"}' in metrics
    assert server_error_counts(server.base_url) == server.server_errors_before_fuzzing  # fuzzing added no 5xx
