"""Webhooks to the CMS, end to end in the embedded service: a REAL receiver (an HTTP server on a
free port of 127.0.0.1) verifies every delivery with the ``standardwebhooks`` library.

The receiver listens on loopback, which the service refuses by default; these tests allow it with a
``Policy(allow_loopback=True)`` put in ``Service.extras`` (code only: no setting can do that), and
shorten the retry schedule to fractions of a second. The SSRF test uses the configured rules.
The manifest event comes from a real job: a story made over HTTP, its photo uploaded with tus,
submitted, rendered and published.
"""

from __future__ import annotations

import base64
import hashlib
import io
import ipaddress
import json
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import webhook_sender
from pipeline.notify import delivery, outbox
from pipeline.notify.targets import Policy
from pipeline.storage import MemoryStorage
from tests.api.harness import Service, make_service
from tests.api.receiver import Receiver
from tests.fixtures import photo

ALLOWED = "cms.example.vn,127.0.0.1,localhost,169.254.169.254,10.0.0.1,::1,0.0.0.0"
FAST = (0, 0.3, 0.3, 0.3)
"""Four attempts, the retries 0.3 s apart (the service's sender looks every second)."""


@pytest.fixture
def service(tmp_path: Path) -> Service:
    """The embedded service with an allow list; loopback receivers allowed in code (tests only)."""
    made = make_service(tmp_path / "data", {"STORYMEDIA_WEBHOOK_HOSTS": ALLOWED})
    svc = made.app.state.service
    svc.extras[webhook_sender.POLICY] = Policy(hosts=("127.0.0.1",), allow_loopback=True)
    svc.extras[webhook_sender.SCHEDULE] = FAST
    return made


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver().start()
    yield found
    found.stop()


def until(check: Callable[[], Any], seconds: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"waited {seconds:.0f} s for {what or check}")


def register(client: TestClient, service: Service, url: str, events: list[str] | None = None) -> dict[str, Any]:
    response = client.post("/v1/webhooks", headers=service.auth("operator"),
                           json={"url": url, "events": events or list(outbox.EVENTS), "description": "CMS"})
    assert response.status_code == 201, response.text
    return response.json()


def deliveries(client: TestClient, service: Service, endpoint: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/webhooks/{endpoint}/deliveries", headers=service.auth("operator"))
    assert response.status_code == 200, response.text
    return response.json()["deliveries"]


def publish_story(client: TestClient, service: Service, tmp_path: Path, story_id: str = "tin-webhook") -> str:
    """A one-photo story made over HTTP, its photo uploaded with tus (creation-with-upload, with
    its checksum), submitted and finished; returns the job id."""
    story = {"story": {"id": story_id, "title": "Thành phố Thanh Hóa kỷ cương", "byline": "Đình Hà",
                       "published": "2023-09-12T21:15:00+07:00", "source": "PCTN", "presets": ["web"]},
             "assets": [{"file": "anh-01.jpg", "caption": "Bà Lê Thị Minh Tâm", "credit": "Đình Hà"}]}
    assert client.post("/v1/stories", json=story, headers=service.auth("producer")).status_code == 201
    buffer = io.BytesIO()
    photo((900, 600)).save(buffer, "JPEG", quality=85)
    data = buffer.getvalue()
    names = ",".join(f"{key} {base64.b64encode(value.encode()).decode()}"
                     for key, value in (("story", story_id), ("file", "anh-01.jpg")))
    uploaded = client.post("/v1/uploads", content=data, headers={
        **service.auth("producer"), "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)),
        "Upload-Metadata": names, "Content-Type": "application/offset+octet-stream",
        "Upload-Checksum": "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()})
    assert uploaded.status_code == 201 and uploaded.headers["upload-offset"] == str(len(data)), uploaded.text
    submitted = client.post(f"/v1/stories/{story_id}/jobs", headers=service.auth("producer"))
    assert submitted.status_code == 202, submitted.text
    job_id: str = submitted.json()["id"]
    until(lambda: client.get(f"/v1/jobs/{job_id}", headers=service.auth("operator")).json()["final"],
          seconds=120, what="the job to finish")
    return job_id


def test_a_published_manifest_is_announced_signed_and_verified(client: TestClient, service: Service,
                                                               receiver: Receiver, tmp_path: Path) -> None:
    endpoint = register(client, service, receiver.url)
    assert endpoint["secret"].startswith("whsec_")
    job_id = publish_story(client, service, tmp_path)
    until(lambda: receiver.calls, what="the webhook")
    [event] = receiver.verified(endpoint["secret"])
    assert event["type"] == "story.manifest.published"
    data = event["data"]
    assert data["story_id"] == "tin-webhook" and data["job_id"] == job_id
    assert data["manifest_version"] == 1 and data["status"] == "complete"
    manifest = client.get("/v1/stories/tin-webhook/manifest", headers=service.auth("editor"))
    assert manifest.headers["etag"].strip('"') == data["manifest_sha256"]
    public = service.app.state.service.backend.public
    assert hashlib.sha256(public.get_bytes(data["manifest_key"])).hexdigest() == data["manifest_sha256"]
    headers, _ = receiver.calls[0]
    assert headers["webhook-id"].startswith("msg_") and headers["host"] == f"127.0.0.1:{receiver.port}"
    [delivery] = until(lambda: [d for d in deliveries(client, service, endpoint["id"])
                                if d["state"] == "delivered"], what="delivered")
    assert delivery["msg_id"] == headers["webhook-id"] and delivery["attempts"][0]["status"] == 200


def test_a_receiver_down_then_up_gets_each_message_once(client: TestClient, service: Service,
                                                        tmp_path: Path) -> None:
    down = Receiver()   # its port is free: nothing listens yet
    endpoint = register(client, service, down.url)
    private = service.app.state.service.backend.private
    first = outbox.publish(private, outbox.JOB_FAILED, {"story_id": "a", "job_id": "j1", "reason": "x"})
    second = outbox.publish(private, outbox.JOB_FAILED, {"story_id": "b", "job_id": "j2", "reason": "y"})
    until(lambda: all(len(d["attempts"]) >= 2 for d in deliveries(client, service, endpoint["id"])),
          what="two failed attempts each")
    assert all(d["state"] == "pending" and "error" in d["attempts"][0]
               for d in deliveries(client, service, endpoint["id"]))
    down.start()
    try:
        until(lambda: all(d["state"] == "delivered" for d in deliveries(client, service, endpoint["id"])),
              what="both delivered")
        time.sleep(1.5)   # one more round of the sender: nothing is sent again
        assert sorted(down.ids()) == sorted([first[0].msg_id, second[0].msg_id])
        assert {e["data"]["story_id"] for e in down.verified(endpoint["secret"])} == {"a", "b"}
    finally:
        down.stop()


def test_a_receiver_that_always_fails_leaves_the_story_alone(client: TestClient, service: Service,
                                                             receiver: Receiver, tmp_path: Path) -> None:
    receiver.answer = lambda n: (500, {})
    endpoint = register(client, service, receiver.url)
    job_id = publish_story(client, service, tmp_path)
    before = client.get("/v1/stories/tin-webhook/manifest", headers=service.auth("editor"))
    [failed] = until(lambda: [d for d in deliveries(client, service, endpoint["id"]) if d["state"] == "failed"],
                     what="the delivery to fail")
    assert [a["status"] for a in failed["attempts"]] == [500] * len(FAST)
    assert failed["next_at"] is None and failed["tries"] == len(FAST)
    assert len(receiver.verified(endpoint["secret"])) == len(FAST)
    assert len(set(receiver.ids())) == 1                      # the same webhook-id every time
    status = client.get(f"/v1/jobs/{job_id}", headers=service.auth("operator")).json()
    assert status["state"] == "complete" and status["manifest_version"] == 1
    after = client.get("/v1/stories/tin-webhook/manifest", headers=service.auth("editor"))
    assert after.headers["etag"] == before.headers["etag"] and after.content == before.content
    story = client.get("/v1/stories/tin-webhook", headers=service.auth("operator")).json()
    assert story["state"] == "complete"


def test_410_disables_the_endpoint_and_stops_its_deliveries(client: TestClient, service: Service,
                                                            receiver: Receiver) -> None:
    receiver.answer = lambda n: (410, {})
    endpoint = register(client, service, receiver.url)
    private = service.app.state.service.backend.private
    outbox.publish(private, outbox.JOB_FAILED, {"story_id": "a"})
    outbox.publish(private, outbox.JOB_FAILED, {"story_id": "b"}, now=time.time() + 2)
    until(lambda: not client.get("/v1/webhooks", headers=service.auth("operator")).json()["webhooks"][0]["enabled"],
          what="the endpoint disabled")
    [listed] = client.get("/v1/webhooks", headers=service.auth("operator")).json()["webhooks"]
    assert "410" in listed["disabled_reason"]
    time.sleep(3)
    assert len(receiver.calls) == 1
    assert sorted(d["state"] for d in deliveries(client, service, endpoint["id"])) == ["disabled", "disabled"]
    assert outbox.publish(private, outbox.JOB_FAILED, {"story_id": "c"}) == []
    some = deliveries(client, service, endpoint["id"])[0]["id"]
    replayed = client.post(f"/v1/webhooks/{endpoint['id']}/deliveries/{some}/replay",
                           headers=service.auth("operator"))
    assert replayed.status_code == 409 and replayed.json()["code"] == "conflict"


def test_replay_sends_the_same_webhook_id_again(client: TestClient, service: Service, receiver: Receiver) -> None:
    endpoint = register(client, service, receiver.url)
    [made] = outbox.publish(service.app.state.service.backend.private, outbox.JOB_FAILED, {"story_id": "a"})
    until(lambda: deliveries(client, service, endpoint["id"])[0]["state"] == "delivered", what="delivered")
    response = client.post(f"/v1/webhooks/{endpoint['id']}/deliveries/{made.id}/replay",
                           headers=service.auth("operator"))
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "delivered"
    attempts = response.json()["delivery"]["attempts"]
    assert [a.get("replay", False) for a in attempts] == [False, True]
    assert receiver.ids() == [made.msg_id, made.msg_id]
    assert len(receiver.verified(endpoint["secret"])) == 2
    assert 'storymedia_webhook_deliveries_total{outcome="delivered"} 2.0' in client.get("/metrics").text
    missing = client.post(f"/v1/webhooks/{endpoint['id']}/deliveries/dlv_{'0' * 20}/replay",
                          headers=service.auth("operator"))
    assert missing.status_code == 404


def test_a_redirect_is_a_failure_and_is_not_followed(client: TestClient, service: Service,
                                                     receiver: Receiver) -> None:
    receiver.answer = lambda n: (302, {"location": "http://169.254.169.254/latest/meta-data/"})
    endpoint = register(client, service, receiver.url)
    outbox.publish(service.app.state.service.backend.private, outbox.JOB_FAILED, {"story_id": "a"})
    until(lambda: len(deliveries(client, service, endpoint["id"])[0]["attempts"]) >= 2, what="a retry")
    [delivery] = deliveries(client, service, endpoint["id"])
    assert delivery["attempts"][0]["status"] == 302 and delivery["state"] in ("pending", "failed")


def test_every_attempt_checks_the_url_again(client: TestClient, service: Service, receiver: Receiver) -> None:
    endpoint = register(client, service, receiver.url)
    svc = service.app.state.service
    svc.extras[webhook_sender.POLICY] = Policy(hosts=("127.0.0.1",))   # loopback no longer allowed
    outbox.publish(svc.backend.private, outbox.JOB_FAILED, {"story_id": "a"})
    until(lambda: deliveries(client, service, endpoint["id"])[0]["attempts"], what="an attempt")
    attempt = deliveries(client, service, endpoint["id"])[0]["attempts"][0]
    assert attempt["error"].startswith("refused:") and "loopback" in attempt["error"]
    assert receiver.calls == []


@pytest.mark.parametrize(("url", "reason"), [
    ("https://127.0.0.1/hook", "loopback"),
    ("http://127.0.0.1:8080/hook", "loopback"),
    ("https://localhost/hook", "resolves to 127.0.0.1, a loopback address"),
    ("https://[::1]/hook", "loopback"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://10.0.0.1/hook", "private address"),
    ("https://0.0.0.0/hook", "unspecified"),
    ("https://cms.other.vn/hook", "not on the list"),
    ("ftp://cms.example.vn/hook", "https://"),
    ("https://user:secret@cms.example.vn/hook", "user name or password"),
])
def test_ssrf_targets_are_refused_naming_the_url(tmp_path: Path, url: str, reason: str) -> None:
    configured = make_service(tmp_path / "data", {"STORYMEDIA_WEBHOOK_HOSTS": ALLOWED})
    with TestClient(configured.app) as client:
        response = client.post("/v1/webhooks", headers=configured.auth("operator"),
                               json={"url": url, "events": ["job.failed"]})
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert [e["path"] for e in problem["errors"]] == ["url"]
        assert reason in problem["errors"][0]["message"]
        assert "secret" not in json.dumps(problem)
        assert client.get("/v1/webhooks", headers=configured.auth("operator")).json()["webhooks"] == []


def test_only_operators_manage_webhooks_and_secrets_are_shown_once(client: TestClient, service: Service,
                                                                   receiver: Receiver) -> None:
    for who in ("producer", "editor"):
        assert client.post("/v1/webhooks", headers=service.auth(who),
                           json={"url": receiver.url, "events": ["job.failed"]}).status_code == 403
        assert client.get("/v1/webhooks", headers=service.auth(who)).status_code == 403
    assert client.get("/v1/webhooks").status_code == 401
    endpoint = register(client, service, receiver.url, ["job.failed"])
    listing = client.get("/v1/webhooks", headers=service.auth("operator"))
    assert endpoint["secret"] not in listing.text and "secret" not in listing.json()["webhooks"][0]
    bad = client.post("/v1/webhooks", headers=service.auth("operator"),
                      json={"url": receiver.url, "events": ["story.deleted"]})
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"].startswith("events")
    assert client.delete(f"/v1/webhooks/{endpoint['id']}", headers=service.auth("operator")).status_code == 204
    assert client.delete(f"/v1/webhooks/{endpoint['id']}", headers=service.auth("operator")).status_code == 404
    assert client.get(f"/v1/webhooks/{endpoint['id']}/deliveries",
                      headers=service.auth("operator")).status_code == 404


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for ``cms.test`` (openssl): (ca, cert, key)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
            "-subj", "/CN=storymedia test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "cms.key", "-out", "cms.csr", "-subj", "/CN=cms.test")
    (folder / "san").write_text("subjectAltName=DNS:cms.test\n")
    openssl("x509", "-req", "-in", "cms.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "cms.pem", "-days", "1", "-extfile", "san")
    return folder / "ca.pem", folder / "cms.pem", folder / "cms.key"


def test_https_goes_to_the_checked_address_with_the_name_for_tls(tmp_path: Path) -> None:
    ca, cert, key = _certificates(tmp_path)
    receiver = Receiver()
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_tls.sni_callback = lambda sock, name, context: names.append(name)
    receiver.start(server_tls)
    try:
        store = MemoryStorage()

        def pinned(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
            return [ipaddress.ip_address("127.0.0.1")]   # both names resolve here

        rules = Policy(hosts=("cms.test", "evil.test"), allow_loopback=True)
        trusted = ssl.create_default_context(cafile=str(ca))
        good = outbox.create_endpoint(store, f"https://cms.test:{receiver.port}/hook", ["job.failed"])
        [message] = outbox.publish(store, outbox.JOB_FAILED, {"story_id": "a"})
        answer = delivery.send(good, message, rules, pinned, verify=trusted)
        assert answer.status == 200, answer
        headers, _ = receiver.calls[0]
        assert headers["host"] == f"cms.test:{receiver.port}" and names == ["cms.test"]
        assert receiver.verified(good.secret)[0]["data"] == {"story_id": "a"}
        wrong = outbox.create_endpoint(store, f"https://evil.test:{receiver.port}/hook", ["job.failed"])
        refused = delivery.send(wrong, message, rules, pinned, verify=trusted)
        assert refused.status is None and "CERTIFICATE_VERIFY_FAILED" in refused.error
        assert len(receiver.calls) == 1
    finally:
        receiver.stop()
