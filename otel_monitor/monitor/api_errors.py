"""The JSON body of the monitor API's own errors (``{"detail": "..."}``, as FastAPI's ``HTTPException`` answers) and
the OpenAPI ``responses`` entries that document it on a route."""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["ApiError", "error_responses", "document_unparsable_bodies", "invalid_body_field"]

_COMPONENTS = "#/components/schemas/"


class ApiError(BaseModel):
    """An error the API answers: what was wrong, in words (never a secret)."""

    detail: str


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route that may answer these error statuses with an ``ApiError`` body."""
    return {status: {"model": ApiError, "description": HTTPStatus(status).phrase} for status in statuses}


def document_unparsable_bodies(app: FastAPI) -> None:
    """Documents the 400 that FastAPI answers, before any validation, to a request body it cannot parse (bytes that
    are not JSON text): on every operation that takes a body, each time the OpenAPI document is served."""
    build = app.openapi
    bad_body = {
        "description": HTTPStatus.BAD_REQUEST.phrase,
        "content": {"application/json": {"schema": {"$ref": f"{_COMPONENTS}ApiError"}}},
    }

    def openapi() -> dict[str, Any]:
        document = build()  # cached by FastAPI: the additions are made once
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("ApiError", ApiError.model_json_schema(ref_template=_COMPONENTS + "{model}"))
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                if "requestBody" in operation:
                    operation.setdefault("responses", {}).setdefault("400", bad_body)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def invalid_body_field(field: str, message: str, value: object) -> RequestValidationError:
    """A 422 naming the body's ``field``, in the body FastAPI gives every validation error (the documented 422), for
    a check that only the route can make (a time that must still be ahead)."""
    error = {"loc": ("body", field), "msg": f"Value error, {message}", "type": "value_error", "input": str(value)}
    return RequestValidationError([error])
