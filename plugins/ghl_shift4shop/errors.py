"""Errors that retrying cannot fix. Task bodies turn them into a failed task without retries."""

from __future__ import annotations


class PermanentError(Exception):
    """Wrong credentials, a broken mapping file, too much bad data: a human has to act."""
