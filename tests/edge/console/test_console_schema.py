"""Schemathesis against the console's OpenAPI schema: no generated request may cause a 500.

Requests are sent as an admin (every permission) with a valid session and CSRF token, so the
generated bodies reach the code behind the checks; unauthenticated requests are covered by the
role-matrix tests. Logging out is left out: it would end the session for every later case.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from edge.console import LaneFeed, create_app
from edge.console.security import SESSION_COOKIE
from tests.edge.console.console_site import SECRET, RecordingGateController, login, make_site


@pytest.fixture
def console_schema(tmp_path: Path) -> Iterator[Any]:
    site = make_site(tmp_path, {"login_attempts_per_minute": 1000})
    app = create_app(site.cfg, feed=LaneFeed((x.id, x.name) for x in site.cfg.lanes),
                     commands=RecordingGateController(), session_secret=SECRET)
    with TestClient(app, base_url="https://testserver") as client:
        csrf = login(client, "ada")
        cookie = client.cookies[SESSION_COOKIE]
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app).exclude(
        path="/api/v1/session/logout")
    app.state.fuzz_headers = {"Cookie": f"{SESSION_COOKIE}={cookie}", "X-CSRF-Token": csrf}
    yield schema
    from schemathesis.python import asgi

    asgi.shutdown_lifespans()  # closes the app's database files


@pytest.mark.slow
def test_no_generated_request_causes_a_server_error(console_schema: Any) -> None:
    # One Hypothesis run per operation (schemathesis' own pytest loader does not run under
    # pytest 9 yet, so its strategies are driven directly).
    checked = []
    operations = [r.ok() for r in console_schema.get_all_operations()]
    for operation, mode in itertools.product(operations, GenerationMode):
        try:
            _fuzz(operation, mode)
        except Unsatisfiable:  # nothing to make invalid (an operation without parameters)
            assert mode is GenerationMode.NEGATIVE
            continue
        checked.append(f"{mode}: {operation.method.upper()} {operation.path}")
    assert len(checked) >= 30, checked  # 20 positive + every operation with parameters


def _fuzz(operation: Any, mode: GenerationMode) -> None:
    headers = operation.schema.app.state.fuzz_headers

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)
    def run(case: Any) -> None:
        case.headers = {**(case.headers or {}), **headers}
        response = case.call()
        assert response.status_code < 500, (case.method, case.path, response.text[:500])
        if operation.path != "/api/v1/session":  # a wrong password is a 401, rightly
            assert response.status_code != 401, "the fuzzing session was lost"

    run()
