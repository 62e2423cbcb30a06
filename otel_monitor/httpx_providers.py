"""Gives every httpx request to a known provider host the provider span, metrics and error classification."""

from __future__ import annotations

import logging

import httpx
from wrapt import wrap_function_wrapper

from opentelemetry.instrumentation.utils import unwrap

from otel_monitor.classification import classify_exception, classify_response
from otel_monitor.external_calls import ExternalCall, ExternalCallRecorder, current_external_call
from otel_monitor.services import ProviderRegistry

__all__ = ["instrument_provider_calls", "uninstrument_provider_calls"]

_log = logging.getLogger(__name__)


def _request_of(args, kwargs) -> httpx.Request:
    return args[0] if args else kwargs["request"]


def _classify_response(call: ExternalCall, response: httpx.Response):
    content = None
    if response.status_code >= 400:
        try:
            content = response.content
        except httpx.ResponseNotRead:
            content = None
    return classify_response(call.service, response.status_code, content)


class _ProviderSendWrapper:
    """wrapt wrapper of ``Client.send`` / ``AsyncClient.send``: one attempt of a (maybe implicit) provider call."""

    def __init__(self, recorder: ExternalCallRecorder, registry: ProviderRegistry) -> None:
        self._recorder = recorder
        self._registry = registry

    def _provider_call(self, request: httpx.Request) -> tuple[ExternalCall | None, bool]:
        """(the call this request belongs to, whether it must be opened here); (None, False) if no provider."""
        try:
            provider = self._registry.for_host(request.url.host, request.url.port)
        except Exception:
            return None, False
        if provider is None:
            return None, False
        outer = current_external_call()
        if outer is not None and outer.service == provider.key:
            return outer, False
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
            call.record_attempt(classify_exception(call.service, exc))
            raise
        if response.status_code >= 400 and not response.is_stream_consumed:
            try:
                response.read()  # error bodies are small and name the failure (invalid key vs quota)
            except Exception:
                _log.debug("could not read error body", exc_info=True)
        call.record_attempt(_classify_response(call, response))
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
            call.record_attempt(classify_exception(call.service, exc))
            raise
        if response.status_code >= 400 and not response.is_stream_consumed:
            try:
                await response.aread()
            except Exception:
                _log.debug("could not read error body", exc_info=True)
        call.record_attempt(_classify_response(call, response))
        return response


_installed = False


def instrument_provider_calls(recorder: ExternalCallRecorder, registry: ProviderRegistry) -> None:
    """Wraps httpx's ``Client.send`` and ``AsyncClient.send`` (idempotent)."""
    global _installed
    if _installed:
        uninstrument_provider_calls()
    wrapper = _ProviderSendWrapper(recorder, registry)
    wrap_function_wrapper("httpx", "Client.send", wrapper.sync)
    wrap_function_wrapper("httpx", "AsyncClient.send", wrapper.asynchronous)
    _installed = True


def uninstrument_provider_calls() -> None:
    global _installed
    if _installed:
        unwrap(httpx.Client, "send")
        unwrap(httpx.AsyncClient, "send")
        _installed = False
