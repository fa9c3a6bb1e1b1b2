"""Schemathesis over the store routes with long-term memory on (the suite-wide schemathesis run
has it off, so there they all stop at 404): no input, valid or not, gets a 5xx, and every
response matches its documented schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.faults.processes import ServiceProcess, running_service
from tests.faults.test_schemathesis import schema

pytestmark = pytest.mark.slow

store_routes = schema.include(path_regex="^/store/")


@pytest.fixture(scope="module")
def memory_service(vector_database_url: str) -> Iterator[ServiceProcess]:
    with running_service(vector_database_url, LONG_TERM_MEMORY="true") as service:
        yield service


@store_routes.parametrize()
@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_store_routes_never_fail_with_a_server_error(
    case: schemathesis.Case[Any], memory_service: ServiceProcess
) -> None:
    case.call_and_validate(
        base_url=memory_service.base_url,
        checks=[not_a_server_error, response_schema_conformance],
        timeout=60,
    )
