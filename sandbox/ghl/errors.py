"""Error answers of the GHL simulator (ghl-api.md §7).

Owns ``ApiError`` (a GHL error answer: status plus the exact documented body, ``statusCode`` +
``message`` (+ ``error`` / ``meta``)) and its common factories: ``unprocessable`` for the NestJS
ValidationPipe 422 (``message`` is an array) and ``not_found`` for an unknown contact (400).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "not_found", "unprocessable"]


class ApiError(Exception):
    """A GHL error response: ``statusCode`` + ``message`` (+ ``error`` / ``meta``)."""

    def __init__(
        self,
        status: int,
        message: str | list[str],
        *,
        error: str | None = None,
        meta: dict | None = None,
        extra: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error
        self.meta = meta
        self.extra = extra

    def body(self) -> dict:
        out: dict[str, Any] = {"statusCode": self.status, "message": self.message}
        if self.error is not None:
            out["error"] = self.error
        if self.meta is not None:
            out["meta"] = self.meta
        if self.extra:
            out.update(self.extra)
        return out


def unprocessable(*messages: str) -> ApiError:
    """422 with the NestJS ValidationPipe shape: ``message`` is always an array."""
    return ApiError(422, list(messages), error="Unprocessable Entity")


def not_found(contact_id: str) -> ApiError:
    # Third parties saw 400 (not 404) for unknown contact ids on v2.
    return ApiError(400, f"Contact with id {contact_id} not found")
