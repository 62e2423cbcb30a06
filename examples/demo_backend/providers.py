"""The backend's clients of the four paid providers: httpx for three, google-api-python-client for YouTube."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from examples.demo_backend.config import DemoSettings
from otel_monitor import track_external_call

__all__ = ["ProviderClients", "SCRIPT_MODEL", "script_request"]

_RETRYABLE = {429, 500, 502, 503, 504}
SCRIPT_MODEL = "gemini-2.5-flash"


def script_request(topic: str) -> dict:
    """The generateContent body asking Gemini for a project's script."""
    return {"contents": [{"role": "user", "parts": [{"text": f"Write a 30 second video script about {topic}"}]}]}


class ProviderClients:
    """One instance per worker process; every call is tracked as one logical call, its retries included."""

    def __init__(self, settings: DemoSettings) -> None:
        self.settings = settings
        self.http = httpx.Client(timeout=settings.request_timeout_seconds)

    def _post_with_retries(self, url: str, **kwargs) -> httpx.Response:
        """POSTs, retrying once on 429/5xx/timeouts; each attempt is seen by the tracked call."""
        for attempt in range(self.settings.max_retries + 1):
            try:
                response = self.http.post(url, **kwargs)
            except httpx.TimeoutException:
                if attempt == self.settings.max_retries:
                    raise
                continue
            if response.status_code not in _RETRYABLE or attempt == self.settings.max_retries:
                response.raise_for_status()
                return response
        raise AssertionError("unreachable")

    def generate_script(self, topic: str) -> str:
        s = self.settings
        url = f"{s.gemini_url}/v1beta/models/{SCRIPT_MODEL}:generateContent"
        body = script_request(topic)
        with track_external_call("gemini", "generateContent"):
            if s.gemini_key_in_query:
                response = self._post_with_retries(url, params={"key": s.gemini_api_key}, json=body)
            else:
                response = self._post_with_retries(url, headers={"x-goog-api-key": s.gemini_api_key}, json=body)
            return response.json()["candidates"][0]["content"]["parts"][0]["text"]

    def generate_images(self, prompt: str) -> list[bytes]:
        s = self.settings
        url = f"{s.stability_url}/v1/generation/stable-diffusion-xl-1024-v1-0/text-to-image"
        requested = s.images_per_project
        with track_external_call("stability", "text-to-image") as call:
            response = self._post_with_retries(
                url,
                headers={"Authorization": f"Bearer {s.stability_api_key}", "Accept": "application/json"},
                json={"text_prompts": [{"text": prompt[:500]}], "samples": requested},
            )
            artifacts = response.json().get("artifacts", [])
            images = [a["base64"].encode() for a in artifacts if a.get("finishReason") == "SUCCESS"]
            call.mark_partial(len(images), requested)
            return images

    def create_avatar_video(self, script: str, poll_interval: float = 0.05, max_polls: int = 100) -> str:
        s = self.settings
        auth = {"Authorization": f"Basic {s.did_api_key}"}
        with track_external_call("d-id", "talks.create"):
            response = self._post_with_retries(
                f"{s.did_url}/talks",
                headers=auth,
                json={
                    "source_url": "https://example.com/presenter.jpg",
                    "script": {"type": "text", "input": script[:1000]},
                },
            )
            talk_id = response.json()["id"]
            for _ in range(max_polls):
                status = self.http.get(f"{s.did_url}/talks/{talk_id}", headers=auth)
                status.raise_for_status()
                talk = status.json()
                if talk["status"] == "done":
                    return talk["result_url"]
                if talk["status"] == "error":
                    raise RuntimeError(f"D-ID talk {talk_id} failed")
                time.sleep(poll_interval)
            raise TimeoutError(f"D-ID talk {talk_id} not done after {max_polls} polls")

    def upload_video(self, path: Path, title: str) -> str:
        """Uploads with google-api-python-client (httplib2: not covered by httpx instrumentation)."""
        import google.oauth2.credentials
        import google_auth_httplib2
        import httplib2
        from googleapiclient.discovery import build
        from googleapiclient.http import MediaFileUpload

        s = self.settings
        credentials = google.oauth2.credentials.Credentials(
            token=None,
            refresh_token=s.youtube_refresh_token,
            client_id=s.youtube_client_id,
            client_secret=s.youtube_client_secret,
            token_uri=s.youtube_token_url,
        )
        with track_external_call("youtube", "videos.insert") as call:
            with call.token_refresh():
                credentials.refresh(google_auth_httplib2.Request(httplib2.Http(timeout=s.request_timeout_seconds)))
            youtube = build(
                "youtube",
                "v3",
                credentials=credentials,
                static_discovery=True,
                client_options={"api_endpoint": s.youtube_url},
                cache_discovery=False,
            )
            media = MediaFileUpload(str(path), mimetype="video/mp4", resumable=False)
            video = (
                youtube.videos()
                .insert(
                    part="snippet,status",
                    body={"snippet": {"title": title}, "status": {"privacyStatus": "private"}},
                    media_body=media,
                )
                .execute()
            )
            return video["id"]
