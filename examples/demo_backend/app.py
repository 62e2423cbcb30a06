"""The demo's FastAPI app: creates video projects and hands them to the Celery pipeline."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from opentelemetry import trace
from pydantic import BaseModel, Field

from examples.demo_backend.tasks import PIPELINE_STEPS, generate_video, new_project_id
from otel_monitor import StructuredLogger, setup_telemetry
from otel_monitor.instrument.celery import instrument_celery
from otel_monitor.instrument.fastapi import instrument_fastapi

__all__ = ["create_app"]

_log = StructuredLogger("video_backend.api")


class ProjectRequest(BaseModel):
    topic: str = Field(min_length=1, max_length=200)
    user_id: str = Field("anonymous", max_length=64)
    steps: list[str] = Field(default_factory=lambda: list(PIPELINE_STEPS))


class ProjectAccepted(BaseModel):
    project_id: str
    task_id: str
    trace_id: str


def create_app() -> FastAPI:
    telemetry = setup_telemetry()
    instrument_celery()  # producer side: task messages carry this request's trace context
    app = FastAPI(title="video backend (otel-monitor demo)")
    instrument_fastapi(app, telemetry)

    @app.post("/api/v1/projects", status_code=202, response_model=ProjectAccepted)
    def create_project(request: ProjectRequest) -> ProjectAccepted:
        unknown = sorted(set(request.steps) - set(PIPELINE_STEPS))
        if unknown:
            from fastapi import HTTPException

            raise HTTPException(
                422, detail={"error": "unknown steps", "unknown": unknown, "known": list(PIPELINE_STEPS)}
            )
        project_id = new_project_id()
        task = generate_video.delay(project_id, request.topic, request.user_id, request.steps)
        trace_id = trace.format_trace_id(trace.get_current_span().get_span_context().trace_id)
        _log.info("Video project created", extra={"project_id": project_id, "task_id": task.id, "steps": request.steps})
        return ProjectAccepted(project_id=project_id, task_id=task.id, trace_id=trace_id)

    @app.get("/livez")
    def livez() -> dict:
        return {"status": "ok"}

    logging.getLogger("video_backend.api").info("API ready")
    return app
