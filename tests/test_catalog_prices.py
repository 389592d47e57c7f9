"""Price book: built-in offers, user price files with bad input, packing on real shapes."""

from __future__ import annotations

import itertools
import json
import math

import pytest
from typer.testing import CliRunner

from servelab.catalog.prices import (COLUMNS, PriceFileError, cheapest_offer, cheapest_packing,
                                     load_price_book, offers_for, parse_offers, read_price_file)
from servelab.errors import ConfigError

HEADER = ",".join(COLUMNS)


def _csv(*rows: str) -> str:
    return HEADER + "\n" + "\n".join(rows) + "\n"


GOOD = "acme,a8,h100-sxm,8,eu-west,24,10,,,https://acme.example/p,2026-01-02,"


def test_builtin_book_is_sourced_and_dated():
    offers = load_price_book()
    assert len(offers) >= 15
    for o in offers:
        assert o.source_url.startswith("https://") and len(o.source_date) == 10 and o.prices
    by = {(o.provider, o.instance_type): o for o in offers}
    # Lambda lists USD per GPU-hour; the book stores the instance price: 8 × $3.99
    assert by[("lambda", "8x NVIDIA H100 SXM")].price("on_demand") == pytest.approx(31.92)
    assert by[("lambda", "1x NVIDIA H100 SXM")].per_gpu("on_demand") == pytest.approx(4.29)
    # smaller Lambda instances cost more per GPU: an 8-GPU price is not a 1-GPU price
    assert by[("lambda", "1x NVIDIA B200 SXM6")].per_gpu("on_demand") > by[("lambda", "8x NVIDIA B200 SXM6")].per_gpu("on_demand")


@pytest.mark.parametrize("row,col,words", [
    ("acme,a8,h100-sxm,8,eu,abc,,,,https://a.example,2026-01-02,", "on_demand_usd_per_hour", "not a number"),
    ("acme,a8,h1000,8,eu,24,,,,https://a.example,2026-01-02,", "gpu", "h100-sxm"),
    ("acme,a8,h100-sxm,2.5,eu,24,,,,https://a.example,2026-01-02,", "gpus_per_instance", "whole number"),
    ("acme,a8,h100-sxm,8,eu,24,,,,https://a.example,02/01/2026,", "source_date", "YYYY-MM-DD"),
    ("acme,a8,h100-sxm,8,eu,,,,,https://a.example,2026-01-02,", "on_demand_usd_per_hour", "no price"),
    ("acme,a8,h100-sxm,8,eu,-3,,,,https://a.example,2026-01-02,", "on_demand_usd_per_hour", "positive"),
    ("acme,a8,h100-sxm,8,,24,,,,https://a.example,2026-01-02,", "region", "empty"),
    ("acme,a8,h100-sxm,8,eu,24,,,,ftp://a.example,2026-01-02,", "source_url", "URL"),
])
def test_bad_csv_rows_name_the_row_and_column(row, col, words):
    with pytest.raises(PriceFileError) as e:
        parse_offers(_csv(GOOD, row), "csv", "my.csv")
    msg = str(e.value)
    assert msg.startswith("my.csv: row 2, column ") and f"'{col}'" in msg and words in msg


def test_bad_headers_and_shapes_of_files(tmp_path):
    with pytest.raises(PriceFileError, match="header, column 'gpu': missing"):
        parse_offers(HEADER.replace(",gpu,", ",card,") + "\n", "csv", "x.csv")
    with pytest.raises(PriceFileError, match=r"row 1, column '\(extra\)'"):
        parse_offers(_csv(GOOD + ",surplus"), "csv", "x.csv")
    with pytest.raises(PriceFileError, match="list of offers"):
        parse_offers("offers: {a: 1}", "yaml", "x.yaml")
    with pytest.raises(PriceFileError, match="row 1, column 'source_date': missing"):
        parse_offers("- {provider: a, instance_type: b, gpu: h200, gpus_per_instance: 8, region: r, "
                     "on_demand_usd_per_hour: 30, spot_usd_per_hour: null, reserved_1y_usd_per_hour: null, "
                     "reserved_3y_usd_per_hour: null, source_url: 'https://a.example'}", "yaml", "x.yaml")
    with pytest.raises(PriceFileError, match="column 'colour': unknown column"):
        parse_offers("- {provider: a, instance_type: b, gpu: h200, gpus_per_instance: 8, region: r, "
                     "on_demand_usd_per_hour: 30, spot_usd_per_hour: null, reserved_1y_usd_per_hour: null, "
                     "reserved_3y_usd_per_hour: null, source_url: 'https://a.example', "
                     "source_date: '2026-01-02', colour: red}", "yaml", "x.yaml")
    bad = tmp_path / "p.txt"
    bad.write_text("x")
    with pytest.raises(PriceFileError, match=r"valid: \.csv, \.yaml, \.yml"):
        read_price_file(bad)
    ok = tmp_path / "p.yaml"
    ok.write_text("offers:\n  - {provider: acme, instance_type: a8, gpu: h100, gpus_per_instance: 8, region: eu,"
                  " on_demand_usd_per_hour: 24, spot_usd_per_hour: 10, reserved_1y_usd_per_hour: '',"
                  " reserved_3y_usd_per_hour: '', source_url: 'https://a.example', source_date: '2026-01-02'}\n")
    (o,) = read_price_file(ok)
    assert o.gpu == "h100-sxm" and o.prices == {"on_demand": 24.0, "spot": 10.0}


def _naive(offers, g, replicas, tier, tp):
    """Brute force: every multiset of at most replicas+1 instances that hosts the replicas."""
    best = math.inf
    cands = [o for o in offers if o.gpus_per_instance >= tp and tier in o.prices]
    for k in range(1, replicas + 2):
        for combo in itertools.combinations_with_replacement(cands, k):
            if sum(o.gpus_per_instance // g for o in combo) >= replicas:
                best = min(best, sum(o.prices[tier] for o in combo))
    return best


@pytest.mark.parametrize("g,replicas", [(1, 1), (1, 3), (1, 7), (2, 3), (2, 5), (4, 3), (8, 2), (3, 2)])
def test_cheapest_packing_matches_brute_force(g, replicas):
    offers = parse_offers(_csv(
        "p,one,h100-sxm,1,r,4.29,,,,https://a.example,2026-01-02,",
        "p,two,h100-sxm,2,r,8.38,,,,https://a.example,2026-01-02,",
        "p,four,h100-sxm,4,r,16.36,,,,https://a.example,2026-01-02,",
        "p,eight,h100-sxm,8,r,31.92,,,,https://a.example,2026-01-02,",
        "q,eight,h100-sxm,8,r,30.00,,,,https://a.example,2026-01-02,"), "csv")
    p = cheapest_packing("h100-sxm", g, replicas, offers=offers)
    assert p.cost_per_hour_usd == pytest.approx(_naive(offers, g, replicas, "on_demand", g))
    assert sum(o.gpus_per_instance // g * c for o, c in p.instances) >= replicas


def test_tensor_parallel_groups_stay_inside_one_instance():
    per_gpu = parse_offers(_csv("v,per-gpu,mi300x,1,r,1.85,,,,https://a.example,2026-01-02,"), "csv")
    assert cheapest_packing("mi300x", 1, 8, offers=per_gpu).cost_per_hour_usd == pytest.approx(8 * 1.85)
    with pytest.raises(ConfigError, match="at least 8 GPUs per instance"):
        cheapest_offer("mi300x", 8, offers=per_gpu)
    # pipeline across nodes: a TP8 × PP2 replica takes two 8-GPU instances
    p = cheapest_packing("h100-sxm", 16, 1, tp=8)
    assert p.billed_gpus == 16 and all(o.gpus_per_instance == 8 for o, _ in p.instances)
    assert offers_for("h200")
    with pytest.raises(ConfigError, match="valid: on_demand"):
        offers_for("h200", "weekly")


def test_catalog_prices_cli(tmp_path):
    from servelab.cli import app
    runner = CliRunner()
    r = runner.invoke(app, ["catalog", "prices", "--gpu", "b200", "--json"])
    assert r.exit_code == 0, r.output
    items = json.loads(r.output)
    assert items and {i["gpu"] for i in items} == {"b200"}
    bad = tmp_path / "bad.csv"
    bad.write_text(_csv(GOOD, "acme,a8,h100-sxm,eight,eu,24,,,,https://a.example,2026-01-02,"))
    r = runner.invoke(app, ["catalog", "prices", "--prices", str(bad)])
    assert r.exit_code == 2
    assert "row 2, column 'gpus_per_instance'" in r.output


def test_prices_file_reaches_estimate_and_decide(tmp_path):
    from pathlib import Path
    from servelab.cli import app
    runner = CliRunner()
    mine = tmp_path / "mine.yaml"
    mine.write_text("offers:\n"
                    "  - {provider: mycloud, instance_type: h200x2, gpu: h200, gpus_per_instance: 2, region: eu,"
                    " on_demand_usd_per_hour: 7, spot_usd_per_hour: '', reserved_1y_usd_per_hour: '',"
                    " reserved_3y_usd_per_hour: '', source_url: 'https://example.com/q', source_date: '2026-11-01'}\n"
                    "  - {provider: mycloud, instance_type: h100x4, gpu: h100-sxm, gpus_per_instance: 4, region: eu,"
                    " on_demand_usd_per_hour: 12, spot_usd_per_hour: '', reserved_1y_usd_per_hour: '',"
                    " reserved_3y_usd_per_hour: '', source_url: 'https://example.com/q', source_date: '2026-11-01'}\n")
    r = runner.invoke(app, ["estimate", "--model", "llama-3.1-70b", "--gpu", "h100-sxm", "--tp", "4",
                            "--dtype", "fp8", "--prices", str(mine), "--json"])
    assert r.exit_code == 0, r.output
    cost = json.loads(r.stdout)["cost"]
    assert cost["cost_per_hour_usd"] == pytest.approx(12.0) and "mycloud h100x4" in cost["price_source"]
    example = Path(__file__).resolve().parents[1] / "examples" / "decisions" / "h200-vs-h100-cost.yaml"
    r = runner.invoke(app, ["decide", str(example), "--ledger", str(tmp_path / "l.sqlite"),
                            "--prices", str(mine), "--json"])
    assert r.exit_code == 0, r.output
    (v,) = [v for v in json.loads(r.stdout)["verdicts"] if "price_source" in v["detail"]]
    assert "mycloud h200x2" in v["detail"]["price_source"]["h200-tp2"]
    assert "mycloud h100x4" in v["detail"]["price_source"]["h100-tp4"]
    bad = tmp_path / "bad.csv"
    bad.write_text(_csv("acme,a8,h100-sxm,8,eu,24,,,,https://a.example,yesterday,"))
    r = runner.invoke(app, ["decide", str(example), "--ledger", str(tmp_path / "l.sqlite"), "--prices", str(bad)])
    assert r.exit_code == 2 and "row 1, column 'source_date'" in " ".join(r.output.split())
