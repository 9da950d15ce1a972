"""Credentials never reach a message or a log line: the user-info of every URL is redacted."""

from __future__ import annotations

import io
import logging

import pytest

from pipeline.redaction import RedactSecrets, redact, redact_logging, redact_url

CASES = [
    # (text, expected)
    ("redis://:SuperSecretPw@redis:6379/0", "redis://***@redis:6379/0"),
    ("redis://workers:SuperSecretPw@10.0.0.5:6379/1", "redis://***@10.0.0.5:6379/1"),
    ("rediss://default:SuperSecretPw@cache.example.org:6380/0?ssl_cert_reqs=required",
     "rediss://***@cache.example.org:6380/0?ssl_cert_reqs=required"),
    ("REDIS://:SuperSecretPw@redis", "REDIS://***@redis"),
    ("http://AKIAEXAMPLE:wJalrXUtnFEMI%2FK7MDENG@s3.internal:8333",
     "http://***@s3.internal:8333"),
    ("https://key:secret@s3.example.org/bucket/raw/ab.jpg", "https://***@s3.example.org/bucket/raw/ab.jpg"),
    ("redis://justauser@redis:6379/0", "redis://***@redis:6379/0"),
    # a raw '@' or ':' in a password (not percent-encoded, as people type them)
    ("redis://:p@ss:w0rd@redis:6379/0", "redis://***@redis:6379/0"),
    ("redis://:p%40ss%3Aw0rd@redis:6379/0", "redis://***@redis:6379/0"),
    # no credentials: unchanged
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("s3://media/prefix", "s3://media/prefix"),
    ("file:///srv/out/renditions/ab12/web@1/w1024.webp", "file:///srv/out/renditions/ab12/web@1/w1024.webp"),
    ("https://cdn.example.org/renditions/x@2x.webp?v=1#@", "https://cdn.example.org/renditions/x@2x.webp?v=1#@"),
    ("mail tin@thanhhoa.vn about http://cdn.example.org/a", "mail tin@thanhhoa.vn about http://cdn.example.org/a"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_redact_url(text: str, expected: str) -> None:
    assert redact_url(text) == expected
    assert redact(f"cannot reach the broker at {text}: refused") == f"cannot reach the broker at {expected}: refused"


def test_every_url_in_a_text_is_redacted() -> None:
    text = ("cannot reach the broker at redis://:SuperSecretPw@redis:6379/0 (store"
            " 'http://key:S3cret@s3:8333', public https://cdn.example.org/x)\n"
            "  retry redis://u:Second@h2/0,redis://:Third@h3/0")
    cleaned = redact(text)
    for secret in ("SuperSecretPw", "S3cret", "Second", "Third", "key:", "u:"):
        assert secret not in cleaned
    assert cleaned == ("cannot reach the broker at redis://***@redis:6379/0 (store"
                       " 'http://***@s3:8333', public https://cdn.example.org/x)\n"
                       "  retry redis://***@h2/0,redis://***@h3/0")


def _logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_the_log_filter_redacts_messages_arguments_and_tracebacks() -> None:
    parent, stream = _logger("storymedia-test-redaction")
    redact_logging(parent)
    redact_logging(parent)   # once per handler, however often it is installed
    assert sum(isinstance(f, RedactSecrets) for f in parent.handlers[0].filters) == 1
    child = logging.getLogger("storymedia-test-redaction.child")  # propagates: handler filters see it
    child.warning("broker %s is down", "redis://:SuperSecretPw@redis:6379/0")
    try:
        raise ConnectionError("Error 111 connecting to redis://:SuperSecretPw@redis:6379/0")
    except ConnectionError:
        child.exception("lost http://key:S3cret@s3:8333")
    child.info("no secret here: %d renditions", 13)
    written = stream.getvalue()
    assert "SuperSecretPw" not in written and "S3cret" not in written, written
    assert "WARNING broker redis://***@redis:6379/0 is down" in written
    assert "ConnectionError: Error 111 connecting to redis://***@redis:6379/0" in written
    assert "INFO no secret here: 13 renditions" in written
