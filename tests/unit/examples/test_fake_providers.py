"""The fake providers answer real HTTP clients with each provider's wire format, and obey the fault controls."""

from __future__ import annotations

import base64
import functools
import json
import time
from collections.abc import Callable

import httplib2
import httpx
import pytest

from examples.fake_providers import FakeProviders

GEMINI_KEY = "test-gemini-key"
STABILITY_KEY = "sk-test-stability"
DID_KEY = "did-user@example.com:did-secret"
CLIENT_ID = "test-client.apps.googleusercontent.com"
CLIENT_SECRET = "test-client-secret"
REFRESH_TOKEN = "1//test-refresh-token"
GEMINI_PATH = "/v1beta/models/gemini-2.0-flash:generateContent"
UPLOAD_PATH = "/upload/youtube/v3/videos"


@pytest.fixture(scope="module")
def fakes():
    with FakeProviders(
        gemini_key=GEMINI_KEY,
        stability_key=STABILITY_KEY,
        did_key=DID_KEY,
        youtube_client_id=CLIENT_ID,
        youtube_client_secret=CLIENT_SECRET,
        youtube_refresh_token=REFRESH_TOKEN,
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(fakes):
    fakes.reset()
    minted_token(fakes.base_url("youtube"))  # minted while every fake is in mode ok; tokens survive resets


@pytest.fixture
def trusted_httplib2(fakes, monkeypatch):
    """googleapiclient uploads over https even to an http api_endpoint; trust the fake's certificate for that."""
    monkeypatch.setattr(httplib2, "CA_CERTS", str(fakes.ca_bundle))


def contains(actual, expected) -> bool:
    """``expected`` is a fragment of ``actual``: dict keys recurse, list items match by position."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and contains(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) >= len(expected) and all(map(contains, actual, expected))
    return actual == expected


# One canonical, correctly authenticated call per provider -------------------------------------------------------


def youtube_token(
    fakes: FakeProviders, refresh_token: str = REFRESH_TOKEN, secret: str = CLIENT_SECRET
) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "client_id": CLIENT_ID,
        "client_secret": secret,
        "refresh_token": refresh_token,
    }
    return httpx.post(f"{fakes.base_url('youtube')}/token", data=form)


def multipart_upload(
    fakes: FakeProviders, access_token: str, title: str = "Demo", timeout: float = 5.0
) -> httpx.Response:
    metadata = json.dumps({"snippet": {"title": title}, "status": {"privacyStatus": "unlisted"}})
    body = (
        b"--XX\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
        + metadata.encode()
        + b"\r\n--XX\r\nContent-Type: video/mp4\r\n\r\n"
        + b"\x00fake-video" * 100
        + b"\r\n--XX--\r\n"
    )
    return httpx.post(
        f"{fakes.base_url('youtube')}{UPLOAD_PATH}",
        params={"uploadType": "multipart", "part": "snippet,status"},
        headers={"Authorization": f"Bearer {access_token}", "Content-Type": 'multipart/related; boundary="XX"'},
        content=body,
        timeout=timeout,
    )


def call_gemini(fakes: FakeProviders, timeout: float = 5.0) -> httpx.Response:
    return httpx.post(
        f"{fakes.base_url('gemini')}{GEMINI_PATH}",
        params={"key": GEMINI_KEY},
        json={"contents": [{"role": "user", "parts": [{"text": "Write a haiku about tracing"}]}]},
        timeout=timeout,
    )


def call_stability(fakes: FakeProviders, samples: int = 1, timeout: float = 5.0) -> httpx.Response:
    return httpx.post(
        f"{fakes.base_url('stability')}/v1/generation/stable-diffusion-xl-1024-v1-0/text-to-image",
        headers={"Authorization": f"Bearer {STABILITY_KEY}", "Accept": "application/json"},
        json={"text_prompts": [{"text": "a lighthouse"}], "samples": samples},
        timeout=timeout,
    )


def call_did(fakes: FakeProviders, auth: str = DID_KEY, timeout: float = 5.0) -> httpx.Response:
    return httpx.post(
        f"{fakes.base_url('d-id')}/talks",
        headers={"Authorization": f"Basic {auth}"},
        json={"source_url": "https://example.com/face.jpg", "script": {"type": "text", "input": "Hello"}},
        timeout=timeout,
    )


def call_youtube(fakes: FakeProviders, timeout: float = 5.0) -> httpx.Response:
    """Upload with a token minted before any fault is set (the token endpoint hangs in timeout mode too)."""
    return multipart_upload(fakes, minted_token(fakes.base_url("youtube")), timeout=timeout)


@functools.cache
def minted_token(youtube_base_url: str) -> str:
    form = {
        "grant_type": "refresh_token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
    }
    return httpx.post(f"{youtube_base_url}/token", data=form).json()["access_token"]


CALLS: dict[str, Callable[..., httpx.Response]] = {
    "gemini": call_gemini,
    "stability": call_stability,
    "d-id": call_did,
    "youtube": call_youtube,
}

# What each provider really answers in each fault mode: (service, mode, status, fragment of the JSON body) --------

QUOTA_MSG = (
    'The request cannot be completed because you have exceeded your <a href="/youtube/v3/getting-started#quota">'
    "quota</a>."
)
FAULT_TABLE = [
    (
        "gemini",
        "invalid_key",
        400,
        {
            "error": {
                "code": 400,
                "status": "INVALID_ARGUMENT",
                "message": "API key not valid. Please pass a valid API key.",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    }
                ],
            }
        },
    ),
    (
        "gemini",
        "quota",
        429,
        {
            "error": {
                "code": 429,
                "status": "RESOURCE_EXHAUSTED",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [
                            {
                                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                                "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                            }
                        ],
                    },
                    {"@type": "type.googleapis.com/google.rpc.Help"},
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo"},
                ],
            }
        },
    ),
    (
        "gemini",
        "rate_limit",
        429,
        {
            "error": {
                "code": 429,
                "status": "RESOURCE_EXHAUSTED",
                "details": [{"violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]}],
            }
        },
    ),
    (
        "gemini",
        "server_error",
        503,
        {
            "error": {
                "code": 503,
                "status": "UNAVAILABLE",
                "message": "The model is overloaded. Please try again later.",
            }
        },
    ),
    ("stability", "invalid_key", 401, {"name": "unauthorized"}),
    ("stability", "quota", 402, {"name": "payment_required"}),
    (
        "stability",
        "rate_limit",
        429,
        {
            "name": "rate_limit_exceeded",
            "message": "You have exceeded the rate limit of 150 requests within a 10 second period",
        },
    ),
    ("stability", "server_error", 500, {"name": "server_error"}),
    ("d-id", "invalid_key", 401, {"kind": "AuthorizationError", "description": "Unauthorized"}),
    ("d-id", "quota", 402, {"kind": "InsufficientCreditsError", "description": "not enough credits"}),
    ("d-id", "rate_limit", 429, {"kind": "TooManyRequestsError"}),
    ("d-id", "server_error", 500, {"kind": "UnknownError", "description": "Internal Server Error"}),
    (
        "youtube",
        "quota",
        403,
        {
            "error": {
                "code": 403,
                "message": QUOTA_MSG,
                "errors": [{"domain": "youtube.quota", "reason": "quotaExceeded"}],
            }
        },
    ),
    (
        "youtube",
        "rate_limit",
        429,
        {"error": {"code": 429, "errors": [{"domain": "global", "reason": "rateLimitExceeded"}]}},
    ),
    (
        "youtube",
        "server_error",
        503,
        {"error": {"code": 503, "status": "UNAVAILABLE", "errors": [{"domain": "global", "reason": "backendError"}]}},
    ),
]


@pytest.mark.parametrize(
    ("service", "mode", "status", "fragment"), FAULT_TABLE, ids=lambda v: v if isinstance(v, str) else None
)
def test_fault_mode_returns_provider_error(fakes, service, mode, status, fragment):
    """Each fault mode answers with the provider's real status code and error body."""
    fakes.set_fault(service, mode=mode)
    response = CALLS[service](fakes)
    assert response.status_code == status
    assert contains(response.json(), fragment), response.json()


def test_youtube_invalid_key_mode_rejects_tokens_and_refresh(fakes):
    """In invalid_key mode the token endpoint refuses the grant and the API refuses even a minted token."""
    token = youtube_token(fakes).json()["access_token"]
    fakes.set_fault("youtube", mode="invalid_key")
    refused = youtube_token(fakes)
    assert (refused.status_code, refused.json()) == (
        400,
        {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
    )
    upload = multipart_upload(fakes, token)
    assert upload.status_code == 401
    assert contains(
        upload.json(),
        {
            "error": {
                "code": 401,
                "status": "UNAUTHENTICATED",
                "errors": [
                    {
                        "message": "Invalid Credentials",
                        "domain": "global",
                        "reason": "authError",
                        "location": "Authorization",
                        "locationType": "header",
                    }
                ],
            }
        },
    )


WRONG_CREDENTIALS = [
    (
        "gemini",
        lambda f: httpx.post(
            f"{f.base_url('gemini')}{GEMINI_PATH}",
            params={"key": "nope"},
            json={"contents": [{"parts": [{"text": "x"}]}]},
        ),
        400,
        {"error": {"status": "INVALID_ARGUMENT", "details": [{"reason": "API_KEY_INVALID"}]}},
    ),
    (
        "gemini-missing",
        lambda f: httpx.post(f"{f.base_url('gemini')}{GEMINI_PATH}", json={"contents": [{"parts": [{"text": "x"}]}]}),
        403,
        {"error": {"code": 403, "status": "PERMISSION_DENIED"}},
    ),
    (
        "stability",
        lambda f: httpx.get(f"{f.base_url('stability')}/v1/user/balance", headers={"Authorization": "Bearer sk-wrong"}),
        401,
        {"name": "unauthorized"},
    ),
    (
        "stability-missing",
        lambda f: httpx.get(f"{f.base_url('stability')}/v1/user/balance"),
        401,
        {"name": "unauthorized", "message": "missing authorization header"},
    ),
    ("d-id", lambda f: call_did(f, auth="someone:else"), 401, {"kind": "AuthorizationError"}),
    (
        "youtube",
        lambda f: multipart_upload(f, "ya29.not-minted-here"),
        401,
        {"error": {"status": "UNAUTHENTICATED", "errors": [{"reason": "authError"}]}},
    ),
    (
        "youtube-missing",
        lambda f: httpx.post(
            f"{f.base_url('youtube')}{UPLOAD_PATH}", params={"uploadType": "multipart", "part": "snippet"}
        ),
        401,
        {"error": {"status": "UNAUTHENTICATED", "errors": [{"reason": "required"}]}},
    ),
]


@pytest.mark.parametrize(
    ("case", "call", "status", "fragment"), WRONG_CREDENTIALS, ids=[c[0] for c in WRONG_CREDENTIALS]
)
def test_wrong_or_missing_credentials_are_refused(fakes, case, call, status, fragment):
    """A wrong or missing key is refused the way the real provider refuses it, even in mode ok."""
    response = call(fakes)
    assert response.status_code == status
    assert contains(response.json(), fragment), response.json()


@pytest.mark.parametrize("service", list(CALLS))
def test_timeout_mode_hangs_past_the_client_timeout(fakes, service):
    """In timeout mode the server holds the answer for hang_seconds, so a shorter client timeout fires."""
    fakes.set_fault(service, mode="timeout", hang_seconds=3)
    with pytest.raises(httpx.ReadTimeout):
        CALLS[service](fakes, timeout=0.3)


# Success shapes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["query", "header"])
def test_gemini_accepts_key_in_query_or_header(fakes, where):
    """Gemini takes the key as ?key= or as the x-goog-api-key header and answers a generateContent body."""
    key_args = {"params": {"key": GEMINI_KEY}} if where == "query" else {"headers": {"x-goog-api-key": GEMINI_KEY}}
    response = httpx.post(
        f"{fakes.base_url('gemini')}{GEMINI_PATH}", json={"contents": [{"parts": [{"text": "hi"}]}]}, **key_args
    )
    body = response.json()
    assert response.status_code == 200
    assert contains(
        body,
        {
            "candidates": [{"content": {"role": "model"}, "finishReason": "STOP", "index": 0}],
            "modelVersion": "gemini-2.0-flash",
        },
    )
    assert isinstance(body["candidates"][0]["content"]["parts"][0]["text"], str)
    usage = body["usageMetadata"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]


def test_gemini_token_counts_vary_by_model_and_thinking_models_bill_thoughts(fakes):
    """Each model answers its own counts; a 2.5 model adds thoughtsTokenCount, which the total includes."""
    usages = {}
    for model in ("gemini-2.0-flash", "gemini-2.5-flash", "gemini-2.5-pro"):
        response = httpx.post(
            f"{fakes.base_url('gemini')}/v1beta/models/{model}:generateContent",
            json={"contents": [{"parts": [{"text": "a script about otters"}]}]},
            headers={"x-goog-api-key": GEMINI_KEY},
        )
        usages[model] = response.json()["usageMetadata"]
    assert "thoughtsTokenCount" not in usages["gemini-2.0-flash"]
    for usage in usages.values():
        assert usage["totalTokenCount"] == sum(v for k, v in usage.items() if k != "totalTokenCount")
    assert len({u["totalTokenCount"] for u in usages.values()}) == 3


def test_stability_generates_samples_and_charges_the_balance(fakes):
    """text-to-image returns one decodable PNG artifact per sample and the balance drops by cost per image."""
    balance_url = f"{fakes.base_url('stability')}/v1/user/balance"
    auth = {"Authorization": f"Bearer {STABILITY_KEY}"}
    before = httpx.get(balance_url, headers=auth).json()["credits"]
    response = call_stability(fakes, samples=3)
    artifacts = response.json()["artifacts"]
    assert response.status_code == 200
    assert [a["finishReason"] for a in artifacts] == ["SUCCESS"] * 3
    assert all(base64.b64decode(a["base64"]).startswith(b"\x89PNG") and isinstance(a["seed"], int) for a in artifacts)
    after = httpx.get(balance_url, headers=auth).json()["credits"]
    assert after == pytest.approx(before - 3 * fakes.stability_account.cost_per_image)


@pytest.mark.parametrize("spelling", ["raw", "base64"])
def test_did_talk_lifecycle(fakes, spelling):
    """A talk is created (201), reports started then done with a result_url, and costs one credit."""
    auth = DID_KEY if spelling == "raw" else base64.b64encode(DID_KEY.encode()).decode()
    headers = {"Authorization": f"Basic {auth}"}
    base = fakes.base_url("d-id")
    remaining = httpx.get(f"{base}/credits", headers=headers).json()["remaining"]
    created = call_did(fakes, auth=auth)
    assert created.status_code == 201
    talk = created.json()
    assert talk["id"].startswith("tlk_") and talk["object"] == "talk" and talk["status"] == "created"
    polls = [httpx.get(f"{base}/talks/{talk['id']}", headers=headers).json() for _ in range(2)]
    assert [p["status"] for p in polls] == ["started", "done"]
    assert polls[1]["result_url"].endswith(f"/results/{talk['id']}.mp4") and polls[1]["duration"] > 0
    assert httpx.get(polls[1]["result_url"]).headers["content-type"] == "video/mp4"
    credits = httpx.get(f"{base}/credits", headers=headers).json()
    assert credits["remaining"] == remaining - 1 == credits["credits"][0]["remaining"]
    assert set(credits["credits"][0]) >= {
        "owner_id",
        "expire_at",
        "created_at",
        "remaining",
        "total",
        "product_id",
        "price_id",
    }


def test_youtube_token_and_multipart_upload(fakes):
    """The token endpoint mints a ya29 Bearer token that the multipart upload accepts, echoing the title."""
    token = youtube_token(fakes).json()
    assert token["access_token"].startswith("ya29.") and token["token_type"] == "Bearer" and token["expires_in"] == 3599
    video = multipart_upload(fakes, token["access_token"], title="Trace me").json()
    assert video["kind"] == "youtube#video" and len(video["id"]) == 11
    assert video["snippet"]["title"] == "Trace me"
    assert video["status"] == {**video["status"], "uploadStatus": "uploaded", "privacyStatus": "unlisted"}


@pytest.mark.parametrize(
    ("refresh_token", "secret", "status", "error"),
    [
        (REFRESH_TOKEN + "x", CLIENT_SECRET, 400, "invalid_grant"),
        (REFRESH_TOKEN, "wrong-secret", 401, "invalid_client"),
    ],
    ids=["wrong-refresh-token", "wrong-client-secret"],
)
def test_token_endpoint_rejects_bad_grants(fakes, refresh_token, secret, status, error):
    """A wrong refresh token is invalid_grant; a wrong client secret is invalid_client, as Google answers."""
    response = youtube_token(fakes, refresh_token=refresh_token, secret=secret)
    assert response.status_code == status
    assert response.json()["error"] == error


# Partial failures -------------------------------------------------------------------------------------------------


def test_stability_partial_filters_every_other_artifact(fakes):
    """In partial mode 5 samples come back as 3 SUCCESS and 2 CONTENT_FILTERED (odd positions)."""
    fakes.set_fault("stability", mode="partial")
    reasons = [a["finishReason"] for a in call_stability(fakes, samples=5).json()["artifacts"]]
    assert reasons == ["SUCCESS", "CONTENT_FILTERED", "SUCCESS", "CONTENT_FILTERED", "SUCCESS"]


def test_did_partial_talk_ends_in_error(fakes):
    """In partial mode the talk is accepted but its second poll reports status error with a FaceError."""
    fakes.set_fault("d-id", mode="partial")
    talk_id = call_did(fakes).json()["id"]
    url, headers = f"{fakes.base_url('d-id')}/talks/{talk_id}", {"Authorization": f"Basic {DID_KEY}"}
    polls = [httpx.get(url, headers=headers).json() for _ in range(2)]
    assert polls[0]["status"] == "started"
    assert contains(polls[1], {"status": "error", "error": {"kind": "FaceError"}})


def test_youtube_partial_upload_reports_failed_status(fakes):
    """In partial mode the upload succeeds (200) but status.uploadStatus is failed with a failureReason."""
    fakes.set_fault("youtube", mode="partial")
    response = call_youtube(fakes)
    assert response.status_code == 200
    assert contains(response.json(), {"status": {"uploadStatus": "failed", "failureReason": "conversion"}})


def test_gemini_partial_is_answered_normally(fakes):
    """Gemini has no partial answer; partial mode serves the normal success body."""
    fakes.set_fault("gemini", mode="partial")
    assert call_gemini(fakes).json()["candidates"][0]["finishReason"] == "STOP"


# Latency, stats and the control endpoints -------------------------------------------------------------------------


def test_latencies_cycle_over_successive_requests(fakes):
    """Each request waits for the next latency of the cycle (only lower bounds are asserted)."""
    fakes.set_fault("gemini", latencies=[0.2, 0.4])
    elapsed = []
    for _ in range(3):
        started = time.monotonic()
        assert call_gemini(fakes).status_code == 200
        elapsed.append(time.monotonic() - started)
    assert elapsed[0] >= 0.2 and elapsed[1] >= 0.4 and elapsed[2] >= 0.2


def test_stats_count_requests_per_path_but_not_control_calls(fakes):
    """Stats count provider requests per path, in any outcome, and leave /_fake calls out."""
    fakes.set_fault("d-id", mode="rate_limit")
    for _ in range(3):
        call_did(fakes)
    stats = httpx.get(f"{fakes.base_url('d-id')}/_fake/stats").json()
    assert stats == {**stats, "requests": {"/talks": 3}, "mode": "rate_limit"}
    assert fakes.stats("d-id")["requests"] == {"/talks": 3}


def test_fault_endpoint_sets_and_validates(fakes):
    """POST /_fake/fault returns the new settings, rejects an unknown mode with 422, and reset restores ok."""
    url = f"{fakes.base_url('stability')}/_fake"
    changed = httpx.post(f"{url}/fault", json={"mode": "quota", "latencies": [0.01, 0.02], "hang_seconds": 5})
    assert changed.status_code == 200
    assert changed.json() == {"mode": "quota", "latencies": [0.01, 0.02], "hang_seconds": 5.0}
    assert httpx.post(f"{url}/fault", json={"mode": "meltdown"}).status_code == 422
    assert httpx.post(f"{url}/reset").json()["mode"] == "ok"
    assert call_stability(fakes).status_code == 200


# The real Google client against the YouTube fake ------------------------------------------------------------------


def build_youtube(fakes: FakeProviders):
    from google.oauth2.credentials import Credentials
    from googleapiclient.discovery import build

    base = fakes.base_url("youtube")
    credentials = Credentials(
        token=None,
        refresh_token=REFRESH_TOKEN,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        token_uri=f"{base}/token",
    )
    return build("youtube", "v3", credentials=credentials, client_options={"api_endpoint": base}, static_discovery=True)


def insert_video(youtube, path, resumable: bool):
    from googleapiclient.http import MediaFileUpload

    body = {
        "snippet": {"title": "Client upload", "description": "via googleapiclient"},
        "status": {"privacyStatus": "private"},
    }
    media = MediaFileUpload(str(path), mimetype="video/mp4", resumable=resumable, chunksize=4096 if resumable else -1)
    return youtube.videos().insert(part="snippet,status", body=body, media_body=media).execute()


@pytest.fixture
def video_file(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"frame" * 2000)
    return path


@pytest.mark.parametrize("resumable", [False, True], ids=["multipart", "resumable"])
def test_googleapiclient_upload_succeeds(fakes, trusted_httplib2, video_file, resumable):
    """The real googleapiclient refreshes its token and uploads (multipart or resumable in chunks) against the fake."""
    with build_youtube(fakes) as youtube:
        video = insert_video(youtube, video_file, resumable)
    assert video["kind"] == "youtube#video" and video["snippet"]["title"] == "Client upload"
    assert video["status"]["uploadStatus"] == "uploaded" and video["status"]["privacyStatus"] == "private"
    assert fakes.stats("youtube")["requests"]["/token"] == 1


def test_googleapiclient_quota_fault_raises_http_error(fakes, trusted_httplib2, video_file):
    """A quota fault surfaces in googleapiclient as HttpError 403 with reason quotaExceeded."""
    from googleapiclient.errors import HttpError

    fakes.set_fault("youtube", mode="quota")
    with build_youtube(fakes) as youtube, pytest.raises(HttpError) as caught:
        insert_video(youtube, video_file, resumable=False)
    assert caught.value.resp.status == 403
    assert caught.value.error_details[0]["reason"] == "quotaExceeded"
    assert caught.value.error_details[0]["domain"] == "youtube.quota"


def test_google_auth_refresh_fails_with_invalid_grant(fakes, trusted_httplib2, video_file):
    """In invalid_key mode the client's token refresh fails with google-auth's RefreshError (invalid_grant)."""
    from google.auth.exceptions import RefreshError

    fakes.set_fault("youtube", mode="invalid_key")
    with build_youtube(fakes) as youtube, pytest.raises(RefreshError, match="invalid_grant"):
        insert_video(youtube, video_file, resumable=False)
