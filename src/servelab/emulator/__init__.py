"""Emulated OpenAI-compatible server driven in real time by the simulator's engine
(see docs/emulator.md)."""

from __future__ import annotations

from ._guard import ServerLimits
from .replica import one_replica
from .server import Emulator, EmulatorConfig, count_prompt_tokens

__all__ = ["Emulator", "EmulatorConfig", "ServerLimits", "count_prompt_tokens", "one_replica"]
