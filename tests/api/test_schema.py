"""Property-based fuzzing of every operation in the OpenAPI schema (schemathesis): never a 5xx,
every error in the one JSON shape. Bounded (few examples per operation) to run in about a minute."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from .conftest import ApiEnv

MAX_EXAMPLES = 15


def test_no_server_errors_on_any_operation(api: ApiEnv) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 5
    seen: dict[str, set[int]] = {}
    for op in operations:
        label = f"{op.method.upper()} {op.path}"

        @given(case=op.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:
            response = case.call(headers={**(case.headers or {}), **api.auth("a")})
            seen.setdefault(label, set()).add(response.status_code)
            assert response.status_code < 500, f"{label}: {response.status_code} {response.text[:300]}"
            ctype = response.headers.get("content-type") or ""
            ctype = ctype[0] if isinstance(ctype, list) else ctype
            if response.status_code >= 400 and ctype.startswith("application/json"):
                body = response.json()
                assert {"type", "detail"} <= set(body), body
                assert "Traceback" not in response.text

        check()
    assert seen
