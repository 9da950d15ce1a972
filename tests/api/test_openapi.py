"""The service against its own OpenAPI document, with schemathesis: every documented operation
called with generated input (valid and invalid), in-process, on the embedded service over a
temporary folder. No answer may be a 5xx, and every answer must match what the document says of
it (status, content type, headers, body schema).

Bounded: a few dozen examples per operation, no deadline per example (two shared cores). The tus
PATCH streams bytes under its own protocol and has its own tests (tests/api/test_uploads.py); it
is left out here, as are the event stream's endless answers (a generated job id never exists, so
the route still answers its 404 here).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.openapi import from_asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.api.harness import make_service

EXAMPLES = 25
ENV = {"STORYMEDIA_WEBHOOK_HOSTS": "cms.example.vn"}

NOT_CHECKED = [positive_data_acceptance]
"""Every check but one: a request valid by the schema may still be refused with a documented 4xx
problem, because some rules are about the service's state, not the document's shape: a story's
presets must exist, a webhook's host must be on the operator's list, a cursor must be one the
service gave, an upload must be one the service knows."""

# The tus creation-with-upload body (POST /v1/uploads) is plain bytes.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


def _load_schema() -> Any:
    """The document as the service serves it (read once, at collection, from a throwaway service;
    every test calls a fresh service of its own: ``app=`` below). schemathesis's fixture-based
    loader does not run under pytest 9, hence the schema at import time."""
    with tempfile.TemporaryDirectory(prefix="storymedia-openapi-") as folder:
        loaded = from_asgi("/openapi.json", make_service(Path(folder) / "data", env=ENV).app)
    found = loaded.exclude(method="PATCH", path_regex=r"^/v1/uploads/")
    checks = found.config.checks
    # tus answers a wrong or missing Tus-Resumable with 412 and a declared size past the limit
    # with 413 (tus 1.0): refusals like the others.
    for config in (checks.negative_data_rejection, checks.missing_required_header):
        config.expected_statuses = [*config.expected_statuses, "412", "413"]
    return found


schema = _load_schema()


OPERATIONS = [result.ok() for result in schema.get_all_operations()]
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]

CHECK = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.mark.parametrize("role", ["operator", "producer"])
@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_every_operation(operation: Any, role: str, tmp_path: Path) -> None:
    """Generated input valid by the document and invalid against it, for each role: one test
    per operation (schemathesis's own parametrize gives every operation the same test id, which
    pytest-xdist runs once)."""
    service = make_service(tmp_path / "data", env=ENV)
    headers = service.auth(role)

    @CHECK
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy(generation_mode=data.draw(st.sampled_from(MODES))))
        case.call_and_validate(app=service.app, headers=headers, excluded_checks=NOT_CHECKED)

    check()


def test_every_documented_operation_is_checked() -> None:
    labels = {op.label for op in OPERATIONS}
    assert len(OPERATIONS) >= 20 and "POST /v1/stories" in labels and "GET /v1/jobs/{job_id}" in labels
