"""Finding the token a request presents among the configured hashes, in constant time, and the scope it grants."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from otel_monitor.monitor.auth.config import ApiToken, Scope, hash_token

__all__ = ["Grant", "TokenTable", "bearer_token"]


@dataclass(frozen=True)
class Grant:
    """Who a valid token is (its configured name) and the widest scope it has."""

    name: str
    scope: Scope


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value (scheme case-insensitive), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class TokenTable:
    """The configured tokens by hash. ``grant`` hashes the presented token and compares it with every configured
    hash, each with ``hmac.compare_digest``, without stopping at a match: the time taken says nothing about which
    hash, or how much of one, matched."""

    def __init__(self, tokens: Iterable[ApiToken]) -> None:
        self._entries = [
            (token.sha256.encode(), Grant(token.name, token.scope)) for token in tokens if token.sha256 is not None
        ]

    def __bool__(self) -> bool:
        return bool(self._entries)

    def grant(self, token: str | None) -> Grant | None:
        """The grant of ``token``, or None if it is absent or unknown."""
        if not token:
            return None
        presented = hash_token(token).encode()
        found: Grant | None = None
        for digest, grant in self._entries:
            if hmac.compare_digest(presented, digest):
                found = grant
        return found
