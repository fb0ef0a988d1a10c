"""The one error type of the API: an HTTP status and the request field it is about."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A refusal with its status code; ``field`` names the offending body field, if any."""

    def __init__(
        self, status: int, message: str, field: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        #: Seconds a refused client should wait (a 429's Retry-After).
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        """The JSON answer: the message always starts with the field it names."""
        return {"status": self.status, "field": self.field, "error": self.message}


def bad_request(field: str, problem: str) -> ApiError:
    """400 naming ``field`` first in the message, as the bridge's spec errors do."""
    return ApiError(400, f"{field}: {problem}", field)
