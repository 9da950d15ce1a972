"""Broker trouble in the one error tree: a Redis or kombu failure becomes a ``BrokerError``.

The one place that reads redis and kombu exceptions for a caller outside the cluster (the command
line, the service): the reason says whether the broker refused the request or could not be
reached, with the broker URL's password redacted. The public functions of ``workers.client`` and
``workers.reconcile`` raise nothing else (:func:`in_error_tree`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import redis
from kombu.exceptions import OperationalError

from pipeline.errors import BrokerError
from pipeline.redaction import redact, redact_url

BROKER_FAILURES: tuple[type[BaseException], ...] = (redis.RedisError, OperationalError, ConnectionError)
"""What the broker client libraries raise when Redis is away or says no."""


def broker_error(exc: BaseException, broker_url: str) -> BrokerError:
    """``exc`` (one of ``BROKER_FAILURES``) as a producer reads it: refused or unreachable."""
    url = redact_url(broker_url)
    detail = redact((str(exc).strip().splitlines() or [type(exc).__name__])[0])
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, redis.ResponseError):
        cause = cause.__cause__ or cause.__context__   # kombu wraps what Redis said
    if cause is not None:
        return BrokerError(f"the broker at {url} refused the request: {detail}", code="broker-refused")
    return BrokerError(f"cannot reach the broker at {url}: {detail}", code="broker-unreachable")


@contextlib.contextmanager
def broker_errors(broker_url: str) -> Iterator[None]:
    """Re-raise every broker failure inside the block as a ``BrokerError`` ``from`` the original."""
    try:
        yield
    except BROKER_FAILURES as exc:
        raise broker_error(exc, broker_url) from exc


class _HasSettings(Protocol):
    @property
    def settings(self) -> Any: ...


_C = TypeVar("_C", bound=_HasSettings)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def in_error_tree(function: Callable[Concatenate[_C, _P], _R]) -> Callable[Concatenate[_C, _P], _R]:
    """Decorate a function taking the cluster context first: a broker failure inside it leaves as a
    ``BrokerError`` (the context's broker URL, redacted, in the reason)."""

    @functools.wraps(function)
    def wrapper(ctx: _C, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with broker_errors(ctx.settings.broker_url):
            return function(ctx, *args, **kwargs)

    return wrapper
