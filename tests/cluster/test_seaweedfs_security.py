"""SeaweedFS as docker-compose.yml runs it refuses everyone but the storymedia identity.

The servers are started by deploy/seaweedfs/entrypoint.sh with deploy/seaweedfs/security.toml, the
files compose mounts, and test secrets (tests/servers.py SeaweedCluster). Before, one request to the
master's /col/delete made every object unreadable, and the filer served and overwrote the manifest.
A client from 127.0.0.2 plays a container outside the SeaweedFS network (the white list holds
127.0.0.1, the servers' own address here).
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.servers import SEAWEEDFS_DEPLOY, SeaweedCluster, s3_client

pytestmark = pytest.mark.cluster

MANIFEST = b'{"story": "lu-lut", "version": 1}'
OUTSIDE = "127.0.0.2"


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedCluster]:
    with SeaweedCluster(tmp_path_factory.mktemp("seaweed")) as cluster:
        cluster.client().put_object(Bucket="media", Key="stories/lu-lut/manifest.json", Body=MANIFEST)
        yield cluster


def _manifest(seaweed: SeaweedCluster) -> bytes:
    body: bytes = seaweed.client().get_object(Bucket="media", Key="stories/lu-lut/manifest.json")["Body"].read()
    return body


def _http(port: int, method: str, path: str, *, source: str = "127.0.0.1", body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, bytes, http.client.HTTPMessage]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read(), response.headers
    finally:
        connection.close()


def _code(call: object) -> str:
    with pytest.raises(ClientError) as caught:
        call()  # type: ignore[operator]
    return str(caught.value.response["Error"]["Code"])


def test_s3_serves_the_identity_and_refuses_anonymous_and_wrong_keys(seaweed: SeaweedCluster) -> None:
    client = seaweed.client()
    assert {"media", "media-private"} <= {b["Name"] for b in client.list_buckets()["Buckets"]}, \
        "the entrypoint's buckets step made both buckets"
    big = bytes(range(256)) * 24 * 1024   # 6 MiB: a multipart upload, chunks on the volume server
    client.upload_fileobj(io.BytesIO(big), "media-private", "raw/clip.mp4",
                          Config=TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20))
    assert client.get_object(Bucket="media-private", Key="raw/clip.mp4")["Body"].read() == big
    url = client.generate_presigned_url("get_object", ExpiresIn=60,
                                        Params={"Bucket": "media", "Key": "stories/lu-lut/manifest.json"})
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == MANIFEST

    anonymous = s3_client(seaweed.endpoint, None, None)
    assert _code(lambda: anonymous.get_object(Bucket="media", Key="stories/lu-lut/manifest.json")) == "AccessDenied"
    assert _code(lambda: anonymous.put_object(Bucket="media", Key="stories/lu-lut/manifest.json",
                                              Body=b"{}")) == "AccessDenied"
    assert _code(lambda: anonymous.list_objects_v2(Bucket="media-private")) == "AccessDenied"
    wrong_secret = s3_client(seaweed.endpoint, seaweed.access_key, "x" * 40)
    assert _code(lambda: wrong_secret.get_object(Bucket="media", Key="stories/lu-lut/manifest.json")) \
        == "SignatureDoesNotMatch"
    unknown = s3_client(seaweed.endpoint, "somebody", seaweed.secret_key)
    assert _code(lambda: unknown.delete_bucket(Bucket="media")) == "InvalidAccessKeyId"
    assert _manifest(seaweed) == MANIFEST


def test_the_master_answers_only_the_white_list(seaweed: SeaweedCluster) -> None:
    master = seaweed.ports["master"]
    for path in ("/col/delete?collection=media", "/col/delete?collection=media-private",
                 "/vol/grow?collection=media&count=1", "/dir/assign", "/vol/vacuum", "/dir/status"):
        status, _, _ = _http(master, "GET", path, source=OUTSIDE)
        assert status == 401, f"{path} from outside the white list: {status}"
    # a forged X-Forwarded-For does not get in either
    status, _, _ = _http(master, "GET", "/col/delete?collection=media", source=OUTSIDE,
                         headers={"X-Forwarded-For": "127.0.0.1", "X-Real-Ip": "127.0.0.1"})
    assert status == 401
    assert _manifest(seaweed) == MANIFEST, "the collection is still there"
    # from a host on the list the master answers (a collection that does not exist: no harm)
    status, body, _ = _http(master, "GET", "/col/delete?collection=no-such-collection")
    assert status == 400 and b"does not exist" in body


def test_volume_and_filer_refuse_requests_without_a_token(seaweed: SeaweedCluster) -> None:
    # Even from a host on the white list, the volume server writes only with the master's token...
    status, body, headers = _http(seaweed.ports["master"], "GET", "/dir/assign")
    assert status == 200, body
    fid = body.split(b'"fid":"')[1].split(b'"')[0].decode()
    volume = seaweed.ports["volume"]
    status, body, _ = _http(volume, "POST", f"/{fid}", body=b"evil", headers={"Content-Type": "text/plain"})
    assert status == 401, body
    status, body, _ = _http(volume, "POST", f"/{fid}", body=b"evil", headers={
        "Content-Type": "text/plain", "Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.forged"})
    assert status == 401, body
    token = headers["Authorization"]
    assert token and token.lower().startswith("bearer "), "the master signs a token for the write"
    status, body, _ = _http(volume, "POST", f"/{fid}", body=b"mine", headers={
        "Content-Type": "text/plain", "Authorization": token})
    assert status == 201, body
    # ... and reads only with a read token, which nobody outside SeaweedFS has
    status, body, _ = _http(volume, "GET", f"/{fid}")
    assert status == 401, body
    status, body, _ = _http(volume, "GET", f"/{fid}", source=OUTSIDE)
    assert status == 401, body

    # The filer neither serves nor overwrites nor deletes the manifest, nor lists the bucket.
    filer = seaweed.ports["filer"]
    key = "/buckets/media/stories/lu-lut/manifest.json"
    for method, path, data in (("GET", key, None), ("PUT", key, b"{}"), ("POST", key, b"{}"),
                               ("DELETE", key, None), ("GET", "/buckets/media/stories/", None)):
        status, body, _ = _http(filer, method, path, body=data)
        assert status == 401, f"filer {method} {path}: {status} {body[:100]!r}"
    assert _manifest(seaweed) == MANIFEST


def _http2_over_tls(port: int, tls_dir: Path, *, certificate: bool) -> bytes:
    """Open gRPC's transport (HTTP/2 over TLS) and return what the server says first."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(tls_dir / "ca.crt")   # it is the cluster's own certificate
    if certificate:
        context.load_cert_chain(tls_dir / "node.crt", tls_dir / "node.key")
    context.set_alpn_protocols(["h2"])
    with (socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
          context.wrap_socket(raw) as tls):
        tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        try:
            return tls.recv(64)
        except ssl.SSLError as exc:
            return f"refused: {exc.reason}".encode()


@pytest.mark.parametrize("server", ["master", "volume", "filer", "s3"])
def test_grpc_refuses_a_client_without_the_cluster_certificate(seaweed: SeaweedCluster, server: str) -> None:
    port = seaweed.ports[f"{server}_grpc"]
    answer = _http2_over_tls(port, seaweed.tls_dir, certificate=False)
    assert answer in (b"", b"refused: TLSV13_ALERT_CERTIFICATE_REQUIRED"), answer
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        plain.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        assert plain.recv(64)[3:4] != b"\x04", "no HTTP/2 SETTINGS frame for a plain-text client"
    settings = _http2_over_tls(port, seaweed.tls_dir, certificate=True)
    assert settings[3:4] == b"\x04", f"with the certificate the server speaks HTTP/2: {settings!r}"


@pytest.mark.parametrize(("role", "unset", "change", "reason"), [
    ("master", "SEAWEEDFS_JWT_SECRET", {}, "SEAWEEDFS_JWT_SECRET is not set"),
    ("volume", "", {"SEAWEEDFS_JWT_SECRET": "change-me"}, "SEAWEEDFS_JWT_SECRET is too short"),
    ("filer", "SEAWEEDFS_WHITE_LIST", {}, "SEAWEEDFS_WHITE_LIST is not set"),
    ("s3", "SEAWEEDFS_S3_SECRET_KEY", {}, "SEAWEEDFS_S3_SECRET_KEY is not set"),
    ("s3", "", {"SEAWEEDFS_S3_SECRET_KEY": 'abc"def' * 4}, "SEAWEEDFS_S3_SECRET_KEY may hold only"),
    ("master", "", {"SEAWEEDFS_TLS_DIR": "/nonexistent"}, "/nonexistent/ca.crt is missing"),
    ("bogus", "", {}, "usage: entrypoint.sh"),
])
def test_the_entrypoint_refuses_to_start_a_server_without_its_secrets(
        tmp_path: Path, role: str, unset: str, change: dict[str, str], reason: str) -> None:
    cluster = SeaweedCluster(tmp_path)   # not started: its environment and a certificate suffice
    assert cluster.entrypoint("tls").returncode == 0
    (tmp_path / "security.toml").write_bytes((SEAWEEDFS_DEPLOY / "security.toml").read_bytes())
    env = {k: v for k, v in cluster.server_env().items() if k != unset}
    env.update(change)
    env["WEED"] = "/bin/false"   # were the checks passed, weed would "run" and exit 1
    done = cluster.entrypoint(role, "-port=1", env=env)
    assert done.returncode == 64, done.stdout + done.stderr
    assert done.stderr.startswith("seaweedfs: ") and reason in done.stderr and done.stderr.count("\n") == 1


def test_the_tls_step_keeps_its_certificate_and_no_ca_key(tmp_path: Path) -> None:
    cluster = SeaweedCluster(tmp_path)
    first = cluster.entrypoint("tls")
    assert first.returncode == 0 and "made the gRPC certificate" in first.stdout
    made = {p.name: p.read_bytes() for p in cluster.tls_dir.iterdir()}
    assert set(made) == {"ca.crt", "node.crt", "node.key"}, "the CA key is thrown away"
    assert (cluster.tls_dir / "node.key").stat().st_mode & 0o077 == 0
    again = cluster.entrypoint("tls")
    assert again.returncode == 0 and "keeping" in again.stdout
    assert {p.name: p.read_bytes() for p in cluster.tls_dir.iterdir()} == made
