"""Model catalog: transformer shapes of built-in models and any HF ``config.json``.

Data: ``catalog/data/models.yaml`` (each entry cites its Hugging Face config and holds
its shape fields in HF spelling, parsed by :mod:`.hf_config` like a user's file).
Parameter counts (:mod:`.params`) are computed from the shapes and tested against
published totals. Lookup: canonical id or alias, case-insensitive (HF repo ids such as
``meta-llama/Llama-3.1-8B-Instruct`` are aliases); anything else that names an existing
file or folder is read as an HF config.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from ._data import build_index, load_yaml, normalize, resolve
from ._modelspec import MLASpec, MoESpec, ModelSpec
from .hf_config import SUPPORTED_MODEL_TYPES, load_hf_config, spec_from_hf_dict
from .params import active_param_count, param_count

__all__ = [
    "MoESpec", "MLASpec", "ModelSpec", "get_model", "list_models", "load_hf_config",
    "param_count", "active_param_count", "SUPPORTED_MODEL_TYPES",
]


@lru_cache(maxsize=1)
def _catalog() -> tuple[tuple[ModelSpec, ...], dict[str, ModelSpec]]:
    models = tuple(
        spec_from_hf_dict(e["hf"], name=e["name"], source=e["source"],
                          aliases=tuple(e.get("aliases", ())), display_name=e.get("display_name", ""))
        for e in load_yaml("models.yaml")["models"]
    )
    return models, build_index(models, "model")


def get_model(name_or_path: str) -> ModelSpec:
    """A built-in model by id/alias, or a path to an HF ``config.json`` (or its folder)."""
    if isinstance(name_or_path, ModelSpec):
        return name_or_path
    models, index = _catalog()
    key = normalize(str(name_or_path))
    if key in index:
        return index[key]
    path = Path(str(name_or_path)).expanduser()
    if path.exists():
        return load_hf_config(path)
    return resolve(index, str(name_or_path), "model", (m.name for m in models))


def list_models() -> list[ModelSpec]:
    """Every built-in model, in data-file order."""
    return list(_catalog()[0])
