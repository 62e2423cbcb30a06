"""Instruments httpx, httpx2 and requests (HttpClientsInstrumentor): upstream spans, provider calls tracked within.

A request to a known provider host gets the provider's attributes, metrics and error classification, and the
credentials it carries are learned by the secret scrubber. The three clients share one path (`ProviderRequests`);
each differs only in how its request's host, credentials and error body are read. Each client is wrapped at the
call its upstream instrumentation runs inside its span (httpx/httpx2 transports, requests' adapter), so a bare
request to a provider adds its attributes to the upstream HTTP span instead of a second span; inside a
``track_external_call`` scope for the same provider, the request is one attempt of that logical call.

Not the upstream request/response hooks: no hook runs when the request raises (a timeout would go uncounted),
and an httpx response hook gets the unread stream, whose error body it cannot read without taking it from the
caller.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Awaitable, Callable, Collection, Generator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]  # untyped upstream module
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.trace import SpanKind
from wrapt import wrap_function_wrapper

from otel_monitor.instrument.classification import (
    MAX_CLASSIFIED_BODY,
    Classification,
    classify_exception,
    classify_response,
)
from otel_monitor.instrument.error_codes import ProviderFailure
from otel_monitor.instrument.external_calls import ExternalCall, ExternalCallRecorder, current_external_call
from otel_monitor.instrument.genai import gemini_usage, gen_ai_request
from otel_monitor.instrument.metrics import Outcome
from otel_monitor.instrument.providers import ProviderRegistry
from otel_monitor.redaction.scrubber import SecretScrubber, request_credentials

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

    from otel_monitor.instrument.telemetry import Telemetry

__all__ = [
    "HttpClientsInstrumentor",
    "ProviderRequests",
    "instrument_http_clients",
    "uninstrument_http_clients",
    "instrument_provider_calls",
    "uninstrument_provider_calls",
]

_log = logging.getLogger(__name__)
# The httpx-compatible modules whose transports are wrapped, when installed (google-genai sends over httpx2).
_HTTPX_MODULES = ("httpx", "httpx2")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


class ProviderRequests:
    """The one path of every client: which provider call a request is an attempt of, and what it answered."""

    def __init__(
        self, recorder: ExternalCallRecorder, registry: ProviderRegistry, scrubber: SecretScrubber | None = None
    ) -> None:
        self._recorder = recorder
        self._registry = registry
        self._scrubber = scrubber

    def call_for(
        self,
        host: str | None,
        port: int | None,
        method: str,
        query: str,
        header: Callable[[str], str | None],
        path: str = "",
    ) -> tuple[ExternalCall | None, bool]:
        """(the call this request is an attempt of, whether the caller opens it); (None, False) if no provider.
        ``query`` is the raw query string, ``header(name)`` a case-insensitive header getter, ``path`` the URL's
        path (a Gemini model and method make the call a GenAI operation)."""
        call, opens = self._call_for(host, port, method, query, header)
        if call is not None and host:
            try:
                gen_ai = gen_ai_request(call.service, host, port, path)
                if gen_ai is not None:
                    call.record_gen_ai_request(gen_ai)
            except Exception:
                _log.debug("could not read a GenAI request", exc_info=True)
        return call, opens

    def _call_for(
        self, host: str | None, port: int | None, method: str, query: str, header: Callable[[str], str | None]
    ) -> tuple[ExternalCall | None, bool]:
        try:
            provider = self._registry.for_host(host, port) if host else None
        except Exception:
            return None, False
        if provider is None:
            return None, False
        if self._scrubber is not None:
            try:
                for credential in request_credentials(query, header):
                    self._scrubber.learn(credential)
            except Exception:  # a header no rule foresaw must not reach the host
                _log.debug("could not learn request credentials", exc_info=True)
        outer = current_external_call()
        if outer is not None and outer.service == provider.key:
            return outer, False
        span = trace.get_current_span()
        if getattr(span, "kind", None) is SpanKind.CLIENT and span.is_recording():
            return self._recorder.adopt(span, provider.key, method), True  # the upstream HTTP span
        return self._recorder.track(provider.key, method), True

    @staticmethod
    def answered(call: ExternalCall, status_code: int, body: bytes | None) -> None:
        try:
            classified = classify_response(call.service, status_code, body)
        except Exception:  # a body no rule foresaw must not reach the host
            _log.debug("could not classify a response", exc_info=True)
            classified = Classification(Outcome.ERROR, ProviderFailure.UNKNOWN_ERROR)
        call.record_attempt(classified)
        if body and not classified.failed and call.reads_gen_ai_answer:
            try:
                usage = gemini_usage(body)
                if usage is not None:
                    call.record_tokens(usage)
            except Exception:
                _log.debug("could not read token usage", exc_info=True)

    @staticmethod
    def raised(call: ExternalCall, exc: BaseException) -> None:
        try:
            classified = classify_exception(call.service, exc)
        except Exception:
            _log.debug("could not classify an exception", exc_info=True)
            classified = Classification(Outcome.ERROR, ProviderFailure.UNKNOWN_ERROR)
        call.record_attempt(classified)


def _reads_error_body(status_code: int, headers: Mapping[str, str]) -> bool:
    """Whether to read the error body: not when it announces more than the classifier reads (error JSON is
    small; a chunked one, with no length, is read)."""
    if status_code < 400:
        return False
    length = headers.get("content-length")
    return length is None or not length.isdigit() or int(length) <= MAX_CLASSIFIED_BODY


def _send(
    requests: ProviderRequests,
    call: ExternalCall | None,
    opens: bool,
    send: Callable[[], Any],
    read_body: Callable[[Any], bytes],
) -> Any:
    """Sends one request with ``send()``: as an attempt of ``call`` (opened here when this request starts it), its
    error body read with ``read_body`` for the classifier; any other request untouched."""
    if call is None:
        return send()
    if opens:
        with call:
            return _attempt(requests, call, send, read_body)
    return _attempt(requests, call, send, read_body)


async def _send_async(
    requests: ProviderRequests,
    call: ExternalCall | None,
    opens: bool,
    send: Callable[[], Awaitable[Any]],
    read_body: Callable[[Any], Awaitable[bytes]],
) -> Any:
    """``_send`` for an async client."""
    if call is None:
        return await send()
    if opens:
        async with call:
            return await _attempt_async(requests, call, send, read_body)
    return await _attempt_async(requests, call, send, read_body)


def _attempt_steps(requests: ProviderRequests, call: ExternalCall) -> Generator[Any, Any, Any]:
    """The one path of an attempt, driven alike by a sync and an async client (they differ only in how they send
    and read): it takes the response (an exception thrown in is classified and re-raised), asks for the error body
    when it is worth reading (None when it could not be read), classifies the answer and returns the response."""
    try:
        response = yield
    except Exception as exc:
        requests.raised(call, exc)
        raise
    status_code = response.status_code
    # an error body names the failure; a GenAI answer (not streamed) tells its tokens, and its caller reads it whole
    wanted = _reads_error_body(status_code, response.headers) or (status_code < 400 and call.reads_gen_ai_answer)
    try:
        body = (yield response) if wanted else None
    except Exception as exc:  # a GenAI answer failed to arrive whole, as the caller's own read would have
        requests.raised(call, exc)
        raise
    requests.answered(call, status_code, body)
    return response


def _attempt(
    requests: ProviderRequests, call: ExternalCall, send: Callable[[], Any], read_body: Callable[[Any], bytes]
) -> Any:
    steps = _attempt_steps(requests, call)
    next(steps)
    try:
        response = send()
    except Exception as exc:
        steps.throw(exc)  # classified, and raised again from here
    try:
        wanted = steps.send(response)
        body: bytes | None
        try:
            body = read_body(wanted)
        except Exception as exc:
            _unread(steps, wanted, exc)
            body = None
        steps.send(body)
    except StopIteration as done:
        return done.value


async def _attempt_async(
    requests: ProviderRequests,
    call: ExternalCall,
    send: Callable[[], Awaitable[Any]],
    read_body: Callable[[Any], Awaitable[bytes]],
) -> Any:
    steps = _attempt_steps(requests, call)
    next(steps)
    try:
        response = await send()
    except Exception as exc:
        steps.throw(exc)  # classified, and raised again from here
    try:
        wanted = steps.send(response)
        body: bytes | None
        try:
            body = await read_body(wanted)
        except Exception as exc:
            _unread(steps, wanted, exc)
            body = None
        steps.send(body)
    except StopIteration as done:
        return done.value


def _unread(steps: Generator[Any, Any, Any], response: Any, exc: Exception) -> None:
    """A body that could not be read: an error body is only the classifier's loss; a successful GenAI answer is
    the caller's, who gets the exception its own read would have raised (classified, and raised from here)."""
    if response.status_code < 400:
        steps.throw(exc)
    _log.debug("could not read error body", exc_info=True)


# -- httpx and httpx2: their transports ---------------------------------------------------------------------------
class _HttpxTransportWrapper:
    """wrapt wrapper of ``HTTPTransport.handle_request`` / ``AsyncHTTPTransport.handle_async_request``."""

    def __init__(self, requests: ProviderRequests) -> None:
        self._requests = requests

    def _call_for(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[ExternalCall | None, bool]:
        try:
            request = args[0] if args else kwargs["request"]
            url = request.url
            query = url.query.decode("ascii", "replace") if isinstance(url.query, bytes) else str(url.query or "")
            return self._requests.call_for(url.host, url.port, request.method, query, request.headers.get, url.path)
        except Exception:
            _log.debug("could not read a request", exc_info=True)
            return None, False

    def sync(self, wrapped, instance, args, kwargs):
        # error bodies are small and name the failure (invalid key vs quota); read, they stay for the caller
        return _send(
            self._requests,
            *self._call_for(args, kwargs),
            lambda: wrapped(*args, **kwargs),
            lambda response: response.read(),
        )

    async def asynchronous(self, wrapped, instance, args, kwargs):
        return await _send_async(
            self._requests,
            *self._call_for(args, kwargs),
            lambda: wrapped(*args, **kwargs),
            lambda response: response.aread(),
        )


# -- requests: its adapter ----------------------------------------------------------------------------------------
class _RequestsAdapterWrapper:
    """wrapt wrapper of ``requests.adapters.HTTPAdapter.send`` (run inside the upstream ``Session.send`` span)."""

    def __init__(self, requests: ProviderRequests) -> None:
        self._requests = requests

    def __call__(self, wrapped, instance, args, kwargs):
        try:
            request = args[0] if args else kwargs["request"]
            url = urlsplit(request.url)
            call, opens = self._requests.call_for(
                url.hostname, url.port, request.method, url.query, request.headers.get, url.path
            )
        except Exception:
            _log.debug("could not read a request", exc_info=True)
            call, opens = None, False
        # the content is kept by the response: the caller reads it again, streamed or not
        return _send(self._requests, call, opens, lambda: wrapped(*args, **kwargs), lambda response: response.content)


# -- installing -----------------------------------------------------------------------------------------------------
_wrapped: list[tuple[object, str]] = []


def instrument_provider_calls(
    recorder: ExternalCallRecorder, registry: ProviderRegistry, scrubber: SecretScrubber | None = None
) -> None:
    """Wraps the transports of httpx and httpx2 and requests' adapter, those installed (idempotent). Install it
    before the upstream instrumentations, so their spans are current when these run (``instrument_http_clients``
    does); ``scrubber`` learns the credentials of provider requests."""
    uninstrument_provider_calls()
    provider_requests = ProviderRequests(recorder, registry, scrubber)
    transports = _HttpxTransportWrapper(provider_requests)
    for name in _HTTPX_MODULES:
        if not _installed(name):
            continue
        module = importlib.import_module(name)
        wrap_function_wrapper(module, "HTTPTransport.handle_request", transports.sync)
        wrap_function_wrapper(module, "AsyncHTTPTransport.handle_async_request", transports.asynchronous)
        _wrapped.extend([(module.HTTPTransport, "handle_request"), (module.AsyncHTTPTransport, "handle_async_request")])
    if _installed("requests"):
        adapters = importlib.import_module("requests.adapters")
        wrap_function_wrapper(adapters, "HTTPAdapter.send", _RequestsAdapterWrapper(provider_requests))
        _wrapped.append((adapters.HTTPAdapter, "send"))


def uninstrument_provider_calls() -> None:
    while _wrapped:
        owner, name = _wrapped.pop()
        unwrap(owner, name)


def _upstream_instrumentors() -> list[Any]:
    """The upstream instrumentors of the clients installed here (their base class is untyped upstream)."""
    from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor, HTTPXClientInstrumentor

    found = [HTTPXClientInstrumentor()]
    if _installed("httpx2"):
        found.append(HTTPX2ClientInstrumentor())
    if _installed("requests") and _installed("opentelemetry.instrumentation.requests"):
        from opentelemetry.instrumentation.requests import RequestsInstrumentor

        found.append(RequestsInstrumentor())
    return found


def _keep_provider_error_type(span: Span, _request: object, _response: object) -> None:
    """Upstream's response hook: in the stable HTTP conventions (which setup_telemetry opts into) the upstream
    instrumentation sets ``error.type`` to the status code after the provider wrapper classified the call; the
    provider's error code (e.g. GEMINI_INVALID_API_KEY) is the more telling value and is put back."""
    attributes = getattr(span, "attributes", None) or {}
    code = attributes.get("external_api.error_code")
    if code and attributes.get("error.type") != code:
        span.set_attribute("error.type", code)


async def _keep_provider_error_type_async(span: Span, request: object, response: object) -> None:
    _keep_provider_error_type(span, request, response)


def instrument_upstream_clients(tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None) -> None:
    """The upstream instrumentations of the installed clients, with the hook that keeps the provider's error type."""
    for instrumentor in _upstream_instrumentors():
        hooks: dict[str, Callable[[Span, object, object], object]] = {"response_hook": _keep_provider_error_type}
        if type(instrumentor).__name__ != "RequestsInstrumentor":  # requests has no async hook
            hooks["async_response_hook"] = _keep_provider_error_type_async
        instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, **hooks)


def _remove_all() -> None:
    """Removes both kinds of wrapper, the outer (upstream) ones first."""
    for instrumentor in _upstream_instrumentors():
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    uninstrument_provider_calls()


class HttpClientsInstrumentor(BaseInstrumentor):
    """httpx, httpx2 and requests, those installed, instrumented as the contrib packages instrument a library:
    ``HttpClientsInstrumentor().instrument(telemetry=...)`` puts the provider wrapper first and the upstream
    instrumentations on top (so the provider code runs inside the upstream HTTP span); ``uninstrument()`` removes
    both. A process has one instance, as every ``BaseInstrumentor``."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()  # each client is instrumented when installed; none is required

    def _instrument(self, **kwargs: Any) -> None:
        telemetry: Telemetry = kwargs["telemetry"]
        instrument_provider_calls(telemetry.recorder, telemetry.registry, telemetry.scrubber)
        instrument_upstream_clients(telemetry.tracer_provider, telemetry.meter_provider)

    def _uninstrument(self, **kwargs: Any) -> None:
        _remove_all()


def instrument_http_clients(telemetry: Telemetry) -> None:
    """Instruments the HTTP clients for ``telemetry``, replacing an earlier instrumentation of another one."""
    uninstrument_http_clients()
    HttpClientsInstrumentor().instrument(telemetry=telemetry)


def uninstrument_http_clients() -> None:
    """Removes every wrapper, including those installed piecemeal (``instrument_provider_calls``,
    ``instrument_upstream_clients``)."""
    instrumentor = HttpClientsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    else:
        _remove_all()
