"""Gives every httpx request to a known provider host the provider attributes, metrics and error classification.

It wraps httpx's transports *under* the upstream httpx instrumentation, so it runs inside the upstream HTTP
client span: a bare request to a provider adds its attributes to that span instead of a second one. Inside a
``track_external_call`` scope for the same provider, the request is one attempt of that logical call.
"""

from __future__ import annotations

import logging

import httpx
from opentelemetry import trace
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.trace import SpanKind
from wrapt import wrap_function_wrapper

from otel_monitor.classification import MAX_CLASSIFIED_BODY, Classification, classify_exception, classify_response
from otel_monitor.error_codes import ProviderFailure
from otel_monitor.external_calls import ExternalCall, ExternalCallRecorder, current_external_call
from otel_monitor.instruments import Outcome
from otel_monitor.services import ProviderRegistry

__all__ = ["instrument_provider_calls", "uninstrument_provider_calls"]

_log = logging.getLogger(__name__)


def _request_of(args, kwargs) -> httpx.Request:
    return args[0] if args else kwargs["request"]


def _body_of_error(response: httpx.Response) -> bytes | None:
    try:
        return response.content
    except httpx.ResponseNotRead:
        return None


def _small_body(response: httpx.Response) -> bool:
    """Whether to read the error body: not when it announces more than the classifier reads (error JSON is
    small; a chunked one, with no length, is read)."""
    length = response.headers.get("content-length")
    return length is None or not length.isdigit() or int(length) <= MAX_CLASSIFIED_BODY


def _classified(call: ExternalCall, status_code: int, body: bytes | None) -> Classification:
    try:
        return classify_response(call.service, status_code, body)
    except Exception:  # a body no rule foresaw must not reach the host
        _log.debug("could not classify a response", exc_info=True)
        return Classification(Outcome.ERROR, ProviderFailure.UNKNOWN_ERROR)


def _classified_exception(call: ExternalCall, exc: BaseException) -> Classification:
    try:
        return classify_exception(call.service, exc)
    except Exception:
        _log.debug("could not classify an exception", exc_info=True)
        return Classification(Outcome.ERROR, ProviderFailure.UNKNOWN_ERROR)


class _ProviderTransportWrapper:
    """wrapt wrapper of ``HTTPTransport.handle_request`` / ``AsyncHTTPTransport.handle_async_request``."""

    def __init__(self, recorder: ExternalCallRecorder, registry: ProviderRegistry) -> None:
        self._recorder = recorder
        self._registry = registry

    def _provider_call(self, request: httpx.Request) -> tuple[ExternalCall | None, bool]:
        """(the call this request is an attempt of, whether this wrapper opens it); (None, False) if no provider."""
        try:
            provider = self._registry.for_host(request.url.host, request.url.port)
        except Exception:
            return None, False
        if provider is None:
            return None, False
        outer = current_external_call()
        if outer is not None and outer.service == provider.key:
            return outer, False
        span = trace.get_current_span()
        if getattr(span, "kind", None) is SpanKind.CLIENT and span.is_recording():
            return self._recorder.adopt(span, provider.key, request.method), True  # the upstream HTTP span
        return self._recorder.track(provider.key, request.method), True

    def sync(self, wrapped, instance, args, kwargs):
        call, opens = self._provider_call(_request_of(args, kwargs))
        if call is None:
            return wrapped(*args, **kwargs)
        if opens:
            with call:
                return self._attempt(call, wrapped, args, kwargs)
        return self._attempt(call, wrapped, args, kwargs)

    def _attempt(self, call: ExternalCall, wrapped, args, kwargs):
        try:
            response = wrapped(*args, **kwargs)
        except Exception as exc:
            call.record_attempt(_classified_exception(call, exc))
            raise
        body = None
        if response.status_code >= 400 and _small_body(response):
            try:
                response.read()  # error bodies are small and name the failure (invalid key vs quota)
                body = _body_of_error(response)
            except Exception:
                _log.debug("could not read error body", exc_info=True)
        call.record_attempt(_classified(call, response.status_code, body))
        return response

    async def asynchronous(self, wrapped, instance, args, kwargs):
        call, opens = self._provider_call(_request_of(args, kwargs))
        if call is None:
            return await wrapped(*args, **kwargs)
        if opens:
            async with call:
                return await self._async_attempt(call, wrapped, args, kwargs)
        return await self._async_attempt(call, wrapped, args, kwargs)

    async def _async_attempt(self, call: ExternalCall, wrapped, args, kwargs):
        try:
            response = await wrapped(*args, **kwargs)
        except Exception as exc:
            call.record_attempt(_classified_exception(call, exc))
            raise
        body = None
        if response.status_code >= 400 and _small_body(response):
            try:
                await response.aread()
                body = _body_of_error(response)
            except Exception:
                _log.debug("could not read error body", exc_info=True)
        call.record_attempt(_classified(call, response.status_code, body))
        return response


_installed = False


def instrument_provider_calls(recorder: ExternalCallRecorder, registry: ProviderRegistry) -> None:
    """Wraps httpx's transports (idempotent). Install it before the upstream httpx instrumentation, so the
    upstream wrapper is the outer one and these calls run inside its span (``instrument_httpx`` does)."""
    global _installed
    if _installed:
        uninstrument_provider_calls()
    wrapper = _ProviderTransportWrapper(recorder, registry)
    wrap_function_wrapper("httpx", "HTTPTransport.handle_request", wrapper.sync)
    wrap_function_wrapper("httpx", "AsyncHTTPTransport.handle_async_request", wrapper.asynchronous)
    _installed = True


def uninstrument_provider_calls() -> None:
    global _installed
    if _installed:
        unwrap(httpx.HTTPTransport, "handle_request")
        unwrap(httpx.AsyncHTTPTransport, "handle_async_request")
        _installed = False
