"""Cluster settings: a flag wins over its environment variable, which wins over the default; the
private area sits beside the public one; no setting error shows a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from workers.settings import ENV, Settings, private_storage_default

ENVIRONMENT = {"STORYMEDIA_BROKER_URL": "redis://:EnvPw@redis-env:6379/0",
               "STORYMEDIA_STORAGE_URL": "s3://media/env",
               "STORYMEDIA_PRIVATE_STORAGE_URL": "s3://vault/env"}


def test_flags_win_over_the_environment_which_wins_over_the_defaults(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flagged = Settings.from_env(ENVIRONMENT, broker_url="redis://flag:6390/0", storage_url="s3://media/flag",
                                private_storage_url="s3://vault/flag")
    assert (flagged.broker_url, flagged.storage_url, flagged.private_storage_url) == (
        "redis://flag:6390/0", "s3://media/flag", "s3://vault/flag")
    from_env = Settings.from_env(ENVIRONMENT)
    assert (from_env.broker_url, from_env.storage_url, from_env.private_storage_url) == (
        "redis://:EnvPw@redis-env:6379/0", "s3://media/env", "s3://vault/env")
    # a storage flag alone moves the private area with it (unless that has its own setting)
    only_public = Settings.from_env({"STORYMEDIA_STORAGE_URL": "s3://media/env"}, storage_url="s3://news/desk")
    assert only_public.private_storage_url == "s3://news-private/desk"
    monkeypatch.chdir(tmp_path)
    defaults = Settings.from_env({})
    assert defaults.broker_url == "redis://127.0.0.1:6379/0"
    assert defaults.storage_url == f"file://{tmp_path.resolve()}/store"
    assert defaults.private_storage_url == f"file://{tmp_path.resolve()}/store-private"
    assert "STORYMEDIA_PRIVATE_STORAGE_URL" in ENV


@pytest.mark.parametrize(("public", "private"), [
    ("s3://media", "s3://media-private"),
    ("s3://media/", "s3://media-private/"),
    ("s3://media/thanh-hoa/2023", "s3://media-private/thanh-hoa/2023"),
    ("file:///srv/storymedia/out", "file:///srv/storymedia/out-private"),
    ("file:///srv/storymedia/out/", "file:///srv/storymedia/out-private"),
    ("/srv/storymedia/out", "file:///srv/storymedia/out-private"),
])
def test_the_private_area_defaults_to_a_sibling_of_the_public_one(public: str, private: str) -> None:
    assert private_storage_default(public) == private


@pytest.mark.parametrize("public", ["memory://", "file:///", "gs://bucket/x"])
def test_no_private_area_is_guessed_where_none_fits(public: str) -> None:
    with pytest.raises(ConfigError, match="set STORYMEDIA_PRIVATE_STORAGE_URL"):
        private_storage_default(public)


def test_the_private_store_opens_beside_the_public_one(tmp_path: Path) -> None:
    from workers.context import open_context

    settings = Settings.from_env({"STORYMEDIA_SCRATCH": str(tmp_path / "scratch")},
                                 broker_url="redis://127.0.0.1:1/0", storage_url=f"file://{tmp_path}/public")
    ctx = open_context(settings)
    ctx.private.put_bytes("raw/ab", b"original", content_type="image/jpeg")
    assert (tmp_path / "public-private" / "raw" / "ab").read_bytes() == b"original"
    assert not (tmp_path / "public").exists()


def test_setting_errors_show_no_password() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({}, broker_url="amqp://guest:SuperSecretPw@rabbit:5672//").check_broker()
    assert "SuperSecretPw" not in caught.value.reason and "SuperSecretPw" not in str(caught.value)
    assert "amqp://***@rabbit:5672//" in caught.value.reason
    assert "SuperSecretPw" not in ConfigError("cannot use redis://:SuperSecretPw@h/0").reason


def test_the_celery_app_is_built_from_the_settings_given() -> None:
    from workers.app import QUEUES, app_settings, create_app

    desk = Settings.from_env({"STORYMEDIA_TIME_LIMIT": "900", "STORYMEDIA_SOFT_TIME_LIMIT": "800"},
                             broker_url="redis://desk:6379/1", storage_url="s3://media/desk")
    night = Settings.from_env({}, broker_url="redis://night:6379/2", storage_url="s3://media/night")
    first, second = create_app(desk), create_app(night)
    assert first is not second, "two settings, two apps: nothing global is reconfigured"
    assert (first.conf.broker_url, first.conf.task_time_limit, first.conf.task_soft_time_limit) == (
        "redis://desk:6379/1", 900, 800)
    assert second.conf.broker_url == "redis://night:6379/2"
    assert [q.name for q in first.conf.task_queues] == list(QUEUES)
    assert app_settings(first) is desk and app_settings(second) is night
    assert "workers.tasks" in first.conf.include


def test_importing_the_workers_reads_no_setting() -> None:
    """A setting the environment gets wrong fails only where settings are read, never at import;
    Celery's own command line (`celery --app workers.app`) builds its app from the environment."""
    import subprocess
    import sys

    code = ("import os\n"
            "import workers.app, workers.tasks, workers.context, workers.client, workers.reconcile\n"
            "print('imported')\n"
            "os.environ['STORYMEDIA_TIME_LIMIT'] = '900'\n"
            "from workers.app import app\n"
            "print(app.conf.broker_url, app.conf.task_time_limit)\n")
    env = {"PATH": "/usr/bin:/bin", "STORYMEDIA_TIME_LIMIT": "not-a-number",
           "STORYMEDIA_BROKER_URL": "redis://from-env:6379/3"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["imported", "redis://from-env:6379/3 900.0"]


def test_the_context_sends_with_an_app_of_its_own_settings(tmp_path: Path) -> None:
    from workers.app import app_settings
    from workers.context import open_context

    settings = Settings.from_env({"STORYMEDIA_SCRATCH": str(tmp_path)}, broker_url="redis://127.0.0.1:1/0",
                                 storage_url=f"file://{tmp_path}/public")
    ctx = open_context(settings)
    assert app_settings(ctx.app) is settings and ctx.app.conf.broker_url == "redis://127.0.0.1:1/0"
    assert open_context(settings) is ctx, "opened once per settings"


def test_broker_failures_become_one_redacted_broker_error() -> None:
    import redis
    from kombu.exceptions import OperationalError

    from pipeline.errors import BrokerError
    from workers.broker import broker_error, broker_errors

    url = "redis://:SuperSecretPw@redis:6379/0"
    with pytest.raises(BrokerError) as away, broker_errors(url):
        raise redis.ConnectionError(f"Error 111 connecting to {url}. Connection refused.")
    assert away.value.code == "broker-unreachable" and away.value.retryable
    assert away.value.reason == ("cannot reach the broker at redis://***@redis:6379/0: Error 111 connecting"
                                 " to redis://***@redis:6379/0. Connection refused.")
    said = redis.ResponseError("NOPERM User producer has no permissions to run the 'lpush' command")
    wrapped = OperationalError(str(said))
    wrapped.__cause__ = said   # as kombu wraps what Redis said
    refused = broker_error(wrapped, url)
    assert refused.code == "broker-refused"
    assert refused.reason.startswith("the broker at redis://***@redis:6379/0 refused the request: NOPERM")
    assert "SuperSecretPw" not in away.value.reason + refused.reason
    with pytest.raises(ValueError, match="not a broker failure"), broker_errors(url):
        raise ValueError("not a broker failure")
