"""The price book: instance offers (provider, instance type, GPUs per instance, region,
prices per billing tier, source and date), and the cheapest way to rent a fleet from them.

Data: ``catalog/data/prices.csv`` (built in) or a user file given with ``--prices FILE``
(CSV with the same header, or YAML: a list of mappings with the same keys, optionally
under a top-level ``offers:`` key). Prices are USD per INSTANCE-hour; a tier left blank is
not offered. ``source_url`` is where the provider publishes the price and ``notes`` says
where it was read when that was a transcription.

Columns (``COLUMNS``): ``provider``, ``instance_type``, ``gpu`` (catalog id or alias),
``gpus_per_instance``, ``region``, ``on_demand_usd_per_hour``, ``spot_usd_per_hour``,
``reserved_1y_usd_per_hour``, ``reserved_3y_usd_per_hour``, ``source_url``,
``source_date`` (YYYY-MM-DD), ``notes`` (optional).

Bad input raises :class:`PriceFileError` naming the file, the row (1-based, header
excluded) and the column, with the valid values.

**Packing on real shapes** (:func:`cheapest_packing`): ``R`` replicas of ``g`` GPUs each
(tensor-parallel groups of ``tp`` GPUs) go on instances of one GPU type. A tensor-parallel
group needs the GPUs' peer links, so it never straddles instances: only instances of at
least ``tp`` GPUs are candidates (a GPU priced "per GPU" with no stated shape is a 1-GPU
instance). A replica never straddles instances when ``g`` fits in one (an instance of
``s`` GPUs holds ``⌊s/g⌋`` replicas); a replica larger than every candidate instance
(pipeline stages across nodes) takes ``⌈g/s⌉`` instances of one shape. The cheapest mix is found exactly by
dynamic programming over the number of replicas placed::

    C(0) = 0,   C(r) = min over offers o:  price(o) + C(r − min(r, ⌊s_o/g⌋))
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from ..errors import ConfigError
from .gpus import get_gpu

__all__ = ["Offer", "PriceFileError", "COLUMNS", "TIERS", "OfferPacking", "load_price_book",
           "parse_offers", "read_price_file", "offers_for", "cheapest_packing", "cheapest_offer"]

TIERS = ("on_demand", "spot", "reserved_1y", "reserved_3y")
COLUMNS = ("provider", "instance_type", "gpu", "gpus_per_instance", "region",
           *(f"{t}_usd_per_hour" for t in TIERS), "source_url", "source_date", "notes")
_REQUIRED = tuple(c for c in COLUMNS if c != "notes")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class PriceFileError(ConfigError):
    """A price file that cannot be read: names the file, row and column."""


@dataclass(frozen=True, kw_only=True, eq=False)
class Offer:
    provider: str
    instance_type: str
    gpu: str                      # canonical catalog id
    gpus_per_instance: int
    region: str
    prices: dict                  # tier -> USD per instance-hour (offered tiers only)
    source_url: str
    source_date: str
    notes: str = ""

    def price(self, tier: str) -> float | None:
        return self.prices.get(tier)

    def per_gpu(self, tier: str) -> float | None:
        p = self.prices.get(tier)
        return None if p is None else p / self.gpus_per_instance

    def label(self) -> str:
        return f"{self.provider} {self.instance_type}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _err(origin: str, row: int, col: str, msg: str) -> PriceFileError:
    return PriceFileError(f"{origin}: row {row}, column '{col}': {msg}")


def _offer(raw: dict, row: int, origin: str) -> Offer:
    missing = [c for c in _REQUIRED if c not in raw]
    if missing:
        raise _err(origin, row, missing[0], f"missing; every row needs: {', '.join(_REQUIRED)}")
    unknown = sorted(k for k in raw if k not in COLUMNS)
    if unknown:
        raise _err(origin, row, unknown[0], f"unknown column; valid: {', '.join(COLUMNS)}")
    text = {k: ("" if v is None else str(v).strip()) for k, v in raw.items()}
    for c in ("provider", "instance_type", "region"):
        if not text[c]:
            raise _err(origin, row, c, "empty; give a value (use 'not stated' for an unknown region)")
    try:
        gpu = get_gpu(text["gpu"]).name
    except ConfigError as e:
        raise _err(origin, row, "gpu", str(e)) from None
    try:
        n = int(text["gpus_per_instance"])
    except ValueError:
        n = 0
    if n < 1 or str(n) != text["gpus_per_instance"]:
        raise _err(origin, row, "gpus_per_instance",
                   f"{text['gpus_per_instance']!r} is not a whole number of GPUs >= 1")
    prices = {}
    for t in TIERS:
        col = f"{t}_usd_per_hour"
        v = text[col]
        if not v:
            continue
        try:
            p = float(v)
        except ValueError:
            raise _err(origin, row, col, f"{v!r} is not a number (USD per instance-hour, or blank)") from None
        if not math.isfinite(p) or p <= 0:
            raise _err(origin, row, col, f"{v!r} must be a positive price (or blank: not offered)")
        prices[t] = p
    if not prices:
        raise _err(origin, row, "on_demand_usd_per_hour",
                   f"no price in any tier; give at least one of {', '.join(f'{t}_usd_per_hour' for t in TIERS)}")
    if not text["source_url"].startswith(("https://", "http://")):
        raise _err(origin, row, "source_url", f"{text['source_url']!r} is not an http(s) URL")
    if not _DATE.match(text["source_date"]):
        raise _err(origin, row, "source_date", f"{text['source_date']!r} is not a date YYYY-MM-DD")
    return Offer(provider=text["provider"], instance_type=text["instance_type"], gpu=gpu,
                 gpus_per_instance=n, region=text["region"], prices=prices,
                 source_url=text["source_url"], source_date=text["source_date"],
                 notes=text.get("notes", ""))


def parse_offers(text: str, fmt: str, origin: str = "<prices>") -> tuple[Offer, ...]:
    """Offers from CSV or YAML ``text`` (``fmt``: "csv" | "yaml")."""
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames:
            raise PriceFileError(f"{origin}: empty file; expected a CSV header: {','.join(COLUMNS)}")
        missing = [c for c in _REQUIRED if c not in reader.fieldnames]
        if missing:
            raise PriceFileError(f"{origin}: header, column '{missing[0]}': missing; "
                                 f"the header needs: {', '.join(_REQUIRED)}")
        rows = list(reader)
        for i, r in enumerate(rows, 1):
            if None in r:
                raise _err(origin, i, "(extra)", f"{len(reader.fieldnames) + len(r[None])} fields for "
                           f"{len(reader.fieldnames)} columns (a comma inside an unquoted value?)")
    elif fmt == "yaml":
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise PriceFileError(f"{origin}: not valid YAML: {e}") from None
        if isinstance(data, dict) and "offers" in data:
            data = data["offers"]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise PriceFileError(f"{origin}: expected a list of offers (mappings with keys "
                                 f"{', '.join(COLUMNS)}), optionally under 'offers:'")
        rows = data
    else:
        raise PriceFileError(f"{origin}: unknown format {fmt!r}; valid: csv, yaml")
    if not rows:
        raise PriceFileError(f"{origin}: no offers")
    return tuple(_offer(dict(r), i, origin) for i, r in enumerate(rows, 1))


def read_price_file(path: str | Path) -> tuple[Offer, ...]:
    """Offers from a ``.csv``, ``.yaml`` or ``.yml`` file."""
    p = Path(path)
    suffix = p.suffix.lower()
    fmt = {".csv": "csv", ".yaml": "yaml", ".yml": "yaml"}.get(suffix)
    if fmt is None:
        raise PriceFileError(f"{p}: unknown price file type {suffix or '(none)'!r}; valid: .csv, .yaml, .yml")
    try:
        text = p.read_text("utf-8")
    except OSError as e:
        raise PriceFileError(f"{p}: cannot read: {e.strerror or e}") from None
    return parse_offers(text, fmt, str(p))


@lru_cache(maxsize=1)
def _builtin() -> tuple[Offer, ...]:
    text = resources.files("servelab.catalog").joinpath("data", "prices.csv").read_text("utf-8")
    return parse_offers(text, "csv", "catalog/data/prices.csv")


@lru_cache(maxsize=8)
def _cached_file(path: str, mtime_ns: int) -> tuple[Offer, ...]:
    return read_price_file(path)


def load_price_book(path: str | Path | None = None) -> tuple[Offer, ...]:
    """The built-in price book, or the offers of ``path`` (re-read when the file changes)."""
    if path is None:
        return _builtin()
    try:
        mtime = Path(path).stat().st_mtime_ns
    except OSError:
        return read_price_file(path)          # raises PriceFileError naming the file
    return _cached_file(str(path), mtime)


def offers_for(gpu: str, tier: str = "on_demand", offers: Iterable[Offer] | None = None) -> list[Offer]:
    """Offers of ``gpu`` priced in ``tier``."""
    if tier not in TIERS:
        raise ConfigError(f"unknown price tier {tier!r}; valid: {', '.join(TIERS)}")
    name = get_gpu(gpu).name
    return [o for o in (load_price_book() if offers is None else offers)
            if o.gpu == name and tier in o.prices]


@dataclass(frozen=True, kw_only=True)
class OfferPacking:
    """Instances rented for a fleet and what they cost."""
    gpu: str
    tier: str
    gpus_per_replica: int
    replicas: int
    instances: tuple[tuple[Offer, int], ...]   # (offer, count)
    cost_per_hour_usd: float
    billed_gpus: int

    @property
    def price_per_gpu_hour_usd(self) -> float:
        return self.cost_per_hour_usd / self.billed_gpus if self.billed_gpus else 0.0

    def describe(self) -> str:
        return " + ".join(f"{c} × {o.label()} ({o.gpus_per_instance} GPU, ${o.price(self.tier):,.2f}/h, "
                          f"{o.source_date})" for o, c in self.instances)

    def to_dict(self) -> dict[str, Any]:
        return {"gpu": self.gpu, "tier": self.tier, "gpus_per_replica": self.gpus_per_replica,
                "replicas": self.replicas, "cost_per_hour_usd": self.cost_per_hour_usd,
                "billed_gpus": self.billed_gpus, "price_per_gpu_hour_usd": self.price_per_gpu_hour_usd,
                "instances": [{"provider": o.provider, "instance_type": o.instance_type,
                               "gpus_per_instance": o.gpus_per_instance, "count": c,
                               "usd_per_hour": o.price(self.tier), "region": o.region,
                               "source_url": o.source_url, "source_date": o.source_date}
                              for o, c in self.instances]}


def cheapest_packing(gpu: str, gpus_per_replica: int, replicas: int, tier: str = "on_demand",
                     offers: Sequence[Offer] | None = None, provider: str | None = None,
                     tp: int | None = None) -> OfferPacking:
    """The cheapest instances of ``gpu`` (one ``provider`` if given) holding ``replicas``
    replicas of ``gpus_per_replica`` GPUs whose tensor-parallel groups of ``tp`` GPUs
    (default: the whole replica) stay inside one instance (module docstring);
    ConfigError when no offer can hold them."""
    if gpus_per_replica < 1 or replicas < 0:
        raise ConfigError(f"bad packing request: replicas={replicas}, gpus_per_replica={gpus_per_replica}")
    tp = gpus_per_replica if tp is None else tp
    if tp < 1 or gpus_per_replica % tp:
        raise ConfigError(f"tp={tp} must divide gpus_per_replica={gpus_per_replica}")
    priced = [o for o in offers_for(gpu, tier, offers) if provider is None or o.provider == provider]
    cands = [o for o in priced if o.gpus_per_instance >= tp]
    if not cands:
        known = sorted({o.gpu for o in (load_price_book() if offers is None else offers)})
        shapes = sorted({o.gpus_per_instance for o in priced})
        raise ConfigError(f"no {tier} offer for GPU {gpu!r}"
                          + (f" from provider {provider!r}" if provider else "")
                          + f" with at least {tp} GPUs per instance (tensor parallel {tp})"
                          + (f"; its offers have {', '.join(map(str, shapes))} GPUs per instance" if shapes
                             else f"; the price book has offers for: {', '.join(known) or 'none'}"))
    g = gpus_per_replica
    fitting = [o for o in cands if o.gpus_per_instance >= g]
    if not fitting:          # every replica spans whole instances of one shape
        best = min(cands, key=lambda o: (math.ceil(g / o.gpus_per_instance) * o.price(tier), o.label()))
        n = math.ceil(g / best.gpus_per_instance) * replicas
        inst = ((best, n),) if n else ()
        return OfferPacking(gpu=get_gpu(gpu).name, tier=tier, gpus_per_replica=g, replicas=replicas,
                            instances=inst, cost_per_hour_usd=n * best.price(tier),
                            billed_gpus=n * best.gpus_per_instance)
    cost = [0.0] + [math.inf] * replicas
    choice: list[Offer | None] = [None] * (replicas + 1)
    for r in range(1, replicas + 1):
        for o in fitting:
            c = o.price(tier) + cost[r - min(r, o.gpus_per_instance // g)]
            if c < cost[r] - 1e-12 or (abs(c - cost[r]) <= 1e-12 and choice[r] is not None
                                       and o.label() < choice[r].label()):
                cost[r], choice[r] = c, o
    counts: dict[Offer, int] = {}
    r = replicas
    while r > 0:
        o = choice[r]
        counts[o] = counts.get(o, 0) + 1
        r -= min(r, o.gpus_per_instance // g)
    inst = tuple(sorted(counts.items(), key=lambda kv: (-kv[0].gpus_per_instance, kv[0].label())))
    return OfferPacking(gpu=get_gpu(gpu).name, tier=tier, gpus_per_replica=g, replicas=replicas,
                        instances=inst, cost_per_hour_usd=cost[replicas],
                        billed_gpus=sum(o.gpus_per_instance * c for o, c in inst))


def cheapest_offer(gpu: str, count: int, tier: str = "on_demand",
                   offers: Sequence[Offer] | None = None, tp: int | None = None) -> OfferPacking:
    """The cheapest instances that give one replica of ``count`` GPUs of ``gpu``."""
    return cheapest_packing(gpu, count, 1, tier, offers, tp=tp)
