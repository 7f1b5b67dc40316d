"""HTTP plumbing of the annotation server: body size limit, strict JSON bodies, JSON-safe errors.

Why each piece exists:
- ``BodyLimit`` buffers the body before the app sees it, so a chunked upload (no
  Content-Length) over the limit gets the documented 413, not FastAPI's generic 400.
- ``strict_body`` refuses what Python's ``json`` happily parses but JSON does not contain
  (``NaN``, ``Infinity``, ``1e999`` which overflows to infinity) and validates the body in
  pydantic's strict mode, so ``"5"``, ``true`` or ``1.0`` are never coerced into an integer
  index. FastAPI's own (lax) validation still builds the endpoint's argument; strict-valid
  bodies are lax-valid with the same values.
- ``validation_error`` renders every 422 as valid JSON: a non-finite number echoed back in an
  error would otherwise make the JSON encoder raise, turning a 422 into a 500.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError


class BodyLimit:
    """ASGI middleware: refuse request bodies over a byte limit with a clear 413.

    The body is read (at most ``max_bytes`` of it) before the app runs and then replayed, so the
    limit holds for chunked bodies too; nothing over the limit is ever kept in memory.
    """

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_big = JSONResponse({"detail": f"request body is larger than {self.max_bytes} bytes"}, status_code=413)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return await too_big(scope, receive, send)
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away before sending it all
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                return await too_big(scope, receive, send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()  # later calls wait for the disconnect, as usual
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


def no_nul(text: str) -> str:
    """PostgreSQL text cannot hold NUL; refuse it on every backend (a 422, not a late 500)."""
    if "\x00" in text:
        raise ValueError("text must not contain NUL characters")
    return text


class NonFiniteNumber(ValueError):
    pass


def _reject_constant(name: str) -> float:
    raise NonFiniteNumber(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NonFiniteNumber(text)
    return value


def loads_finite(body: bytes | str) -> Any:
    """``json.loads`` that refuses NaN, Infinity and numbers that overflow a double."""
    return json.loads(body, parse_constant=_reject_constant, parse_float=_finite_float)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # 'nan', 'inf': shown as text, never as invalid JSON
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, status_code=422)


@functools.lru_cache(maxsize=64)
def _adapter(model: Any) -> TypeAdapter:
    return TypeAdapter(model)


async def strict_body(request: Request) -> None:
    """Dependency: the route's JSON body must be finite and valid in pydantic's strict mode.

    Declared after the auth dependency on each endpoint with a body, so an unauthenticated
    caller gets 401 before any validation detail.
    """
    field = getattr(request.scope.get("route"), "body_field", None)
    if field is None:
        return
    body = await request.body()
    if body:
        _check_strict(body, _adapter(field.field_info.annotation))


def _check_strict(body: bytes, adapter: TypeAdapter) -> None:
    try:
        loads_finite(body)
    except NonFiniteNumber as e:
        raise RequestValidationError([{
            "type": "json_invalid", "loc": ("body",), "msg": "JSON decode error", "input": {},
            "ctx": {"error": f"{e} is not a number JSON allows (no NaN, Infinity or overflowing values)"},
        }]) from None
    except (ValueError, UnicodeDecodeError):
        return  # not JSON at all: FastAPI reports it with the position
    try:
        adapter.validate_json(body, strict=True)
    except ValidationError as e:
        raise RequestValidationError(
            [{**err, "loc": ("body", *err["loc"])} for err in e.errors(include_url=False)]) from None
