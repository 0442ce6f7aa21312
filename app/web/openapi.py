"""The OpenAPI document, told the truth: invalid requests are 400s here, never 422s;
the bearer token where one is required; the allowlisted values where they are checked.
Exact enough for a generated client: each operation named (its route's name) and each
body a named schema."""

import copy
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from app.web.responses import COMPONENT, DECLARED_BODIES
from app.web.schemas import ErrorBody

OPENAPI_URL = "/openapi.json"
# Paths that never need the API token: probes, bots checking before they trade, scrapers.
OPEN_PATHS = frozenset({"/healthz", "/capabilities", "/metrics"})
# Paths that also take the token as `access_token` in the query (browsers' EventSource
# and WebSocket cannot send a header).
QUERY_TOKEN_PATHS = frozenset({"/execution/events/stream", "/execution/events/ws"})
BEARER = "bearerAuth"


def install_openapi(
    app: FastAPI,
    *,
    bearer_token: bool = False,
    exchanges: frozenset[str] = frozenset(),
    symbols: frozenset[str] = frozenset(),
) -> None:
    """Build the document once, on first request, without FastAPI's 422 responses."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            # A copy: FastAPI puts the routes' own dicts (request body schemas) into the
            # document, and what is changed here must not reach another app's.
            document = copy.deepcopy(get_openapi(title=app.title, version=app.version, routes=app.routes))
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            add_schemas(schemas, (*DECLARED_BODIES, ErrorBody))
            error_body = {"$ref": COMPONENT.format(model=ErrorBody.__name__)}
            for path, operations in document.get("paths", {}).items():
                for operation in operations.values():
                    responses = operation.setdefault("responses", {})
                    responses.pop("422", None)
                    if bearer_token and path not in OPEN_PATHS:
                        operation["security"] = [{BEARER: []}]
                        responses["401"] = {
                            "description": "Missing or wrong bearer token",
                            "content": {"application/json": {"schema": error_body}},
                        }
                    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
                    _allowlisted(_resolved(body.get("schema", {}), schemas), exchanges, symbols)
            if bearer_token:
                document["components"]["securitySchemes"] = {
                    BEARER: {"type": "http", "scheme": "bearer", "description": "EXECUTION_API_TOKEN"}
                }
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def operation_id(route: APIRoute) -> str:
    """An operation's id is its route function's name (`submit_order_intent`): what a
    generated client names its call. FastAPI's own adds the path and method."""
    return route.name


def add_schemas(schemas: dict[str, Any], models: Iterable[type[BaseModel]]) -> None:
    """`models` and the schemas they refer to (the vocabulary's enums) among the
    document's `schemas`, by name. A name already there is FastAPI's rendering of the
    same class (a response's, which leaves out defaults): it stays."""
    for model in models:
        schema = model.model_json_schema(ref_template=COMPONENT)
        for name, definition in {**schema.pop("$defs", {}), model.__name__: schema}.items():
            schemas.setdefault(name, definition)


def _resolved(schema: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    prefix = COMPONENT.format(model="")
    return schemas.get(ref.removeprefix(prefix), {}) if ref.startswith(prefix) else schema


def _allowlisted(schema: dict[str, Any], exchanges: frozenset[str], symbols: frozenset[str]) -> None:
    """Name the allowed values in a body's `exchange` and `symbol`, so a client (or a
    schema-driven test) can tell an accepted request from a refused one. An empty
    allowlist stays a plain string: every value is refused then, and JSON Schema has
    no empty enum."""
    properties = schema.get("properties", {})
    for name, allowed in (("exchange", exchanges), ("symbol", symbols)):
        if name in properties and allowed:
            properties[name]["enum"] = sorted(allowed)
