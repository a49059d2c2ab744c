"""Error answers of the GHL simulator (ghl-api.md §7).

Owns ``ApiError`` (a GHL error answer: status plus the exact documented body, ``statusCode`` +
``message`` (+ ``error`` / ``meta``)) and its common factories: ``unprocessable`` for the NestJS
ValidationPipe 422 (``message`` is an array) and ``not_found`` for an unknown contact (400). It
also owns how an error body is dressed on the way out (config ``error_body_style``):
``"documented"`` sends the DTO as is; ``"varied"`` rotates, by a counter that ``reset()`` zeroes,
through the DTO and the two shapes seen in the wild (``varied_error_body``). ``app.py`` applies
that to every JSON error answer of the API (``ErrorBodiesMixin.error_body``).
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["ERROR_BODY_STYLES", "ApiError", "ErrorBodiesMixin", "not_found", "unprocessable", "varied_error_body"]

# config error_body_style
ERROR_BODY_STYLES: tuple[str, ...] = ("documented", "varied")


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


def varied_error_body(body: dict, turn: int) -> dict:
    """The ``turn``-th error body of the ``varied`` style, from the documented ``body``.

    Turns rotate through: the documented DTO itself; ``{"error": <message>, "status": <code>}``;
    ``{"status": <code>, "message": <message>, "name": "HttpException"}``. In the two variants a
    message array (422) is joined into one string with ", "; the words are unchanged. A ``meta``
    object (the duplicate-contact 400) is kept; ``error`` codes and OAuth's ``error_description``
    are not.
    """
    kind = turn % 3
    if kind == 0:
        return body
    status, message = body["statusCode"], body["message"]
    text = ", ".join(map(str, message)) if isinstance(message, list) else message
    if kind == 1:
        out: dict[str, Any] = {"error": text, "status": status}
    else:
        out = {"status": status, "message": text, "name": "HttpException"}
    if "meta" in body:
        out["meta"] = body["meta"]
    return out


class ErrorBodiesMixin:
    """The rotation counter of ``error_body_style="varied"`` (part of ``GhlState``)."""

    lock: threading.RLock
    error_body_style: str

    def _init_error_bodies(self) -> None:
        self._error_turn = 0

    def _clear_error_bodies(self) -> None:
        self._error_turn = 0

    def error_body(self, body: dict) -> dict:
        """The body an error answer carries, given its documented DTO (``statusCode`` + ``message``)."""
        if self.error_body_style != "varied":
            return body
        with self.lock:
            turn = self._error_turn
            self._error_turn += 1
        return varied_error_body(body, turn)
