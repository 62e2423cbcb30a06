"""The shipped price table of the paid providers: EXAMPLES to check against each provider's price page."""

from __future__ import annotations

__all__ = ["DEFAULT_PRICES"]

# USD, per provider, then per model (Gemini) or operation (the others), "*" for any other. Each entry takes
# (all optional, 0 by default): input_per_million_tokens, output_per_million_tokens, per_image, per_credit,
# credits_per_call, credits_per_image (see otel_monitor.instrument.costs.Price).
#
# These are EXAMPLES, as published on the pages below in 2025 and not re-checked since (2026-12-01): prices change
# and depend on the plan, so check them and configure the backend's own (OTEL_MONITOR_PRICES, JSON of this shape).
# - Gemini: https://ai.google.dev/gemini-api/docs/pricing (paid tier, text prompts up to 200k tokens; output
#   includes thinking tokens).
# - Stability: https://platform.stability.ai/pricing (1 credit = 0.01 USD; SDXL 1.0 0.9 credits per image).
# - D-ID: https://www.d-id.com/pricing/api/ (a credit is 15 s of video; its price depends on the plan: Build's).
# - YouTube: the Data API costs quota units, not money (counted by the usage counter): 0.
DEFAULT_PRICES: dict[str, dict[str, dict[str, float]]] = {
    "gemini": {
        "gemini-2.5-pro": {"input_per_million_tokens": 1.25, "output_per_million_tokens": 10.0},
        "gemini-2.5-flash": {"input_per_million_tokens": 0.30, "output_per_million_tokens": 2.50},
        "gemini-2.5-flash-lite": {"input_per_million_tokens": 0.10, "output_per_million_tokens": 0.40},
        "gemini-2.0-flash": {"input_per_million_tokens": 0.10, "output_per_million_tokens": 0.40},
        "*": {"input_per_million_tokens": 0.30, "output_per_million_tokens": 2.50},
    },
    "stability": {"*": {"per_credit": 0.01, "credits_per_image": 0.9}},
    "d-id": {"talks.create": {"per_credit": 0.10, "credits_per_call": 1}, "*": {}},
    "youtube": {"*": {}},
}
