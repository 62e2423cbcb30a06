"""Local fakes of the paid provider APIs (Gemini, Stability AI, D-ID, YouTube) with switchable faults."""

from .did import DidAccount, create_did_app
from .faults import FAULT_MODES, FaultState
from .gemini import create_gemini_app
from .runner import SERVICE_KEYS, FakeProviders
from .stability import StabilityAccount, create_stability_app
from .youtube import create_youtube_app

__all__ = [
    "FAULT_MODES",
    "SERVICE_KEYS",
    "DidAccount",
    "FakeProviders",
    "FaultState",
    "StabilityAccount",
    "create_did_app",
    "create_gemini_app",
    "create_stability_app",
    "create_youtube_app",
]
