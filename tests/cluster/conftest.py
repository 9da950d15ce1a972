"""Fixtures for tests against real servers (marked ``cluster``).

One SeaweedFS S3 server serves the whole session; each test gets its own key prefix in the
bucket, so tests never see each other's objects. When a test fails, the server's log tail is
printed with it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.storage.s3 import S3Storage
from tests.cluster.harness import Cluster
from tests.servers import RedisServer, SeaweedS3


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    report = getattr(request.node, "report_call", None)
    return report is not None and report.failed


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    with SeaweedS3(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def s3_env(s3_server: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The server's credentials in ``os.environ`` (boto3's usual chain), for this test only."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return s3_server.env


@pytest.fixture
def s3_storage(s3_server: SeaweedS3, s3_env: dict[str, str],
               request: pytest.FixtureRequest) -> Iterator[S3Storage]:
    """An S3Storage on the session's server, under a prefix no other test uses."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)[:60]
    storage = S3Storage(s3_server.bucket, f"tests/{name}-{uuid.uuid4().hex[:8]}",
                        endpoint_url=s3_server.endpoint, max_attempts=2, connect_timeout=2,
                        read_timeout=20)
    yield storage
    if _failed(request):
        print(f"--- {s3_server.log_path} (tail) ---\n{s3_server.log_tail()}")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis-root") as server:
        yield server


@pytest.fixture
def cluster(tmp_path: Path, redis_server: RedisServer, s3_env: dict[str, str],
            request: pytest.FixtureRequest) -> Iterator[Cluster]:
    name = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower())[:40]
    made = Cluster(tmp_path, redis_server, s3_env, f"cluster/{name}-{uuid.uuid4().hex[:6]}")
    yield made
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        print(made.logs())
        print("--- redis\n" + redis_server.log_tail())
    made.close()
