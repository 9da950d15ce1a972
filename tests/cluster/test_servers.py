"""The test servers themselves: restart keeps data and ports, wipe loses data, cleanup is complete."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.servers import RedisServer, SeaweedS3

pytestmark = pytest.mark.cluster


def test_redis_requires_the_password_that_its_url_carries(tmp_path: Path) -> None:
    """The compose file's Redis requires a password; so does every test's (a random one each)."""
    with RedisServer(tmp_path / "a") as server, RedisServer(tmp_path / "b") as other:
        assert server.password and other.password and server.password != other.password
        assert server.url == f"redis://:{server.password}@127.0.0.1:{server.port}/0"
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()
        assert server.ping(), "the readiness probe logs in"
        once = {"host": "127.0.0.1", "port": server.port, "retry": Retry(NoBackoff(), 0)}
        with (redis.Redis(**once) as anonymous,
              pytest.raises(redis.AuthenticationError)):
            anonymous.set("storymedia:attempts:x", 3)
        with (redis.Redis(**once, password=other.password) as wrong,
              pytest.raises(redis.AuthenticationError)):
            wrong.ping()
    with RedisServer(tmp_path / "c", password="given-password") as given:
        assert given.url == f"redis://:given-password@127.0.0.1:{given.port}/0"
        with redis.Redis.from_url(given.url) as client:
            assert client.ping()


def test_redis_kill_restart_keeps_aof_data_and_wipe_loses_it(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server:
        port, url = server.port, server.url
        assert url == f"redis://:{server.password}@127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        assert client.ping()
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        client.set("story:1", "queued")

        server.kill()
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        server.start()
        assert server.port == port, "a restart keeps the port"
        assert redis.Redis.from_url(url).get("story:1") == b"queued", "AOF with fsync always"

        server.kill()
        server.wipe()
        server.start()
        assert redis.Redis.from_url(url).get("story:1") is None, "wiped: Redis state lost"
    assert not server.running
    server.stop()  # idempotent


def test_redis_without_appendonly_loses_data_on_kill(tmp_path: Path) -> None:
    with RedisServer(tmp_path, appendonly=False) as server:
        redis.Redis.from_url(server.url).set("k", "v")
        server.kill()
        server.start()
        assert redis.Redis.from_url(server.url).get("k") is None


def test_redis_wipe_refuses_while_running(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server, pytest.raises(RuntimeError, match="stopped"):
        server.wipe()


def _sockets(server: SeaweedS3) -> list[Path]:
    return [p for port in server.ports.values() for p in Path("/tmp").glob(f"seaweedfs-*-{port}.sock")]


def test_seaweed_restart_keeps_objects_and_stop_removes_its_sockets(tmp_path: Path) -> None:
    server = SeaweedS3(tmp_path, bucket="restart")
    with server:
        assert server.endpoint == f"http://127.0.0.1:{server.ports['s3']}"
        assert server.env["STORYMEDIA_STORAGE_URL"] == "s3://restart"
        assert len(set(server.ports.values())) == len(server.ports)
        client = server.client()
        client.put_object(Bucket="restart", Key="a/b.txt", Body=b"kept")
        assert _sockets(server), "weed made its gRPC sockets in /tmp"

        server.kill()
        assert _sockets(server), "SIGKILL leaves the sockets behind"
        server.start()  # a stale socket does not stop a restart
        assert client.get_object(Bucket="restart", Key="a/b.txt")["Body"].read() == b"kept"
    assert not server.running
    assert _sockets(server) == []
    server.stop()  # idempotent
    assert "S3" in server.log_path.read_text()
