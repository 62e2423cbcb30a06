"""Per-model Gemini counts from two backend processes on a real Redis, shown by the quota endpoint per model."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import uuid

import pytest

from otel_monitor.monitor.quota.config import QuotaConfig
from otel_monitor.monitor.quota.service import QuotaService
from tests.support.paths import REPO_ROOT
from tests.support.stacks import private_stack

pytestmark = pytest.mark.stack

# One backend process: Gemini calls through the recorder, each with the tokens its response reported.
BACKEND = """
import sys, redis
from otel_monitor.instrument.external_calls import ExternalCallRecorder
from otel_monitor.instrument.genai import TokenUsage, gemini_request
from otel_monitor.instrument.usage_counter import UsageCounter

url, prefix, *calls = sys.argv[1:]
usage = UsageCounter(redis.Redis.from_url(url), prefix=prefix)
recorder = ExternalCallRecorder(usage=usage)
for call in calls:
    model, tokens = call.split("=")
    with recorder.track("gemini", "generate_content") as tracked:
        tracked.record_gen_ai_request(gemini_request("gemini.test", 443, f"/v1beta/models/{model}:generateContent"))
        tracked.record_tokens(TokenUsage(input=int(tokens), output=5))
usage.flush()
"""


def _run_backend(url: str, prefix: str, *calls: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, "-c", BACKEND, url, prefix, *calls], check=True, env=env, timeout=60)


@pytest.mark.asyncio
async def test_two_processes_count_per_model():
    """Requests and input tokens of both processes add up per model and limit; the default answer has no models."""
    prefix = f"test:{uuid.uuid4().hex}"
    with private_stack("otel-monitor-model-limits-", "redis") as stack:
        # The per-minute counts are the current minute's: start well inside one, so both processes share it.
        if dt.datetime.now(dt.UTC).second >= 45:
            time.sleep(61 - dt.datetime.now(dt.UTC).second)
        _run_backend(stack.redis_url, prefix, "gemini-2.0-flash=100", "gemini-2.0-flash=100", "gemini-2.0-flash=100")
        _run_backend(stack.redis_url, prefix, "gemini-2.0-flash=50", "gemini-2.0-flash=50", "gemini-2.5-pro=900")
        config = QuotaConfig(redis_url=stack.redis_url, usage_prefix=prefix, store_url="sqlite://", poll=False)
        service = QuotaService.from_config(config)
        try:
            assert "models" not in (await service.report())["quotas"]["gemini"]
            models = (await service.report("gemini"))["quotas"]["gemini"]["models"]
        finally:
            await service.stop()
    flash = models["gemini-2.0-flash"]
    assert {limit: (entry["used"], entry["total"]) for limit, entry in flash.items()} == {
        "per-minute requests": (5, 15),
        "per-minute input tokens": (400, 1_000_000),
        "requests per day": (5, 1500),
    }
    pro = models["gemini-2.5-pro"]
    assert {limit: (entry["used"], entry["total"]) for limit, entry in pro.items()} == {
        "per-minute requests": (1, None),
        "per-minute input tokens": (900, None),
        "requests per day": (1, None),
    }
    assert models["gemini-2.0-flash-lite"]["requests per day"]["used"] == 0
