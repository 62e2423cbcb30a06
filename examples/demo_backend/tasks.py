"""The demo's Celery app and its video pipeline task: script, images, avatar video, render, upload."""

from __future__ import annotations

import logging
import subprocess
import uuid
from pathlib import Path

from celery import Celery
from opentelemetry import trace

from examples.demo_backend.config import DemoSettings
from examples.demo_backend.providers import ProviderClients
from otel_monitor import get_telemetry, log_operation
from otel_monitor.instrument.celery import instrument_celery

__all__ = ["celery_app", "generate_video", "PIPELINE_STEPS"]

PIPELINE_STEPS = ("gemini", "stability", "d-id", "youtube")

settings = DemoSettings()
celery_app = Celery("video_backend", broker=settings.redis_url, backend=settings.redis_url)
celery_app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True)
instrument_celery()

_log = logging.getLogger("video_backend.tasks")
_tracer = trace.get_tracer("video_backend")
_clients: ProviderClients | None = None


def _provider_clients() -> ProviderClients:
    global _clients
    if _clients is None:  # built in the worker process, after the fork
        _clients = ProviderClients(settings)
    return _clients


def _render(work_dir: Path, project_id: str) -> Path:
    """FFmpeg renders the video (here: one second of test pattern, the demo has no real assets)."""
    out = work_dir / f"{project_id}.mp4"
    with _tracer.start_as_current_span("ffmpeg render") as span:
        span.set_attribute("video.project_id", project_id)
        subprocess.run(
            [
                "ffmpeg",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc=duration=1:size=160x120:rate=10",
                "-pix_fmt",
                "yuv420p",
                str(out),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    return out


@celery_app.task(name="video.generate")
def generate_video(project_id: str, topic: str, user_id: str = "anonymous", steps: list[str] | None = None) -> dict:
    """Generates one project's video; ``steps`` picks which providers run (all four by default)."""
    steps = list(steps or PIPELINE_STEPS)
    clients = _provider_clients()
    telemetry = get_telemetry()
    business = telemetry.business if telemetry else None
    result: dict = {"project_id": project_id}
    work_dir = Path(settings.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    project = business.track_project(project_id) if business else _null_context()
    with project, log_operation(_log, "generate_video", project_id=project_id, steps=steps):
        if business:
            business.user_active(user_id)
        script = clients.generate_script(topic) if "gemini" in steps else f"A video about {topic}"
        if "stability" in steps:
            result["images"] = len(clients.generate_images(script))
        if "d-id" in steps:
            result["avatar_video"] = clients.create_avatar_video(script)
        if "youtube" in steps:
            video = _render(work_dir, project_id)
            result["youtube_id"] = clients.upload_video(video, title=topic)
            video.unlink(missing_ok=True)
    return result


class _null_context:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def new_project_id() -> str:
    return uuid.uuid4().hex[:12]
