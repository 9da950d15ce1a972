from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.api.harness import LiveServer, Service, make_service


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/api/" in str(item.fspath):
            item.add_marker(pytest.mark.api)


@pytest.fixture
def service(tmp_path: Path) -> Service:
    """An embedded service on a fresh folder, with a token per role (tests.api.harness.ROLES)."""
    return make_service(tmp_path / "data")


@pytest.fixture
def client(service: Service) -> Iterator[TestClient]:
    with TestClient(service.app) as test_client:
        yield test_client


@pytest.fixture
def live(service: Service) -> Iterator[LiveServer]:
    """The same service as a real HTTP server on 127.0.0.1."""
    with LiveServer(service.app) as server:
        yield server
