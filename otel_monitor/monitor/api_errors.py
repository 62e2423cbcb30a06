"""The JSON body of the monitor API's own errors (``{"detail": "..."}``, as FastAPI's ``HTTPException`` answers) and
the OpenAPI ``responses`` entries that document it on a route."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel

__all__ = ["ApiError", "error_responses"]


class ApiError(BaseModel):
    """An error the API answers: what was wrong, in words (never a secret)."""

    detail: str


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route that may answer these error statuses with an ``ApiError`` body."""
    return {status: {"model": ApiError, "description": HTTPStatus(status).phrase} for status in statuses}
