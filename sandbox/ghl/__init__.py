"""HighLevel (GHL) API v2 simulator: ``GhlState`` (data and rules) and ``create_app`` (HTTP)."""

from sandbox.ghl.app import create_app
from sandbox.ghl.state import ALL_SCOPES, ApiError, GhlState, Token

__all__ = ["ALL_SCOPES", "ApiError", "GhlState", "Token", "create_app"]
