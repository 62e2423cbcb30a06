"""Keeps secrets out of telemetry: scrubs known secret values and credential patterns from text, URLs and attributes."""

from __future__ import annotations

import functools
import json
import os
import re
import threading
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["REDACTED", "is_sensitive_key", "SENSITIVE_HEADERS", "SENSITIVE_QUERY_PARAMS", "SECRET_ENV_VARS", "SecretScrubber", "default_scrubber"]

REDACTED = "REDACTED"

SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-goog-api-key", "x-api-key", "api-key", "cookie", "set-cookie"}
)
SENSITIVE_QUERY_PARAMS = frozenset(
    {"key", "api_key", "apikey", "access_token", "refresh_token", "id_token", "token", "client_secret",
     "code", "sig", "signature", "x-goog-signature", "awsaccesskeyid"}
)
# Environment variables whose values are secrets of the monitored backend; registered at start-up.
SECRET_ENV_VARS = (
    "GEMINI_API_KEY", "GOOGLE_API_KEY", "STABILITY_API_KEY", "DID_API_KEY", "D_ID_API_KEY",
    "YOUTUBE_CLIENT_SECRET", "YOUTUBE_REFRESH_TOKEN", "YOUTUBE_ACCESS_TOKEN",
)

# Credentials recognisable by shape, whether or not their value was registered.
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
    """Replaces secrets in strings. Known values are matched exactly; credential shapes by pattern."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._known: re.Pattern[str] | None = None
        for secret in secrets:
            self.register(secret)

    def register(self, secret: str | None) -> None:
        """Remember a secret value so it is scrubbed wherever it appears later."""
        if not secret or len(secret) < _MIN_SECRET_LENGTH or secret in self._secrets:
            return
        with self._lock:
            if len(self._secrets) >= _MAX_SECRETS:
                return
            self._secrets.add(secret)
            escaped = json.dumps(secret)[1:-1]  # as it appears inside a rendered JSON line
            if escaped != secret:
                self._secrets.add(escaped)
            # Longest first, so a secret that contains another is replaced whole.
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._known = re.compile("|".join(re.escape(s) for s in ordered))

    def register_from_environment(self, environ: Mapping[str, str] = os.environ) -> None:
        """Registers the backend's known secrets and any variable named like one (``*_API_KEY``, ``*_TOKEN``...)."""
        for name, value in environ.items():
            if name in SECRET_ENV_VARS or _SECRET_NAME.search(name):
                self.register(value)

    def scrub_text(self, text: str) -> str:
        known = self._known
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

    def scrub_value(self, value):
        """Scrubs a telemetry value: text, and the text inside sequences and mappings at any depth (values under
        credential-named keys dropped whole); other types pass unchanged."""
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, (list, tuple)):
            return type(value)(self.scrub_value(v) for v in value)
        if isinstance(value, Mapping):
            return {k: REDACTED if is_sensitive_key(k) else self.scrub_value(v) for k, v in value.items()}
        return value

    def scrub_mapping(self, attributes: Mapping[str, object] | None) -> dict[str, object]:
        """A scrubbed copy of an attribute mapping; values of sensitive headers are dropped whole."""
        if not attributes:
            return {}
        cleaned: dict[str, object] = {}
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


default_scrubber = SecretScrubber()
