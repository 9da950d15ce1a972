"""Every cluster command talks to exactly the broker and store it was given, and says so without
the password.

Two real Redis servers: the environment names one, ``--broker-url`` the other; the flag must win
for submit, status, reconcile and the worker, and the other server must stay empty. The Redis a
developer may run on 127.0.0.1:6379 is never named, so no test can write to it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis as redis_client

from tests.cluster.harness import wait_for
from tests.fixtures import photo
from tests.servers import STORYMEDIA, RedisServer, free_ports

pytestmark = pytest.mark.cluster

SECRET = "SuperSecretPw"
STORY_ID = "lu-lut-mien-trung"


def protected(server: RedisServer) -> str:
    """The server's URL with a password: the one the test server has, or one set here."""
    if urlparse(server.url).password:
        return server.url
    redis_client.Redis.from_url(server.url).config_set("requirepass", SECRET)
    return f"redis://:{SECRET}@127.0.0.1:{server.port}/0"


def password_of(url: str) -> str:
    password = urlparse(url).password
    assert password
    return password


@pytest.fixture
def two_redis(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    with RedisServer(tmp_path / "redis-env") as first, RedisServer(tmp_path / "redis-flag") as second:
        yield first, second


def one_photo_story(root: Path) -> Path:
    (root / "media").mkdir(parents=True)
    photo((900, 600), 5).save(root / "media" / "anh-1.jpg", quality=90)
    story = root / "story.toml"
    story.write_text(
        f'[story]\nid = "{STORY_ID}"\ntitle = "Lũ lụt ở miền Trung"\nbyline = "Đình Hà"\n'
        'published = 2023-10-02T08:00:00+07:00\nsource = "Thời sự"\npresets = ["web"]\n\n'
        '[[assets]]\nfile = "media/anh-1.jpg"\ncaption = "Nước lên nhanh"\ncredit = "Đức Anh"\n',
        encoding="utf-8")
    return story


def environment(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORYMEDIA_", "AWS_"))}
    return {**env, "NO_COLOR": "1", "COLUMNS": "200", "STORYMEDIA_SCRATCH": str(tmp_path / "scratch"),
            **settings}


def storymedia(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STORYMEDIA, *args], env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def job_of(result: subprocess.CompletedProcess[str]) -> str:
    found = re.search(r"Job (\S+) for story", result.stdout)
    assert found, result.stdout + result.stderr
    return found.group(1)


def test_every_command_uses_the_broker_and_store_it_was_given(
        two_redis: tuple[RedisServer, RedisServer], tmp_path: Path) -> None:
    by_env, by_flag = two_redis
    flag_url = protected(by_flag)
    env = environment(tmp_path, STORYMEDIA_BROKER_URL=by_env.url,
                      STORYMEDIA_STORAGE_URL=f"file://{tmp_path / 'store-env'}")
    flags = ["--broker-url", flag_url, "--storage-url", f"file://{tmp_path / 'store-flag'}"]
    env_side, flag_side = redis_client.Redis.from_url(by_env.url), redis_client.Redis.from_url(flag_url)
    story = one_photo_story(tmp_path / "story")

    sent = storymedia(env, "submit", str(story), "--quiet", *flags)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    job = job_of(sent)
    assert flag_side.llen("io") == 1, "the job's first message waits on the flag's broker"
    assert flag_side.hget(f"storymedia:job:{job}", "state") == b"queued"
    claims = flag_side.keys(f"storymedia:claim:{STORY_ID}:*")
    assert len(claims) == 1 and flag_side.get(claims[0]) == job.encode()
    assert env_side.dbsize() == 0, f"the environment's broker got {env_side.keys('*')}"
    assert list(tmp_path.glob(f"store-flag*/stories/{STORY_ID}/jobs/{job}.json")), "job record in the flag's store"
    assert not list(tmp_path.glob("store-env*")), "nothing in the environment's store"

    shown = storymedia(env, "status", job, *flags)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "Status: queued" in shown.stdout

    again = storymedia(env, "reconcile", "--stale-after", "0", *flags)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 job(s) re-enqueued" in again.stdout
    assert flag_side.llen("io") == 2 and env_side.dbsize() == 0

    log = tmp_path / "worker.log"
    with log.open("w") as handle:
        worker = subprocess.Popen(
            [STORYMEDIA, "worker", "--concurrency", "1", "--name", "flagged@%h", *flags], env=env,
            stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def finished() -> bool:
            state = storymedia(env, "status", job, "--json", *flags)
            assert state.returncode == 0, state.stdout + state.stderr
            return bool(json.loads(state.stdout)["state"] == "complete")

        wait_for(finished, 120, "the flag's worker to finish the job", every=1)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGQUIT)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=10)
    text = log.read_text(errors="replace")
    assert " ready." in text, text[-3000:]
    assert password_of(flag_url) not in text, "the worker's banner and log lines show no password"
    assert env_side.dbsize() == 0, f"the environment's broker got {env_side.keys('*')}"
    assert flag_side.llen("io") == 0


def test_an_unreachable_broker_is_one_line_without_the_password(tmp_path: Path) -> None:
    env_port, flag_port = free_ports(2)
    env = environment(tmp_path, STORYMEDIA_BROKER_URL=f"redis://:{SECRET}@127.0.0.1:{env_port}/0",
                      STORYMEDIA_STORAGE_URL=f"file://{tmp_path / 'store'}")
    story = one_photo_story(tmp_path / "story")
    started = time.monotonic()
    refused = storymedia(env, "submit", str(story), "--broker-url",
                         f"redis://storymedia:{SECRET}@127.0.0.1:{flag_port}/0")
    assert time.monotonic() - started < 30
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"error: cannot reach the broker at redis://***@127.0.0.1:{flag_port}/0: Error 111 connecting"
        f" to 127.0.0.1:{flag_port}. Connection refused."]
    assert "Job" not in refused.stdout and "queued" not in refused.stdout
    assert SECRET not in refused.stdout + refused.stderr

    wrong_host = storymedia(env, "status", "20231002-080000-abcdef",
                            "--broker-url", f"redis://:{SECRET}@wrong-host.invalid:6379/0")
    assert wrong_host.returncode == 3, wrong_host.stdout + wrong_host.stderr
    (line,) = wrong_host.stderr.strip().splitlines()
    assert line.startswith("error: cannot reach the broker at redis://***@wrong-host.invalid:6379/0: ")
    assert SECRET not in wrong_host.stdout + wrong_host.stderr and "Traceback" not in wrong_host.stderr


def test_submit_reports_no_job_when_the_broker_refuses_its_message(tmp_path: Path) -> None:
    """The claim and live state were written, then the broker refused the message itself: no job
    id is printed, the claim is released (a new submission does not attach to a job nobody will
    run) and the live state says stalled, not queued."""
    with RedisServer(tmp_path / "redis") as server:
        admin = redis_client.Redis.from_url(server.url)
        admin.execute_command("ACL", "SETUSER", "producer", "on", f">{SECRET}", "~*", "&*", "+@all", "-lpush")
        env = environment(tmp_path, STORYMEDIA_BROKER_URL=f"redis://producer:{SECRET}@127.0.0.1:{server.port}/0",
                          STORYMEDIA_STORAGE_URL=f"file://{tmp_path / 'store'}")
        refused = storymedia(env, "submit", str(one_photo_story(tmp_path / "story")))
        assert refused.returncode == 3, refused.stdout + refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        assert line.startswith(f"error: the broker at redis://***@127.0.0.1:{server.port}/0 refused"), line
        assert "Job" not in refused.stdout and SECRET not in refused.stdout + refused.stderr
        assert admin.keys("storymedia:claim:*") == []
        (live,) = admin.keys("storymedia:job:*")
        assert admin.hget(live, "state") == b"stalled"
        assert admin.llen("io") == 0


def test_worker_log_lines_carry_no_password(tmp_path: Path) -> None:
    """Celery's own logging set-up, as a worker runs it: our filter is on the root and task
    handlers, so library and task log lines are redacted too (Celery masks only its banner)."""
    code = ("import logging\n"
            "from celery.utils.log import get_task_logger\n"
            "from workers.app import app\n"
            "app.log.setup(loglevel='INFO')\n"
            f"logging.getLogger('botocore').warning('endpoint http://key:{SECRET}@s3:8333 refused')\n"
            f"get_task_logger('workers.tasks').warning('broker %s gone', 'redis://:{SECRET}@redis:6379/0')\n")
    env = environment(tmp_path, STORYMEDIA_BROKER_URL=f"redis://:{SECRET}@127.0.0.1:{free_ports(1)[0]}/0")
    ran = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                         check=False)
    assert ran.returncode == 0, ran.stderr
    assert "endpoint http://***@s3:8333 refused" in ran.stderr
    assert "broker redis://***@redis:6379/0 gone" in ran.stderr
    assert SECRET not in ran.stdout + ran.stderr
