"""Who is calling: token lookup (cached) shared by the JSON API and the pages.

A token comes in ``Authorization: Bearer <token>`` or in the ``rlhfkit_token`` cookie that the
login link (``/login?token=...``) sets. ``lookup`` resolves it to a ``Principal`` through a
short-lived cache; the API's dependencies turn "no principal" into 401/403, the pages into a
friendly message. One resolver for both, so a deactivated annotator stops working everywhere
within the same ``ttl_s``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from rlhfkit.feedback import repo
from rlhfkit.feedback.models import Annotator

COOKIE = "rlhfkit_token"
MAX_TOKEN_CHARS = 200


@dataclass
class Principal:
    admin: bool
    annotator: Annotator | None = None


class TokenCache:
    """token -> Principal for a few seconds: saves a database read on every request.

    A deactivated annotator or a rotated admin token stops working within ``ttl_s``.
    """

    def __init__(self, ttl_s: float = 5.0, max_size: int = 10_000):
        self.ttl_s, self.max_size = ttl_s, max_size
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> Principal | None:
        with self._lock:
            hit = self._entries.get(token)
        if hit is None or time.monotonic() - hit[0] > self.ttl_s:
            return None
        return hit[1]

    def put(self, token: str, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) >= self.max_size:
                self._entries.clear()
            self._entries[token] = (time.monotonic(), principal)


def token_of(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.cookies.get(COOKIE) or None


def resolve(request: Request, token: str | None) -> Principal | None:
    """The principal a token stands for (admin or an active annotator), or None."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    cache: TokenCache = request.app.state.token_cache
    principal = cache.get(token)
    if principal is None:
        with request.app.state.db.read() as s:
            if repo.is_admin_token(s, token):
                principal = Principal(admin=True)
            else:
                a = repo.annotator_by_token(s, token)
                principal = Principal(admin=False, annotator=a) if a else None
        if principal is None:
            return None  # unknown tokens are not cached: a new annotator's link works at once
        cache.put(token, principal)
    return principal


def lookup(request: Request) -> Principal | None:
    """The caller's principal from header or cookie, or None."""
    return resolve(request, token_of(request))


def principal_of(request: Request) -> Principal:
    token = token_of(request)
    if token is None or len(token) > MAX_TOKEN_CHARS:
        raise HTTPException(401, "missing or malformed token: use your login link or an Authorization: Bearer header")
    principal = resolve(request, token)
    if principal is None:
        raise HTTPException(401, "unknown or deactivated token")
    return principal


def annotator_only(p: Annotated[Principal, Depends(principal_of)]) -> Annotator:
    if p.annotator is None:
        raise HTTPException(403, "this endpoint is for annotators; the admin token cannot annotate")
    return p.annotator


def admin_only(p: Annotated[Principal, Depends(principal_of)]) -> Principal:
    if not p.admin:
        raise HTTPException(403, "admin token required")
    return p


AnnotatorDep = Annotated[Annotator, Depends(annotator_only)]
AdminDep = Annotated[Principal, Depends(admin_only)]
