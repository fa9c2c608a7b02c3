"""The whole API against its own OpenAPI schema (schemathesis): generated requests of
every operation, as an operator on ops-db with archived data, never get a 5xx, and every
response matches the schema (status, content type, body)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ccat_hpc.api.app import create_app
from ccat_hpc.api.settings import ApiSettings
from tests.integration.api.conftest import add_users

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
#: generated requests per operation
EXAMPLES = 25
SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture
def api_schema(
    archived: dict[str, bytes], sites: sessionmaker[Session], engine: Engine
) -> Iterator[object]:
    tokens = add_users(sites)
    app = create_app(sites, engine, ApiSettings(rate_per_second=0, wait_max_seconds=0.2))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.tokens = tokens  # type: ignore[attr-defined]
    yield schema


@SQLITE
def test_every_operation_matches_its_schema(api_schema: object, backend: str) -> None:
    schema = api_schema
    headers = {"Authorization": f"Bearer {schema.tokens['op']}"}  # type: ignore[attr-defined]
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[attr-defined]
    assert len(operations) >= 25
    statuses: Counter[int] = Counter()
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call_and_validate(headers=headers, checks=CHECKS)
            statuses[response.status_code] += 1

        check()
    # the generated requests reached the handlers: some answered, some were refused
    assert sum(statuses.values()) >= 10 * len(operations), statuses
    assert statuses[200] and statuses[422] and statuses[404], statuses
