"""JSON log lines: one object per line that parses, with the story/job/asset ids of the work it is
about, and never a secret (URL credentials, bearer and service tokens, webhook secrets, signatures)."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest
from celery import signals

from api.logs import configure_logging
from pipeline.logs import JsonFormatter, log_context
from workers.app import create_app
from workers.settings import Settings

JOB = "20261128-021800-3f9a1c"
SECRETS = ("SuperSecretPw", "smt_q7Vx0Zt3kLm9Rr2Ww8Yy", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
           "c0ffee00deadbeef1234")


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """The root logger's output (JSON) while the test runs; the handler is removed after."""
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging("json", stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def parsed(stream: io.StringIO) -> list[dict[str, object]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_each_line_is_one_json_object_with_the_ids_of_the_work(lines: io.StringIO) -> None:
    log = logging.getLogger("storymedia.test")
    log.info("before any job")
    with log_context(story="tp-thanh-hoa", job=JOB):
        log.info("job started: %d assets", 10)
        with log_context(asset=3):
            log.warning("Ảnh %s bị lỗi\nsecond line", "chân dung.jpg", extra={"attempts": 2})
        log.info("manifest written", extra={"asset": 7, "version": 4})
    log.info("after the job")
    first, started, failed, written, after = parsed(lines)
    assert first["message"] == "before any job" and "story" not in first and "job" not in first
    assert set(first) == {"time", "level", "logger", "message"}
    assert str(first["time"]).endswith("+00:00")
    assert (started["story"], started["job"], started["level"], started["logger"]) == (
        "tp-thanh-hoa", JOB, "info", "storymedia.test")
    assert "asset" not in started
    assert failed["asset"] == "3" and failed["attempts"] == 2 and failed["level"] == "warning"
    assert failed["message"] == "Ảnh chân dung.jpg bị lỗi\nsecond line"
    assert written["asset"] == 7 and written["version"] == 4 and written["job"] == JOB
    assert "story" not in after and "asset" not in after


def test_the_ids_stay_with_their_thread(lines: io.StringIO) -> None:
    log = logging.getLogger("storymedia.test")

    def other() -> None:
        log.info("from another thread")

    with log_context(story="mot-chuyen"):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        log.info("from this one")
    lone, own = parsed(lines)
    assert "story" not in lone and own["story"] == "mot-chuyen"


def test_no_secret_reaches_a_line(lines: io.StringIO) -> None:
    log = logging.getLogger("storymedia.test")
    log.error("cannot reach redis://:%s@redis:6379/0", SECRETS[0])
    log.info("Authorization: Bearer %s", SECRETS[1])
    log.info("token %s given", SECRETS[1], extra={"header": f"Bearer {SECRETS[1]}",
                                                  "nested": {"secret": SECRETS[2]}})
    log.info('127.0.0.1:5000 - "GET /v1/files/renditions/a.webp?expires=1&signature=%s HTTP/1.1" 200',
             SECRETS[3])
    try:
        raise RuntimeError(f"webhook secret {SECRETS[2]} refused by http://u:{SECRETS[0]}@cms.example.vn")
    except RuntimeError:
        log.exception("delivery failed")
    text = lines.getvalue()
    for secret in SECRETS:
        assert secret not in text
    records = parsed(lines)
    assert records[0]["message"] == "cannot reach redis://***@redis:6379/0"
    assert records[1]["message"] == "Authorization: Bearer ***"
    assert records[2]["header"] == "Bearer ***" and records[2]["nested"] == {"secret": "***"}
    assert "signature=***" in str(records[3]["message"])
    assert "RuntimeError" in str(records[4]["exc"]) and "***" in str(records[4]["exc"])


def test_the_plain_format_is_readable_and_redacted() -> None:
    stream = io.StringIO()
    handler = configure_logging("", stream=stream)
    try:
        with log_context(story="tp-thanh-hoa", job=JOB):
            logging.getLogger("storymedia.test").warning("redis://:%s@redis down", SECRETS[0])
    finally:
        logging.getLogger().removeHandler(handler)
    line = stream.getvalue().strip()
    assert f"storymedia.test [story=tp-thanh-hoa job={JOB}]: redis://***@redis down" in line
    assert not line.startswith("{")


def test_uvicorn_logs_go_through_the_service_handler(lines: io.StringIO) -> None:
    access = logging.getLogger("uvicorn.access")
    access.addHandler(logging.StreamHandler(io.StringIO()))   # what uvicorn's own config would add
    access.propagate = False
    configure_logging("json", stream=lines)
    access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/healthz", "1.1", 200)
    (record,) = parsed(lines)
    assert record["logger"] == "uvicorn.access"
    assert record["message"] == '127.0.0.1:5000 - "GET /healthz HTTP/1.1" 200'
    assert len([h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]) == 1


def test_a_worker_logs_json_with_the_ids_of_its_task() -> None:
    app = create_app(Settings.from_env({"STORYMEDIA_LOG_FORMAT": "json",
                                        "STORYMEDIA_STORAGE_URL": "file:///tmp/unused"}))
    app.set_current()
    stream = io.StringIO()
    logger = logging.getLogger("storymedia.worker-test")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(logging.StreamHandler(stream))
    signals.after_setup_logger.send(sender=None, logger=logger, loglevel=logging.INFO, logfile=None,
                                    format="", colorize=False)
    signals.task_prerun.send(sender=None, task_id="t-1", task=None, args=(),
                             kwargs={"story_id": "tp-thanh-hoa", "job_id": JOB, "order": 5})
    logger.info("rendering from redis://:%s@redis", SECRETS[0])
    signals.task_postrun.send(sender=None, task_id="t-1", task=None, args=(), kwargs={}, retval=None,
                              state="SUCCESS")
    logger.info("between tasks")
    during, between = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (during["story"], during["job"], during["asset"]) == ("tp-thanh-hoa", JOB, "5")
    assert during["message"] == "rendering from redis://***@redis"
    assert "story" not in between and "asset" not in between


def test_a_worker_without_the_setting_keeps_celerys_lines() -> None:
    app = create_app(Settings.from_env({"STORYMEDIA_STORAGE_URL": "file:///tmp/unused"}))
    app.set_current()
    logger = logging.getLogger("storymedia.worker-test-plain")
    handler = logging.StreamHandler(io.StringIO())
    logger.addHandler(handler)
    signals.after_setup_task_logger.send(sender=None, logger=logger, loglevel=logging.INFO, logfile=None,
                                         format="", colorize=False)
    assert not isinstance(handler.formatter, JsonFormatter)
