"""The ``auth`` config section: API tokens stored as SHA-256 hashes, their nested scopes, the status page's access."""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["ApiToken", "AuthConfig", "Scope", "hash_token", "is_loopback", "unauthenticated_exposure"]


class Scope(enum.StrEnum):
    """What a token may do; nested: ``admin`` includes ``write``, which includes ``read``."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def includes(self, needed: Scope) -> bool:
        return self.rank >= needed.rank


_RANK = {Scope.READ: 0, Scope.WRITE: 1, Scope.ADMIN: 2}


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token. API tokens are long random strings (e.g. ``openssl rand -hex 32``), not
    passwords: with 256 bits of entropy no dictionary or brute force can invert a fast hash, so a slow password hash
    (bcrypt, argon2) would only cost every request its latency."""
    return hashlib.sha256(token.encode()).hexdigest()


class ApiToken(BaseModel):
    """One token: its name (shown in logs, never the token), its scopes and either the hex SHA-256 of its value
    (``otel-monitor hash-token``) or the environment variable holding the value (hashed at load, never kept)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    scopes: list[Scope] = Field(min_length=1)
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    from_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @field_validator("sha256")
    @classmethod
    def _lower_case(cls, value: str | None) -> str | None:
        return value.lower() if value is not None else None

    @field_validator("from_env")
    @classmethod
    def _variable_is_set(cls, value: str | None) -> str | None:
        if value is not None and not os.environ.get(value):
            raise ValueError(f"environment variable {value} is not set (or empty)")
        return value

    @model_validator(mode="after")
    def _hash_the_environment_value(self) -> ApiToken:
        if (self.sha256 is None) == (self.from_env is None):
            raise ValueError("give exactly one of sha256 (the token's hash) and from_env (a variable holding it)")
        if self.from_env is not None:
            self.sha256 = hash_token(os.environ[self.from_env])  # the value itself is not kept
        return self

    @property
    def scope(self) -> Scope:
        """The widest of its scopes (they are nested)."""
        return max(self.scopes, key=lambda scope: scope.rank)


class AuthConfig(BaseModel):
    """Who may use the API. No token at all: the API is open, as before tokens existed (serve warns, and refuses a
    non-loopback ``server.host`` unless ``allow_unauthenticated``). ``status_page``: ``public`` opens the status page
    and its JSON summary to anyone, ``protected`` (the default) asks them for ``read``."""

    model_config = ConfigDict(extra="forbid")
    tokens: list[ApiToken] = []
    status_page: Literal["public", "protected"] = "protected"
    allow_unauthenticated: bool = False

    @field_validator("tokens")
    @classmethod
    def _unique_names(cls, tokens: list[ApiToken]) -> list[ApiToken]:
        names = [token.name for token in tokens]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"token names must be unique: {', '.join(duplicates)}")
        return tokens

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)


def is_loopback(host: str) -> bool:
    """Whether ``host`` listens on this machine only: ``localhost`` or a loopback address (any other name may
    resolve anywhere)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def unauthenticated_exposure(auth: AuthConfig, host: str) -> list[tuple[tuple[str, ...], str]]:
    """Why serving on ``host`` is refused: the API would be open beyond this machine (no token, not allowed
    explicitly). (where in the config file, what is wrong), as the config's other cross-section findings."""
    if auth.enabled or auth.allow_unauthenticated or is_loopback(host):
        return []
    return [
        (
            ("server", "host"),
            f"{host} is reachable from other machines but no API token is configured, so anyone "
            "there could read the alerts and run drills: add tokens (otel-monitor hash-token), listen on "
            "127.0.0.1, or set auth.allow_unauthenticated: true",
        )
    ]
