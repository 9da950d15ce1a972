"""The one exception tree of storymedia.

    PipelineError                 base; ``reason`` is a short sentence a producer understands
    ├── InvalidStory              the story file is wrong (names file, field and problem)
    ├── InvalidPreset             a preset file is wrong (names file, field and problem)
    ├── UnsupportedMedia          the asset is not something we accept (type, size, pixels)  permanent
    ├── ProbeError                the asset claims a type but cannot be read (empty, truncated)  permanent
    ├── RenderError               producing a rendition failed                               permanent
    ├── LimitExceeded             the work ran past a time or memory ceiling                 retryable
    ├── StorageError              reading or writing the store failed                        transient
    │   └── ManifestInvalid       a manifest does not match its schema (names the field)     permanent
    ├── BrokerError               the message broker (Redis) cannot be reached               transient
    └── ConfigError               settings (flags, environment) cannot work: names the setting

``retryable`` says whether running the same work again can help: bad input is permanent, storage
trouble is transient, and a ceiling reached (time, memory, a crashed process) is never held against
the producer: the asset fails with ``retryable`` set, and a published rendition is never withdrawn
for it. Only ``workers/`` turns ``retryable`` into retries; the embedded run reports it.
Library exceptions are re-raised as one of these ``from`` the original.
"""

from __future__ import annotations

from pipeline.redaction import redact


class PipelineError(Exception):
    """Base of every error storymedia raises on purpose."""

    retryable: bool = False
    code: str = "error"

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.reason


class InvalidStory(PipelineError):
    """The story file cannot be used; the message names the file, the field and the problem."""

    code = "invalid-story"


class InvalidPreset(PipelineError):
    """A preset file cannot be used; the message names the file, the field and the problem."""

    code = "invalid-preset"


class UnsupportedMedia(PipelineError):
    """The asset is readable but not acceptable: wrong type, too large, too many pixels."""

    code = "unsupported"


class ProbeError(PipelineError):
    """The asset cannot be read: empty, truncated, corrupt, or not what its name says."""

    code = "unreadable"


class RenderError(PipelineError):
    """Producing a rendition failed. For ffmpeg it carries the command and the stderr tail."""

    code = "render-failed"

    def __init__(
        self,
        reason: str,
        *,
        code: str | None = None,
        command: list[str] | None = None,
        log_tail: str = "",
    ) -> None:
        super().__init__(reason, code=code)
        self.command = command or []
        self.log_tail = log_tail


class LimitExceeded(PipelineError):
    """The work on one asset ran past a time or memory ceiling, or its process died.

    Not the producer's error: the asset fails (the rest of the story goes on) with ``retryable`` set,
    and running it again with more time or memory may help.
    """

    code = "limit"
    retryable = True


class StorageError(PipelineError):
    """The object store could not be read or written. Usually worth a retry."""

    code = "storage"
    retryable = True


class ManifestInvalid(StorageError):
    """A manifest (built here or read back from the store) does not match the schema; the reason
    names the field. Running the same work again does not help."""

    code = "invalid-manifest"
    retryable = False


class BrokerError(PipelineError):
    """The message broker (Redis) could not be reached or refused us. Worth a retry."""

    code = "broker"
    retryable = True


class ConfigError(PipelineError):
    """The settings cannot work (a worker or the command refuses to start with them).

    The reason is redacted: settings hold URLs with passwords."""

    code = "config"

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(redact(reason), code=code)
