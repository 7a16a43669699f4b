"""One root error for the product, and the few kinds that callers handle differently."""


class CxError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(CxError):
    """Raised when settings or topics do not allow the worker to start; the message says what to fix."""


class InvalidEvent(CxError):
    """Raised when an input record breaks the contract; ``reason`` is the dead-letter reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
