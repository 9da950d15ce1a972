"""Webhook signatures after the Standard Webhooks spec (checked with the ``standardwebhooks``
library, an independent implementation) and the SSRF guard on webhook URLs."""

from __future__ import annotations

import base64
import ipaddress
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from pipeline.notify import signing
from pipeline.notify.delivery import SCHEDULE, next_delay, retry_after
from pipeline.notify.targets import IPAddress, Policy, TargetRefused, address_problem, check_url, resolve


def test_a_secret_is_whsec_and_base64_of_at_least_24_random_bytes() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) >= 24
    assert signing.new_secret() != secret
    for bad in ("", "abc", "whsec_***", "whsec_" + base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError, match="webhook secret") as refused:
            signing.secret_key(bad)
        assert not bad[6:] or bad[6:] not in str(refused.value)   # the secret is never echoed


def test_signatures_verify_with_the_standardwebhooks_library_and_match_its_own() -> None:
    secret = signing.new_secret()
    body = '{"type":"job.failed","data":{"story_id":"tp-thanh-hoa","reason":"Ảnh hỏng"}}'.encode()
    stamp = int(datetime.now(UTC).timestamp())
    headers = signing.headers(secret, "msg_2Lq4xY", stamp, body)
    assert Webhook(secret).verify(body, headers)["data"]["reason"] == "Ảnh hỏng"
    assert headers["webhook-signature"] == Webhook(secret).sign("msg_2Lq4xY", datetime.fromtimestamp(stamp, UTC),
                                                                 body.decode())
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"failed", b"passed"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):   # the id is signed too
        Webhook(secret).verify(body, {**headers, "webhook-id": "msg_other"})


HOSTS = ("cms.example.vn", "*.baothanhhoa.vn", "localhost", "127.0.0.1", "::1", "169.254.169.254",
         "10.0.0.1", "100.64.0.1", "0.0.0.0", "224.0.0.1", "::ffff:127.0.0.1", "64:ff9b::a9fe:a9fe",
         "2130706433", "8.8.8.8", "fe80::1")
DOCUMENTATION = ipaddress.ip_address("203.0.113.10")


def dns(table: dict[str, list[str]]):
    """A resolver answering from ``table`` (what a hostile DNS server could answer), else real DNS."""
    def lookup(host: str, port: int) -> list[IPAddress]:
        if host in table:
            return [ipaddress.ip_address(a) for a in table[host]]
        return resolve(host, port)
    return lookup


@pytest.mark.parametrize(("url", "why"), [
    ("https://127.0.0.1/hook", "loopback"),
    ("https://localhost/hook", "resolves to 127.0.0.1"),              # real DNS (/etc/hosts)
    ("https://2130706433/hook", "resolves to 127.0.0.1"),             # 127.0.0.1 spelled as a number
    ("https://[::1]:8443/hook", "loopback"),
    ("https://[::ffff:127.0.0.1]/hook", "loopback"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://[64:ff9b::a9fe:a9fe]/", "link-local"),                 # NAT64 of 169.254.169.254
    ("https://[fe80::1]/", "link-local"),
    ("https://10.0.0.1/hook", "private"),
    ("https://100.64.0.1/hook", "private"),
    ("https://0.0.0.0/hook", "unspecified"),
    ("https://224.0.0.1/hook", "multicast"),
    ("https://cms.other.vn/hook", "not on the list"),
    ("https://baothanhhoa.vn/hook", "not on the list"),              # *.domain is not the domain
    ("http://tin.baothanhhoa.vn/hook", "plain http"),                # a pattern never allows http
    ("ftp://cms.example.vn/hook", "https"),
    ("https://user:pw@cms.example.vn/hook", "user name or password"),
    ("https://cms.example.vn/hook#x", "fragment"),
    ("https://cms.example.vn/ hook", "spaces"),
    ("https://cms.example.vn:99999/", "malformed"),
    ("https:///hook", "no host"),
    ("https://cms.example.vn/" + "a" * 2000, "longer than"),
])
def test_refused_targets_say_why(url: str, why: str) -> None:
    with pytest.raises(TargetRefused, match=why):
        check_url(url, Policy(hosts=HOSTS), dns({"cms.example.vn": ["93.184.215.14"],
                                                  "tin.baothanhhoa.vn": ["151.101.1.69"]}))


def test_a_name_is_refused_when_any_address_it_resolves_to_is_not_public() -> None:
    policy = Policy(hosts=("cms.example.vn",))
    for addresses in (["127.0.0.1"], ["93.184.215.14", "127.0.0.1"], ["169.254.169.254"],
                      ["93.184.215.14", "::1"], ["192.168.1.20"], ["fd00::5"]):
        with pytest.raises(TargetRefused, match="resolves to"):
            check_url("https://cms.example.vn/hook", policy, dns({"cms.example.vn": addresses}))


def test_private_addresses_only_with_allow_private_and_loopback_only_in_code() -> None:
    lan = dns({"cms.lan": ["192.168.1.20"]})
    with pytest.raises(TargetRefused, match="STORYMEDIA_WEBHOOK_ALLOW_PRIVATE"):
        check_url("http://cms.lan/hook", Policy(hosts=("cms.lan",)), lan)
    assert check_url("http://cms.lan/hook", Policy(hosts=("cms.lan",), allow_private=True), lan).port == 80
    private = Policy(hosts=HOSTS, allow_private=True)
    assert check_url("https://10.0.0.1/hook", private).addresses == (ipaddress.ip_address("10.0.0.1"),)
    for url in ("https://127.0.0.1/", "https://169.254.169.254/", "https://[::1]/"):
        with pytest.raises(TargetRefused):
            check_url(url, private)
    tests_only = Policy(hosts=HOSTS, allow_loopback=True)
    assert check_url("http://127.0.0.1:8080/hook", tests_only).port == 8080
    with pytest.raises(TargetRefused, match="link-local"):
        check_url("https://169.254.169.254/", tests_only)
    with pytest.raises(TargetRefused, match="no webhook host is allowed"):
        check_url("https://cms.example.vn/", Policy(), dns({"cms.example.vn": ["93.184.215.14"]}))


def test_an_allowed_target_is_pinned_to_the_address_that_was_checked() -> None:
    target = check_url("https://Tin.BaoThanhHoa.vn./cms/hook?desk=thoi-su", Policy(hosts=HOSTS),
                       dns({"tin.baothanhhoa.vn": ["151.101.1.69", "2606:4700::1111"]}))
    assert target.host == "tin.baothanhhoa.vn" and target.port == 443
    assert target.pinned_url(target.addresses[0]) == "https://151.101.1.69:443/cms/hook?desk=thoi-su"
    assert target.pinned_url(target.addresses[1]) == "https://[2606:4700::1111]:443/cms/hook?desk=thoi-su"
    assert target.host_header == "tin.baothanhhoa.vn"
    other = check_url("https://cms.example.vn:8443/", Policy(hosts=HOSTS), dns({"cms.example.vn": ["93.184.215.14"]}))
    assert other.host_header == "cms.example.vn:8443"
    assert check_url("https://8.8.8.8/hook", Policy(hosts=HOSTS)).addresses == (ipaddress.ip_address("8.8.8.8"),)
    assert address_problem(DOCUMENTATION, Policy()) == "an address that is not public"
    assert address_problem(ipaddress.ip_address("8.8.8.8"), Policy()) is None


def test_the_retry_schedule_is_the_specs_with_jitter_and_retry_after() -> None:
    assert SCHEDULE == (0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
    assert next_delay(SCHEDULE, 1, jitter=0) == 5
    assert 270 <= next_delay(SCHEDULE, 2) <= 330
    assert next_delay(SCHEDULE, 10) is None                      # the tenth attempt was the last
    assert next_delay(SCHEDULE, 1, wait_at_least=120, jitter=0) == 120
    assert retry_after("120") == 120
    assert retry_after("999999999") == 86400
    assert 50 <= retry_after(datetime.fromtimestamp(datetime.now(UTC).timestamp() + 60, UTC)
                             .strftime("%a, %d %b %Y %H:%M:%S GMT")) <= 61
    assert retry_after("soon") is None and retry_after(None) is None
