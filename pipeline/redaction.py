"""Credentials out of every message: the user-info of URLs (``scheme://user:password@host``).

Broker and storage URLs carry passwords (``redis://:secret@redis:6379/0``,
``http://key:secret@s3:8333``), and they end up in error messages, log lines and tracebacks. Every
line a user or an operator reads goes through :func:`redact` first: the CLI's error printing, the
settings' errors, and the :class:`RedactSecrets` log filter installed for the CLI and the workers.

The whole user-info is replaced by ``***`` (the user name too: on Redis ACLs and S3 it is half the
credential). The user-info ends at the last ``@`` before the first ``/``, ``?``, ``#`` or space, as
URL parsers read it, so a raw ``@`` or ``:`` in a password is covered too; a ``/`` in a password
must be percent-encoded (``%2F``), as in any URL.
"""

from __future__ import annotations

import logging
import re

MASK = "***"

_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/?#\s]*)@", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the user-info of every URL in it replaced by ``***``."""
    if "@" not in text:
        return text
    return _USERINFO.sub(lambda found: f"{found['scheme']}{MASK}@", text)


def redact_url(url: str) -> str:
    """One URL without its user-info: ``redis://:pw@host:6379/0`` -> ``redis://***@host:6379/0``."""
    return redact(url)


class RedactSecrets(logging.Filter):
    """A handler filter that redacts every record before it is written: message, arguments,
    exception text and stack. Put it on handlers, not loggers: a logger's filters never see the
    records its children propagate to it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if isinstance(record.exc_info, tuple) and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def redact_logging(logger: logging.Logger | None = None) -> None:
    """Put a :class:`RedactSecrets` filter on every handler of ``logger`` (the root logger by
    default) and on logging's last-resort handler, once each."""
    target = logger if logger is not None else logging.getLogger()
    handlers = list(target.handlers)
    if logging.lastResort is not None:
        handlers.append(logging.lastResort)
    for handler in handlers:
        if not any(isinstance(existing, RedactSecrets) for existing in handler.filters):
            handler.addFilter(RedactSecrets())
