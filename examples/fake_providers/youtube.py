"""Fake YouTube: Google's OAuth token endpoint plus Data API v3 video upload (multipart and resumable)."""

from __future__ import annotations

import json
import re
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from .faults import FaultState, fault_mode_of, install_faults

__all__ = ["TOKEN_PATH", "UPLOAD_PATH", "create_youtube_app"]

TOKEN_PATH = "/token"
UPLOAD_PATH = "/upload/youtube/v3/videos"
UPLOAD_SCOPE = "https://www.googleapis.com/auth/youtube.upload"
TOKEN_LIFETIME_SECONDS = 3599
CHANNEL_ID = "UCfakeChannel0000000000"
VIDEO_ID_ALPHABET = string.ascii_letters + string.digits + "-_"

AUTH_HELP = "See https://developers.google.com/identity/sign-in/web/devconsole-project."
QUOTA_MESSAGE = (
    "The request cannot be completed because you have exceeded your "
    '<a href="/youtube/v3/getting-started#quota">quota</a>.'
)
RATE_LIMIT_MESSAGE = (
    "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' "
    "of service 'youtube.googleapis.com' for consumer 'project_number:000000000000'."
)


UPLOAD_LIMIT_MESSAGE = "The user has exceeded the number of videos they may upload."


def _google_error(
    code: int, message: str, reason: str, domain: str, status: str | None = None, **extra: str
) -> JSONResponse:
    """Google's JSON error: top-level message plus one ``errors`` entry (whose message may differ, as for auth)."""
    detail = {"message": extra.pop("detail", message), "domain": domain, "reason": reason, **extra}
    error: dict = {"code": code, "message": message, "errors": [detail]}
    if status:
        error["status"] = status
    return JSONResponse({"error": error}, status_code=code)


def _unauthenticated(missing: bool) -> JSONResponse:
    if missing:
        lead, detail, reason = "Request is missing required authentication credential.", "Login Required.", "required"
    else:
        lead, detail, reason = "Request had invalid authentication credentials.", "Invalid Credentials", "authError"
    message = (
        f"{lead} Expected OAuth 2 access token, login cookie or other valid authentication credential. {AUTH_HELP}"
    )
    response = _google_error(
        401,
        message,
        reason,
        "global",
        "UNAUTHENTICATED",
        detail=detail,
        location="Authorization",
        locationType="header",
    )
    response.headers["WWW-Authenticate"] = 'Bearer realm="https://accounts.google.com/"'
    return response


def _fault_error(mode: str) -> JSONResponse | None:
    if mode == "quota":
        return _google_error(403, QUOTA_MESSAGE, "quotaExceeded", "youtube.quota")
    if mode == "rate_limit":
        return _google_error(429, RATE_LIMIT_MESSAGE, "rateLimitExceeded", "global")
    if mode == "upload_limit":  # the channel's daily cap on uploads (videos.insert), whatever units remain
        return _google_error(400, UPLOAD_LIMIT_MESSAGE, "uploadLimitExceeded", "youtube.video")
    if mode == "server_error":
        return _google_error(503, "The service is currently unavailable.", "backendError", "global", "UNAVAILABLE")
    return None


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


class AccessTokens:
    """Access tokens this fake issued, with their expiry; only these open the API routes."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self) -> str:
        token = f"ya29.{secrets.token_urlsafe(48)}"
        with self._lock:
            self._expiry[token] = time.monotonic() + TOKEN_LIFETIME_SECONDS
        return token

    def is_valid(self, token: str) -> bool:
        with self._lock:
            return self._expiry.get(token, 0.0) > time.monotonic()


@dataclass
class ResumableSession:
    metadata: dict
    parts: list[str]
    total: int | None
    received: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _split_multipart(body: bytes, content_type: str) -> list[bytes] | None:
    """Bodies of a multipart/related payload (googleapiclient separates lines with LF, others with CRLF)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        return None
    delimiter = re.escape(b"--" + match.group(1).encode())
    parts = []
    for chunk in re.split(rb"\r?\n?" + delimiter, body)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk.removeprefix(b"\r\n").removeprefix(b"\n")
        head_end = re.search(rb"\r?\n\r?\n", chunk)
        parts.append(chunk[head_end.end() :] if head_end else b"")
    return parts


def _video_resource(metadata: dict, parts: list[str], partial: bool) -> dict:
    """The resource videos.insert returns, limited to the requested ``part``s; partial mode marks the upload failed."""
    snippet_in = metadata.get("snippet") or {}
    status_in = metadata.get("status") or {}
    title, description = snippet_in.get("title", ""), snippet_in.get("description", "")
    resource: dict = {
        "kind": "youtube#video",
        "etag": secrets.token_urlsafe(20),
        "id": "".join(secrets.choice(VIDEO_ID_ALPHABET) for _ in range(11)),
    }
    if "snippet" in parts:
        resource["snippet"] = {
            "publishedAt": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "channelId": CHANNEL_ID,
            "title": title,
            "description": description,
            "channelTitle": "Fake Channel",
            "tags": snippet_in.get("tags", []),
            "categoryId": str(snippet_in.get("categoryId", "22")),
            "liveBroadcastContent": "none",
            "localized": {"title": title, "description": description},
        }
    if "status" in parts:
        status = {
            "uploadStatus": "failed" if partial else "uploaded",
            "privacyStatus": status_in.get("privacyStatus", "public"),
            "license": "youtube",
            "embeddable": True,
            "publicStatsViewable": True,
        }
        if partial:
            status["failureReason"] = "conversion"
        resource["status"] = status
    return resource


def _invalid_title() -> JSONResponse:
    return _google_error(
        400, "The request metadata specifies an invalid or empty video title.", "invalidTitle", "youtube.video"
    )


def create_youtube_app(
    client_id: str, client_secret: str, refresh_token: str, faults: FaultState | None = None
) -> FastAPI:
    """The fake token endpoint and upload API; the API accepts only access tokens minted by ``POST /token``."""
    faults = faults or FaultState()
    tokens = AccessTokens()
    sessions: dict[str, ResumableSession] = {}
    app = FastAPI(title="fake youtube", openapi_url=None, docs_url=None, redoc_url=None)
    install_faults(app, faults, on_reset=sessions.clear)

    @app.post(TOKEN_PATH)
    async def token(request: Request) -> JSONResponse:
        """Refresh-token grant: a wrong client is 401 invalid_client; a wrong refresh token (or invalid_key mode)
        is 400 invalid_grant; other fault modes do not touch the token endpoint."""
        raw = await request.body()
        if "json" in request.headers.get("content-type", ""):
            form = {k: str(v) for k, v in (json.loads(raw or b"{}") or {}).items()}
        else:
            form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "refresh_token":
            return _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}")
        if form.get("client_id") != client_id or form.get("client_secret") != client_secret:
            return _oauth_error(401, "invalid_client", "Unauthorized")
        if form.get("refresh_token") != refresh_token or fault_mode_of(request) == "invalid_key":
            return _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        return JSONResponse(
            {
                "access_token": tokens.issue(),
                "expires_in": TOKEN_LIFETIME_SECONDS,
                "scope": UPLOAD_SCOPE,
                "token_type": "Bearer",
            }
        )

    def refusal(request: Request) -> JSONResponse | None:
        scheme, _, access_token = request.headers.get("authorization", "").partition(" ")
        if not access_token:
            return _unauthenticated(missing=True)
        if (
            scheme.lower() != "bearer"
            or not tokens.is_valid(access_token.strip())
            or fault_mode_of(request) == "invalid_key"
        ):
            return _unauthenticated(missing=False)
        return _fault_error(fault_mode_of(request))

    def requested_parts(request: Request) -> list[str] | JSONResponse:
        parts = [p.strip() for p in request.query_params.get("part", "").split(",") if p.strip()]
        if not parts:
            return _google_error(
                400, "No filter selected. Expected one of: part", "missingRequiredParameter", "youtube.parameter"
            )
        return parts

    def finished(request: Request, metadata: dict, parts: list[str]) -> JSONResponse:
        if not (metadata.get("snippet") or {}).get("title"):
            return _invalid_title()
        return JSONResponse(_video_resource(metadata, parts, partial=fault_mode_of(request) == "partial"))

    @app.post(UPLOAD_PATH)
    async def upload(request: Request) -> Response:
        if denied := refusal(request):
            return denied
        parts = requested_parts(request)
        if isinstance(parts, JSONResponse):
            return parts
        upload_type = request.query_params.get("uploadType", "")
        body = await request.body()
        try:
            if upload_type == "multipart":
                sections = _split_multipart(body, request.headers.get("content-type", ""))
                if not sections or len(sections) < 2:
                    return _google_error(400, "Invalid multipart request.", "badContent", "global")
                return finished(request, json.loads(sections[0] or b"{}"), parts)
            if upload_type == "resumable":
                metadata = json.loads(body or b"{}")
                if not (metadata.get("snippet") or {}).get("title"):
                    return _invalid_title()
                length = request.headers.get("x-upload-content-length")
                upload_id = secrets.token_urlsafe(24)
                sessions[upload_id] = ResumableSession(metadata, parts, int(length) if length else None)
                query = urlencode({**request.query_params, "upload_id": upload_id})
                location = f"{str(request.base_url).rstrip('/')}{UPLOAD_PATH}?{query}"
                return Response(status_code=200, headers={"Location": location, "X-GUploader-UploadID": upload_id})
        except (ValueError, AttributeError):
            return _google_error(400, "Invalid JSON payload received.", "parseError", "global")
        return _google_error(400, f"Invalid value for uploadType: {upload_type!r}", "invalidParameter", "global")

    @app.put(UPLOAD_PATH)
    async def upload_bytes(request: Request) -> Response:
        """Bytes of a resumable session: 308 with ``Range`` until the declared total arrived, then the video."""
        if denied := refusal(request):
            return denied
        session = sessions.get(request.query_params.get("upload_id", ""))
        if session is None:
            return _google_error(404, "Upload session not found.", "notFound", "global")
        chunk = await request.body()
        total_text = request.headers.get("content-range", "").rpartition("/")[2]
        with session.lock:
            session.received += len(chunk)
            if total_text.isdigit():
                session.total = int(total_text)
            received, total = session.received, session.total
        if total is not None and received < total:
            headers = {"Range": f"bytes=0-{received - 1}"} if received else {}
            return Response(status_code=308, headers=headers)
        sessions.pop(request.query_params["upload_id"], None)
        return finished(request, session.metadata, session.parts)

    return app
