"""The paid external providers the backend calls: the one place for service keys, hosts and display names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["Provider", "ProviderRegistry", "DEFAULT_PROVIDERS", "SERVICE_KEYS"]


@dataclass(frozen=True)
class Provider:
    """One external provider: its service key (a metric label), the hosts it answers on."""

    key: str
    display_name: str
    hosts: tuple[str, ...]

    @property
    def json_key(self) -> str:
        """Key of this provider in JSON documents such as the quota response: ``d-id`` -> ``d_id``."""
        return self.key.replace("-", "_")


DEFAULT_PROVIDERS: tuple[Provider, ...] = (
    Provider("gemini", "Gemini", ("generativelanguage.googleapis.com",)),
    Provider("stability", "Stability AI", ("api.stability.ai",)),
    Provider("d-id", "D-ID", ("api.d-id.com",)),
    Provider("youtube", "YouTube", ("www.googleapis.com", "youtube.googleapis.com", "oauth2.googleapis.com")),
)

SERVICE_KEYS: tuple[str, ...] = tuple(p.key for p in DEFAULT_PROVIDERS)


class ProviderRegistry:
    """Maps a request's host (``name`` or ``name:port``) to the provider it belongs to."""

    def __init__(self, providers: Iterable[Provider] = DEFAULT_PROVIDERS) -> None:
        self._providers = {p.key: p for p in providers}
        self._by_host: dict[str, Provider] = {}
        for provider in self._providers.values():
            for host in provider.hosts:
                self._by_host[host.lower()] = provider

    @classmethod
    def with_hosts(cls, hosts: Mapping[str, Iterable[str]]) -> ProviderRegistry:
        """The default providers with their hosts replaced per service key (e.g. local fakes)."""
        unknown = set(hosts) - set(SERVICE_KEYS)
        if unknown:
            raise ValueError(f"unknown provider(s) {sorted(unknown)}; known: {list(SERVICE_KEYS)}")
        return cls(
            Provider(p.key, p.display_name, tuple(hosts[p.key]) if p.key in hosts else p.hosts)
            for p in DEFAULT_PROVIDERS
        )

    def get(self, key: str) -> Provider:
        try:
            return self._providers[key]
        except KeyError:
            raise KeyError(f"unknown provider {key!r}; known: {sorted(self._providers)}") from None

    def for_host(self, host: str, port: int | None = None) -> Provider | None:
        """The provider serving ``host`` (matched with its port first, then without), or None."""
        host = host.lower()
        if port is not None:
            match = self._by_host.get(f"{host}:{port}")
            if match is not None:
                return match
        return self._by_host.get(host)

    def __iter__(self):
        return iter(self._providers.values())
