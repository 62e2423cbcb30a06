"""Settings of the demo backend (prefix DEMO_): where the providers are, their credentials, the broker."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DemoSettings"]


class DemoSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="forbid")

    redis_url: str = "redis://127.0.0.1:6379/0"
    gemini_url: str = "https://generativelanguage.googleapis.com"
    stability_url: str = "https://api.stability.ai"
    did_url: str = "https://api.d-id.com"
    youtube_url: str = "https://youtube.googleapis.com"
    youtube_token_url: str = "https://oauth2.googleapis.com/token"
    gemini_api_key: str = ""
    stability_api_key: str = ""
    did_api_key: str = ""
    youtube_client_id: str = ""
    youtube_client_secret: str = ""
    youtube_refresh_token: str = ""
    # Gemini's key travels as ?key= or as the x-goog-api-key header; the demo uses both.
    gemini_key_in_query: bool = False
    request_timeout_seconds: float = 5.0
    max_retries: int = 1
    images_per_project: int = 5
    work_dir: str = "/tmp/otel-monitor-demo"
