"""Loading of the catalog's data files (``catalog/data/*.yaml``) and name resolution.

The YAML files ship inside the package; they are read once per process and cached.
Names resolve case-insensitively over canonical ids and aliases; an unknown name
raises :class:`~servelab.errors.ConfigError` listing the canonical ids.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml

from ..errors import ConfigError

__all__ = ["load_yaml", "normalize", "build_index", "resolve", "read_user_text", "read_user_data"]

T = TypeVar("T")


@lru_cache(maxsize=None)
def load_yaml(filename: str) -> Any:
    """Parsed content of ``catalog/data/<filename>``."""
    text = resources.files("servelab.catalog").joinpath("data", filename).read_text("utf-8")
    return yaml.safe_load(text)


def normalize(name: str) -> str:
    """Lower-case, trimmed, ``_`` and spaces folded to ``-`` ("H100_SXM" -> "h100-sxm")."""
    return "-".join(name.strip().lower().replace("_", " ").split())


def build_index(items: Iterable[T], kind: str) -> dict[str, T]:
    """Map every canonical id and alias (normalized) to its item; duplicates are a bug."""
    index: dict[str, T] = {}
    for item in items:
        for key in (item.name, *item.aliases):  # type: ignore[attr-defined]
            k = normalize(key)
            if k in index and index[k] is not item:
                raise AssertionError(f"duplicate {kind} name {k!r} in the catalog data")
            index[k] = item
    return index


def resolve(index: dict[str, T], name: str, kind: str, known: Iterable[str]) -> T:
    """The item called ``name``; ConfigError naming the known canonical ids otherwise."""
    try:
        return index[normalize(name)]
    except KeyError:
        raise ConfigError(
            f"unknown {kind} {name!r}; known: {', '.join(known)}"
        ) from None


def read_user_data(path: str | Path, what: str) -> tuple[Path, Any]:
    """``(path, data)`` of a user-supplied YAML file (JSON for a ``.json`` path; JSON is also
    YAML); ConfigError names ``what``, the path and the parse error."""
    import json

    p, text = read_user_text(path, what)
    is_json = p.suffix.lower() == ".json"
    try:
        return p, (json.loads(text) if is_json else yaml.safe_load(text))
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{what} {str(p)!r} is not valid {'JSON' if is_json else 'YAML'}: {exc}") from None


def read_user_text(path: str | Path, what: str) -> tuple[Path, str]:
    """``(path, text)`` of a user-supplied UTF-8 file; ConfigError names ``what`` and the path."""
    p = Path(path).expanduser()
    try:
        return p, p.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"{what} {str(p)!r} cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {str(p)!r} is not UTF-8 text: {exc}") from None
