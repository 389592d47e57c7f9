"""Scenario files (YAML or JSON), overrides, and the published JSON Schema.

Precedence, lowest first: the model's defaults, the ``--scenario FILE``, then command
line flags and ``--set path=value`` overrides. :func:`resolve` applies that order and
validates once; every error names the field by its dotted path and says what is valid.

A scenario file holds the fields of :class:`~servelab.scenario.Scenario` at the top
level, e.g.::

    model: llama-3.1-70b
    gpu: h100-sxm
    tp: 4
    weight_dtype: fp8
    engine: {profile: vllm, max_num_seqs: 128}
    replicas: 3
    router: least-outstanding
    workload: chat
    rate_rps: 20
    slo: ttft_p95=2s,tpot_p95=50ms

``plan --export-scenario`` writes the recommended fleet in this form. Decision files
(``servelab decide``) embed the same schema under ``scenarios:``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from ._model import Scenario

__all__ = ["load_scenario_data", "resolve", "dump_scenario", "write_scenario", "json_schema",
           "format_errors", "parse_set", "field_paths"]


def _loc(loc: tuple[Any, ...], tags: Mapping[str, Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in tags or part in ("float", "int", "str") or (
                isinstance(part, str) and part.startswith(("function-", "union[", "tagged-union["))):
            continue   # pydantic's union-branch tags, not field names
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...], tags: Mapping[str, Any]) -> str:
    """Valid field names at the location of an 'extra field' error."""
    cur: Any = model
    for part in loc[:-1]:
        if part in tags:
            cur = tags[part]
            continue
        fields = getattr(cur, "model_fields", None)
        if not fields or part not in fields:
            continue
        ann = fields[part].annotation
        cand = [a for a in (ann, *getattr(ann, "__args__", ())) if hasattr(a, "model_fields")]
        for a in getattr(ann, "__args__", ()):
            cand += [b for b in getattr(a, "__args__", ()) if hasattr(b, "model_fields")]
        if cand:
            cur = cand[-1]
    return ", ".join(f.alias or n for n, f in cur.model_fields.items())


def format_errors(err: ValidationError, source: str, model: type[BaseModel] = Scenario,
                  prefix: str = "invalid scenario", tags: Mapping[str, Any] | None = None) -> str:
    """One line per bad field: its dotted path, what is wrong, what was given.
    ``tags``: discriminator tags of tagged unions → the model each selects."""
    tags = tags or {}
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"{_loc(loc, tags)}: unknown field; valid fields: {_fields_at(model, loc, tags)}")
            continue
        msg = e["msg"].removeprefix("Value error, ")
        got = e.get("input")
        if e["type"] in ("float_type", "float_parsing") and isinstance(got, dict):
            continue   # the number branch of 'number or mapping' unions
        if e["type"] != "missing" and not isinstance(got, (dict, list)):
            msg += f" (got {got!r})"
        lines.append(f"{_loc(loc, tags)}: {msg}")
    return f"{prefix} {source}:\n  " + "\n  ".join(dict.fromkeys(lines))


def load_scenario_data(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML or JSON scenario file (not yet validated)."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read scenario file {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"scenario file {p} is not UTF-8 text") from None
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"scenario file {p} is not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: "
                          f"{exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"scenario file {p}: expected a mapping of scenario fields at the top level, "
                          f"got {type(data).__name__}")
    if "scenario" in data and isinstance(data["scenario"], dict) and len(data) <= 2:
        data = data["scenario"]          # tolerate {scenario: {...}} wrappers (and a comment key)
    return data


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    cur = data
    for part in parts[:-1]:
        nxt = cur.get(part)
        if isinstance(nxt, str) and part == "engine":
            nxt = {"profile": nxt}
        if not isinstance(nxt, dict):
            nxt = {} if nxt is None else nxt
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {path}: {part!r} is not a section (it holds {nxt!r})")
        cur[part] = dict(nxt)
        cur = cur[part]
    cur[parts[-1]] = value


def parse_set(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["engine.max_num_seqs=128", "kv_tiers=[{name: dram, gib: 64}]"]`` → overrides;
    values are read as YAML (numbers, booleans, lists, mappings, null)."""
    out: dict[str, Any] = {}
    valid = ", ".join(field_paths())
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected PATH=VALUE, e.g. engine.max_num_seqs=128")
        path, raw = item.split("=", 1)
        path = path.strip()
        if not path or path.split(".")[0] not in Scenario.model_fields:
            raise ConfigError(f"--set {item!r}: unknown field {path.split('.')[0]!r}; valid: {valid}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        out[path] = value
    return out


def resolve(base: Mapping[str, Any] | None = None, overrides: Mapping[str, Any] | None = None, *,
            source: str = "<command line>", model: type[BaseModel] = Scenario) -> Any:
    """Validate ``base`` (a file's mapping) with ``overrides`` (dotted path → value,
    ``None`` values skipped) applied on top; ConfigError names every bad field."""
    data: dict[str, Any] = json.loads(json.dumps(dict(base or {}), default=list))
    for path, value in (overrides or {}).items():
        if value is not None:
            _set_path(data, path, value)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, source, model)) from None


# Fields a written scenario always states, default or not: what runs where, under what load.
CORE_FIELDS = ("model", "gpu", "tp", "pp", "ep", "weight_dtype", "kv_dtype", "engine", "replicas",
               "router", "workload", "rate_rps", "duration_s", "seed", "slo")


def dump_scenario(sc: BaseModel, *, full: bool = False) -> dict[str, Any]:
    """Plain data of a scenario: the core fields and every other field that differs from
    its default (``full``: every field)."""
    everything = sc.model_dump(mode="json", by_alias=True)
    if full:
        return everything
    changed = sc.model_dump(mode="json", exclude_defaults=True, by_alias=True)
    return {k: v for k, v in everything.items()
            if k in changed or (k in CORE_FIELDS and v is not None)}


def write_scenario(sc: BaseModel, path: str | Path, *, comment: str = "") -> Path:
    """Write ``sc`` as YAML (or JSON for a .json path); the file round-trips through
    :func:`resolve` to an equal scenario. Written to a temporary file, then renamed."""
    p = Path(path)
    if p.exists() and not p.is_file():
        raise ConfigError(f"cannot write scenario to {p}: it exists and is not a regular file")
    data = dump_scenario(sc)
    if p.suffix.lower() == ".json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        head = "".join(f"# {line}\n" for line in comment.splitlines()) if comment else ""
        text = head + yaml.safe_dump(data, sort_keys=False)
    from .._files import atomic_write_text
    return atomic_write_text(p, text)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of scenario files, generated from the model."""
    schema = Scenario.model_json_schema()
    schema["$id"] = "https://servelab.dev/schema/scenario.json"
    schema["title"] = "servelab scenario"
    return schema


def field_paths(model: type[BaseModel] = Scenario, prefix: str = "") -> list[str]:
    """Every settable dotted path of the scenario (sections expanded)."""
    import typing

    out = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        if typing.get_origin(ann) in (tuple, list):
            out.append(prefix + name)          # a list of sections is set whole
            continue
        subs = [a for a in (ann, *getattr(ann, "__args__", ())) if isinstance(a, type) and issubclass(a, BaseModel)]
        if subs:
            out += field_paths(subs[0], f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out
