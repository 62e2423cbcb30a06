"""Keeps secrets out of telemetry: scrubs known secret values and credential patterns from text, URLs and attributes."""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    from opentelemetry.util.types import AnyValue

__all__ = [
    "REDACTED",
    "is_sensitive_key",
    "SENSITIVE_HEADERS",
    "SENSITIVE_QUERY_PARAMS",
    "SECRET_ENV_VARS",
    "SecretScrubber",
    "default_scrubber",
    "request_credentials",
]

REDACTED = "REDACTED"

SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-goog-api-key", "x-api-key", "api-key", "cookie", "set-cookie"}
)
SENSITIVE_QUERY_PARAMS = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "client_secret",
        "code",
        "sig",
        "signature",
        "x-goog-signature",
        "awsaccesskeyid",
    }
)
# Environment variables whose values are secrets of the monitored backend; registered at start-up.
SECRET_ENV_VARS = (
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "STABILITY_API_KEY",
    "DID_API_KEY",
    "D_ID_API_KEY",
    "YOUTUBE_CLIENT_SECRET",
    "YOUTUBE_REFRESH_TOKEN",
    "YOUTUBE_ACCESS_TOKEN",
)

# Credentials recognisable by shape, whether or not their value was registered. Values stop at a backslash
# and an optional backslash may precede quotes, so the patterns also work on JSON-escaped text without
# breaking its escapes.
_PATTERNS = re.compile(
    r"(?P<scheme>\b(?:Bearer|Basic|Token)\s+)[A-Za-z0-9._~+/=:-]{6,}"
    r"|(?P<param>[?&](?:" + "|".join(re.escape(p) for p in sorted(SENSITIVE_QUERY_PARAMS)) + r")=)[^&#\s'\"\\]+"
    r"|(?P<header>\b(?:x-goog-api-key|x-api-key|authorization)(?:\\?[\"'])?\s*[:=]\s*(?:\\?[\"'])?"
    r"(?:(?:Bearer|Basic|Token)\s+)?)[^\s,'\"}\\]+"
    r"|AIza[0-9A-Za-z_-]{20,}"
    r"|ya29\.[0-9A-Za-z._-]+"
    r"|\b1//[0-9A-Za-z._-]{10,}",
    re.IGNORECASE,
)
_SECRET_NAME = re.compile(r"(API_KEY|SECRET|TOKEN|PASSWORD|PASSWD)$", re.IGNORECASE)
_MIN_SECRET_LENGTH = 6
_MAX_SECRETS = 512
# Credentials learned from outgoing requests: a backend holds a handful of keys; past this many (keys minted per
# user, per request) the oldest learned one is forgotten, so neither memory nor the scrub pattern grows unbounded.
MAX_LEARNED_SECRETS = 256
_CREDENTIAL_SCHEMES = frozenset({"bearer", "basic", "token"})


@functools.lru_cache(maxsize=4096)
def _names_credential_header(key: str) -> bool:
    return key.rsplit(".", 1)[-1].replace("_", "-").lower() in SENSITIVE_HEADERS


def is_sensitive_key(key: object) -> bool:
    """Whether an attribute or field name names a credential header: ``http.request.header.x_api_key`` does."""
    return isinstance(key, str) and _names_credential_header(key)


# Substrings one of which every match of _PATTERNS contains: a cheap test that skips the regex for most text.
_PATTERN_HINTS = ("bearer", "basic", "token", "key", "authorization", "aiza", "ya29.", "1//", "?", "&")


def _may_hold_credential_shape(text: str) -> bool:
    lowered = text.lower()
    return any(hint in lowered for hint in _PATTERN_HINTS)


def _replace_pattern(match: re.Match[str]) -> str:
    prefix = match.group("scheme") or match.group("param") or match.group("header") or ""
    return prefix + REDACTED


class SecretScrubber:
    """Replaces secrets in strings. Known values are matched exactly; credential shapes by pattern.

    Values are either registered (configuration, environment: kept) or learned from outgoing requests (the
    newest ``MAX_LEARNED_SECRETS`` kept). Learning a value already known is one set lookup; the scrub pattern is
    rebuilt by the next scrub, on the thread that scrubs (a log writer, the span exporter), not by the learner.
    """

    def __init__(self, secrets: Iterable[str] = (), max_learned: int = MAX_LEARNED_SECRETS) -> None:
        self._lock = threading.Lock()
        self._registered: set[str] = set()
        self._learned: dict[str, None] = {}  # insertion order: the oldest learned first
        self._max_learned = max_learned
        self._secrets: frozenset[str] = frozenset()  # every value known, and its JSON-escaped form
        self._known: re.Pattern[str] | None = None
        self._stale = False
        for secret in secrets:
            self.register(secret)

    def register(self, secret: str | None) -> None:
        """Remember a secret value so it is scrubbed wherever it appears later."""
        if not secret or len(secret) < _MIN_SECRET_LENGTH or secret in self._registered:
            return
        with self._lock:
            if len(self._registered) >= _MAX_SECRETS:
                return
            self._registered.add(secret)
            self._learned.pop(secret, None)
            self._change_known(added=_forms(secret))

    def learn(self, secret: str | None) -> None:
        """Remember a credential seen on an outgoing request; past the bound, the oldest learned one is forgotten.
        A value already known costs one set lookup (this runs on the host's request path)."""
        if not secret or secret in self._secrets or len(secret) < _MIN_SECRET_LENGTH:
            return
        with self._lock:
            if secret in self._registered or secret in self._learned:
                return
            self._learned[secret] = None
            forgotten: set[str] = set()
            while len(self._learned) > self._max_learned:
                oldest = next(iter(self._learned))
                del self._learned[oldest]
                forgotten |= _forms(oldest)
            self._change_known(added=_forms(secret), removed=forgotten)

    def knows(self, secret: str) -> bool:
        """Whether ``secret`` is scrubbed as a known value (registered or still learned)."""
        return secret in self._secrets

    def _change_known(self, added: set[str], removed: frozenset[str] | set[str] = frozenset()) -> None:
        """Under the lock: a new set of known forms (readers see the old one or the new one, never a half)."""
        self._secrets = (self._secrets - removed) | added
        self._stale = True

    def _known_pattern(self) -> re.Pattern[str] | None:
        if self._stale:
            with self._lock:
                if self._stale:
                    # Longest first, so a secret that contains another is replaced whole.
                    ordered = sorted(self._secrets, key=len, reverse=True)
                    self._known = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None
                    self._stale = False
        return self._known

    def register_from_environment(self, environ: Mapping[str, str] = os.environ) -> None:
        """Registers the backend's known secrets and any variable named like one (``*_API_KEY``, ``*_TOKEN``...)."""
        for name, value in environ.items():
            if name in SECRET_ENV_VARS or _SECRET_NAME.search(name):
                self.register(value)

    def scrub_text(self, text: str) -> str:
        known = self._known_pattern()
        if known is not None:
            text = known.sub(REDACTED, text)
        if _may_hold_credential_shape(text):
            text = _PATTERNS.sub(_replace_pattern, text)
        return text

    def scrub_url(self, url: str) -> str:
        """The URL without userinfo and with sensitive query values replaced."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return self.scrub_text(url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode(
                [(k, REDACTED if k.lower() in SENSITIVE_QUERY_PARAMS else v) for k, v in pairs], safe=REDACTED
            )
        return self.scrub_text(urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment)))

    def scrub_value(self, value: AnyValue) -> AnyValue:
        """Scrubs a telemetry value: text, and the text inside sequences and mappings at any depth (values under
        credential-named keys dropped whole); other types pass unchanged."""
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, (list, tuple)):
            return type(value)(self.scrub_value(v) for v in value)
        if isinstance(value, Mapping):
            return {k: REDACTED if is_sensitive_key(k) else self.scrub_value(v) for k, v in value.items()}
        return value

    def scrub_mapping(self, attributes: Mapping[str, AnyValue] | None) -> dict[str, AnyValue]:
        """A scrubbed copy of an attribute mapping; values of sensitive headers are dropped whole."""
        if not attributes:
            return {}
        cleaned: dict[str, AnyValue] = {}
        for key, value in attributes.items():
            if is_sensitive_key(key):
                cleaned[key] = REDACTED
            elif key in ("url.full", "http.url", "http.target") and isinstance(value, str):
                cleaned[key] = self.scrub_url(value)
            elif key == "url.query" and isinstance(value, str):  # a bare query string, without its "?"
                cleaned[key] = self.scrub_url("?" + value)[1:]
            else:
                cleaned[key] = self.scrub_value(value)
        return cleaned


def _forms(secret: str) -> set[str]:
    """A secret as it appears in text, and inside a rendered JSON line."""
    return {secret, json.dumps(secret)[1:-1]}


def request_credentials(query: str, header: Callable[[str], str | None]) -> list[str]:
    """The credentials an outgoing request carries: values of its ``key`` query parameter, its ``x-goog-api-key``
    header and the credentials of its ``Authorization`` header (a Basic one also as its decoded password).

    ``query`` is the raw query string, ``header`` a case-insensitive header getter.
    """
    found = []
    if "key=" in query:  # split by hand: parse_qsl costs ten times as much
        found += [_unquoted(pair[4:]) for pair in query.split("&") if pair.startswith("key=") and len(pair) > 4]
    api_key = header("x-goog-api-key")
    if api_key:
        found.append(api_key.strip())
    authorization = header("authorization")
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if not credentials:  # a bare key in the header
            found.append(scheme)
        elif scheme.lower() in _CREDENTIAL_SCHEMES:
            credentials = credentials.strip()
            found.append(credentials)
            if scheme.lower() == "basic":
                found += _basic_password(credentials)
    return found


def _unquoted(value: str) -> str:
    return unquote_plus(value) if "%" in value or "+" in value else value


@functools.lru_cache(maxsize=MAX_LEARNED_SECRETS)  # the same few credentials on every request
def _basic_password(credentials: str) -> list[str]:
    try:
        decoded = base64.b64decode(credentials + "=" * (-len(credentials) % 4), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return []
    _, colon, password = decoded.partition(":")
    return [password] if colon else []


default_scrubber = SecretScrubber()
