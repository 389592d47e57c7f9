"""One typed, validated description of a serving scenario, and its one builder.

``Scenario`` (:mod:`._model`) says what runs where under what load; :mod:`.build`
turns it into the deployment, the simulator configuration, the offered requests, the
throughput window and the fleet cost; :mod:`.io` reads and writes scenario files and
publishes the JSON Schema; :mod:`.cost` is the one cost model (instance packing,
$/hour, $/1M tokens, monthly TCO); :mod:`.flags` is the command-line spelling of every
field; :mod:`.estimate` and :mod:`.simrun` are what ``estimate`` and ``simulate``
report about a scenario. Every entry point — ``estimate``, ``simulate``,
``emulate``, ``plan``, ``decide``, ``calibrate`` — validates its input into a
``Scenario`` first.
"""

from __future__ import annotations

from . import build
from ._model import (ROUTERS, AdmissionSettings, AutoscalerSettings, BurstSpec, EngineSettings,
                     FaultSettings, KVTierSettings, LoraSettings, PrefixOverride, PriceSettings, Scenario,
                     SpeculativeSettings)
from ._curve import CurveBurst, RateCurveSettings
from .io import dump_scenario, field_paths, json_schema, load_scenario_data, parse_set, resolve, write_scenario

__all__ = [
    "Scenario", "EngineSettings", "LoraSettings", "SpeculativeSettings", "KVTierSettings",
    "AdmissionSettings", "AutoscalerSettings", "FaultSettings", "BurstSpec", "PrefixOverride",
    "PriceSettings", "RateCurveSettings", "CurveBurst", "ROUTERS", "build", "resolve", "load_scenario_data", "dump_scenario",
    "write_scenario", "json_schema", "parse_set", "field_paths",
]
