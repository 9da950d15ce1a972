"""Broker failures leave the cluster's public functions as BrokerError, with the password redacted."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import redis
from kombu.exceptions import OperationalError

from pipeline.errors import BrokerError, PipelineError
from workers import client, reconcile
from workers.broker import in_error_tree


@dataclass
class _Settings:
    broker_url: str = "redis://:s3cret-pass@broker.example:6379/0"


@dataclass
class _Ctx:
    settings: _Settings


def _failing(exc: BaseException):  # type: ignore[no-untyped-def]
    @in_error_tree
    def call(ctx: _Ctx, story: str) -> str:
        raise exc

    return call


@pytest.mark.parametrize(("exc", "code", "words"), [
    (redis.ConnectionError("Error 111 connecting to broker.example:6379. Connection refused."),
     "broker-unreachable", "cannot reach the broker"),
    (OperationalError("Error 111 connecting"), "broker-unreachable", "cannot reach the broker"),
    (redis.ResponseError("NOAUTH Authentication required."), "broker-refused", "refused the request"),
])
def test_a_broker_failure_becomes_a_broker_error(exc: BaseException, code: str, words: str) -> None:
    with pytest.raises(BrokerError) as caught:
        _failing(exc)(_Ctx(_Settings()), "story")
    error = caught.value
    assert isinstance(error, PipelineError) and error.retryable
    assert error.code == code and words in error.reason
    assert "s3cret-pass" not in error.reason and "broker.example" in error.reason
    assert error.__cause__ is exc


def test_other_errors_pass_unchanged() -> None:
    with pytest.raises(KeyError):
        _failing(KeyError("x"))(_Ctx(_Settings()), "story")


@pytest.mark.parametrize("function", [client.submit, client.find_job, client.status, client.follow,
                                      reconcile.reconcile])
def test_the_public_cluster_functions_are_in_the_error_tree(function: object) -> None:
    assert getattr(function, "__wrapped__", None) is not None, f"{function} lets raw broker errors out"
