"""Model providers: ``sim`` (deterministic simulator) and ``openai`` (OpenAI-compatible HTTP)."""

from engine.providers.base import TASKS, ModelCall, Provider, ProviderResult, split_model
from engine.providers.openai import OpenAIProvider
from engine.providers.sim import SIM_MODELS, SimModel, SimProvider

__all__ = [
    "SIM_MODELS",
    "TASKS",
    "ModelCall",
    "OpenAIProvider",
    "Provider",
    "ProviderResult",
    "SimModel",
    "SimProvider",
    "default_providers",
    "split_model",
]


def default_providers(*, seed: int = 0, time_scale: float = 1.0) -> list[Provider]:
    """The providers an engine gets unless told otherwise: ``sim`` and ``openai``.

    Building them does no I/O and reads no required setting, so an engine can always start;
    ``openai`` only fails, clearly, when a workflow actually calls it without credentials.
    """
    return [SimProvider(seed=seed, time_scale=time_scale), OpenAIProvider()]
