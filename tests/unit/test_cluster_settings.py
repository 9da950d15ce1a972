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
