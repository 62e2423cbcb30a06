"""Each call priced by the configured table (span, counter), and each video project's cost summed over its calls."""

from __future__ import annotations

import logging

import pytest
import redis
from pydantic import ValidationError

from otel_monitor.instrument.business_metrics import ActiveUsers, BusinessMetrics
from otel_monitor.instrument.costs import Price, PriceTable, ProjectCosts, project_scope
from otel_monitor.instrument.error_codes import ProviderFailure
from otel_monitor.instrument.external_calls import ExternalCallRecorder
from otel_monitor.instrument.genai import GenAiRequest, TokenUsage
from otel_monitor.instrument.settings import TelemetrySettings
from otel_monitor.testing import in_memory_telemetry

TABLE = {
    "gemini": {
        "gemini-2.5-flash": {"input_per_million_tokens": 2.0, "output_per_million_tokens": 8.0},
        "*": {"input_per_million_tokens": 1.0},
    },
    "stability": {"*": {"per_credit": 0.01, "credits_per_image": 3}},
    "d-id": {"talks.create": {"per_credit": 0.5, "credits_per_call": 2}},
    "youtube": {"*": {}},
}
FLASH = GenAiRequest("generate_content", "gemini-2.5-flash", False, "127.0.0.1", 1)


@pytest.mark.parametrize(
    ("service", "operation", "model", "tokens", "images", "succeeded", "expected", "priced_as"),
    [
        ("gemini", "generateContent", "gemini-2.5-flash", TokenUsage(1000, 500), 0, True, 0.006, "gemini-2.5-flash"),
        ("gemini", "generateContent", "gemini-9-ultra", TokenUsage(1000, 500), 0, True, 0.001, "gemini-9-ultra"),
        ("gemini", "generateContent", "gemini-2.5-flash", None, 0, False, 0.0, "gemini-2.5-flash"),
        ("stability", "text-to-image", None, None, 3, True, 0.09, "text-to-image"),
        ("stability", "text-to-image", None, None, 1, True, 0.03, "text-to-image"),
        ("d-id", "talks.create", None, None, 0, True, 1.0, "talks.create"),
        ("d-id", "talks.create", None, None, 0, False, 0.0, "talks.create"),
        ("d-id", "credits", None, None, 0, True, 0.0, "credits"),
        ("youtube", "videos.insert", None, None, 0, True, 0.0, "videos.insert"),
    ],
)
def test_call_cost_by_the_table(service, operation, model, tokens, images, succeeded, expected, priced_as):
    """Tokens by model ("*" for others), images by credits, D-ID credits only for a talk that succeeded."""
    cost = PriceTable(TABLE).cost(service, operation, model=model, tokens=tokens, images=images, succeeded=succeeded)
    assert cost is not None
    assert cost.amount == pytest.approx(expected, abs=1e-12)
    assert cost.priced_as == priced_as


def test_provider_without_prices_is_not_priced():
    """A provider absent from the table gets no cost at all (not a cost of 0)."""
    assert PriceTable({"gemini": {}}).cost("youtube", "videos.insert") is None


@pytest.fixture
def captured():
    return in_memory_telemetry()


def recorder_of(captured, project_costs: ProjectCosts) -> ExternalCallRecorder:
    return ExternalCallRecorder(
        captured.tracer_provider, captured.meter_provider, prices=PriceTable(TABLE), project_costs=project_costs
    )


def test_calls_carry_their_cost_and_add_up_to_their_project(captured):
    """A project's Gemini, Stability and D-ID calls: cost on each span, the counter by service and model, and the
    project's cost their sum; a call outside the project is not in it."""
    costs = ProjectCosts()
    recorder = recorder_of(captured, costs)
    with project_scope("p1"):
        with recorder.track("gemini", "generateContent") as call:
            call.record_gen_ai_request(FLASH)
            call.record_tokens(TokenUsage(1000, 500))
        with recorder.track("stability", "text-to-image") as call:
            call.mark_partial(2, 3)
        with recorder.track("d-id", "talks.create") as call:
            call.fail(ProviderFailure.SERVER_ERROR)
    with recorder.track("d-id", "talks.create"):
        pass

    spans = {span.name: span.attributes for span in captured.spans()}
    assert spans["generate_content gemini-2.5-flash" if recorder.gen_ai_latest else "gemini generateContent"][
        "cost.amount"
    ] == pytest.approx(0.006)
    stability = spans["stability text-to-image"]
    assert (stability["cost.amount"], stability["cost.currency"], stability["cost.source"]) == (
        pytest.approx(0.06),
        "USD",
        "local",
    )
    counted = captured.points("external_api.cost")
    assert counted == {
        (("model", "gemini-2.5-flash"), ("service", "gemini")): pytest.approx(0.006),
        (("model", "text-to-image"), ("service", "stability")): pytest.approx(0.06),
        (("model", "talks.create"), ("service", "d-id")): pytest.approx(1.0),
    }
    assert costs.take("p1") == pytest.approx(0.066)
    assert costs.take("p1") == 0.0  # forgotten once read


def test_cost_counter_is_cumulative_and_shared_by_the_recorders_of_a_provider(captured):
    """The cost counter sums in the process: every recorder of one meter provider adds to the one series the SDK
    exports (it keeps the first callback of a name only), cumulatively across collections; another provider's
    sums are its own."""
    first, second = recorder_of(captured, ProjectCosts()), recorder_of(captured, ProjectCosts())
    elsewhere = in_memory_telemetry()
    other = recorder_of(elsewhere, ProjectCosts())
    key = (("model", "talks.create"), ("service", "d-id"))
    for recorder, collected in ((first, 1.0), (second, 2.0), (first, 3.0)):
        with recorder.track("d-id", "talks.create"):
            pass
        assert captured.points("external_api.cost") == {key: pytest.approx(collected)}
    with other.track("d-id", "talks.create"):
        pass
    assert elsewhere.points("external_api.cost") == {key: pytest.approx(1.0)}
    assert captured.points("external_api.cost") == {key: pytest.approx(3.0)}


def test_recorders_of_the_global_provider_share_its_cost_counter():
    """Recorders given no provider (the fallback of ``track_external_call``) count into one cost counter."""
    assert ExternalCallRecorder().cost is ExternalCallRecorder().cost


def test_finished_project_records_its_cost_histogram_and_log_line(captured, caplog):
    """track_project: the cost of the calls within it, as the histogram by outcome and on the finished line."""
    costs = ProjectCosts()
    recorder = recorder_of(captured, costs)
    business = BusinessMetrics(captured.meter_provider, ActiveUsers(), project_costs=costs)
    caplog.set_level(logging.INFO, "otel_monitor.business")
    with business.track_project("p2"):
        with recorder.track("d-id", "talks.create"):
            pass
        with recorder.track("stability", "text-to-image"):
            pass
    point = next(point for point in captured.collect() if point.name == "video_project.cost")
    assert (point.labels, point.value, point.data.sum) == ({"outcome": "success"}, 1, pytest.approx(1.03))
    (finished,) = [r for r in caplog.records if r.getMessage() == "Video project finished"]
    assert finished.cost_usd == pytest.approx(1.03)


def test_prices_from_the_environment(monkeypatch):
    """OTEL_MONITOR_PRICES (JSON) replaces the shipped table."""
    monkeypatch.setenv("OTEL_MONITOR_PRICES", '{"gemini": {"*": {"input_per_million_tokens": 4}}}')
    assert TelemetrySettings().prices == {"gemini": {"*": Price(input_per_million_tokens=4)}}


@pytest.mark.parametrize(
    ("prices", "named"),
    [
        ('{"openai": {"*": {}}}', "openai"),
        ('{"gemini": {"*": {"input_per_token": 1}}}', "input_per_token"),
        ('{"gemini": {"*": {"input_per_million_tokens": -1}}}', "input_per_million_tokens"),
    ],
)
def test_bad_prices_are_refused_naming_the_key(monkeypatch, prices, named):
    """An unknown provider, an unknown price or a negative one fails at load, naming it."""
    monkeypatch.setenv("OTEL_MONITOR_PRICES", prices)
    with pytest.raises(ValidationError, match=named):
        TelemetrySettings()


def test_project_cost_unknown_when_redis_does_not_answer():
    """A Redis that refuses the connection: the project's cost is unknown (None), not 0, and nothing raises."""
    costs = ProjectCosts(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1))
    costs.add("p3", 1.0)
    assert costs.take("p3", timeout=0.5) is None
