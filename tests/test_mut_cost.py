"""Fleet packing and cost (scenario/cost.py) against the documented rules, worked by hand.

References: the module docstring (largest nodes first, the remainder on nodes that hold
it, a replica larger than the largest node takes ceil(g / s_max) whole nodes, node sizes
capped at 8 GPUs by default), the docs/scenario.md example (TP2 × 3 -> one 4-GPU and one
2-GPU node; with 8-GPU nodes only, one 8-GPU node), and the cost equations
cost/h = billed GPUs × price, $/1M out = cost/h / (tok/s × 3600) × 1e6,
monthly = cost/h × tier multiplier × 730.5 h.
"""

from __future__ import annotations

import math

import pytest

from servelab.scenario.cost import PRICE_TIERS, fleet_cost, pack_replicas


def test_docs_example_tp2_times_three():
    # 3 replicas × 2 GPUs: 8 // 2 = 4 per 8-GPU node, 3 < 4 -> no full 8-GPU node; the
    # remainder 3 fills a 4-GPU node (2 replicas), the last one a 2-GPU node.
    p = pack_replicas(replicas=3, gpus_per_replica=2)
    assert p.nodes == ((4, 1), (2, 1))
    assert (p.gpus_per_replica, p.replicas, p.billed_gpus, p.used_gpus, p.idle_gpus) == (2, 3, 6, 6, 0)
    assert p.to_dict() == {"gpus_per_replica": 2, "replicas": 3,
                           "nodes": [{"gpus_per_node": 4, "count": 1},
                                     {"gpus_per_node": 2, "count": 1}],
                           "billed_gpus": 6, "used_gpus": 6, "idle_gpus": 0}
    # 8-GPU nodes only: one 8-GPU node, 2 GPUs idle.
    p8 = pack_replicas(replicas=3, gpus_per_replica=2, node_sizes=(8,))
    assert p8.nodes == ((8, 1),) and p8.billed_gpus == 8 and p8.idle_gpus == 2


def test_single_gpu_remainder_two():
    # 10 replicas × 1 GPU: one full 8-GPU node (8 replicas), remainder 2 fills a 2-GPU node.
    p = pack_replicas(replicas=10, gpus_per_replica=1)
    assert p.nodes == ((8, 1), (2, 1)) and p.billed_gpus == 10


def test_three_gpu_replicas_two_per_node():
    # g = 3: 8 // 3 = 2 replicas per 8-GPU node (2 GPUs idle each). 4 replicas -> 2 full
    # 8-GPU nodes; 5 replicas -> 2 full + the last one on the smallest node holding 3 GPUs (4).
    p4 = pack_replicas(replicas=4, gpus_per_replica=3)
    assert p4.nodes == ((8, 2),) and p4.billed_gpus == 16 and p4.used_gpus == 12
    assert all(type(c) is int for _, c in p4.nodes)
    p5 = pack_replicas(replicas=5, gpus_per_replica=3)
    assert p5.nodes == ((8, 2), (4, 1)) and p5.billed_gpus == 20 and p5.idle_gpus == 5


def test_replica_larger_than_largest_node():
    # g = 16 on nodes up to 8: ceil(16 / 8) = 2 whole 8-GPU nodes per replica; 3 -> 6 nodes.
    p = pack_replicas(replicas=3, gpus_per_replica=16)
    assert p.nodes == ((8, 6),) and p.billed_gpus == 48 and p.used_gpus == 48


def test_node_sizes_capped_at_eight_by_default():
    # A 9-GPU node size is above the default cap of 8 GPUs and is ignored: a 9-GPU replica
    # takes ceil(9 / 8) = 2 eight-GPU nodes (16 billed), not one 9-GPU node.
    p = pack_replicas(replicas=1, gpus_per_replica=9, node_sizes=(8, 9))
    assert p.nodes == ((8, 2),) and p.billed_gpus == 16
    # with the cap raised the 9-GPU node holds it
    assert pack_replicas(replicas=1, gpus_per_replica=9, node_sizes=(8, 9),
                         max_node_gpus=9).nodes == ((9, 1),)


def test_zero_replicas_rent_nothing():
    p = pack_replicas(replicas=0, gpus_per_replica=2)
    assert p.nodes == () and p.billed_gpus == 0


@pytest.mark.parametrize("kw, msg", [
    (dict(replicas=-1, gpus_per_replica=1), r"^bad packing request: replicas=-1, gpus_per_replica=1$"),
    (dict(replicas=1, gpus_per_replica=0), r"^bad packing request: replicas=1, gpus_per_replica=0$"),
    (dict(replicas=1, gpus_per_replica=1, node_sizes=(16,)), r"^no node size in \[16\] is <= 8 GPUs$"),
])
def test_bad_packing_request_is_named(kw, msg):
    with pytest.raises(ValueError, match=msg):
        pack_replicas(**kw)


def test_remainder_on_node_it_fills_not_a_wasteful_one():
    # nodes (4, 5, 8), 6 replicas × 2 GPUs: one full 8-GPU node (4 replicas); the remaining
    # 2 replicas (4 GPUs) fill a 4-GPU node completely -> 8 + 4 = 12 GPUs billed.
    p = pack_replicas(replicas=6, gpus_per_replica=2, node_sizes=(4, 5, 8))
    assert p.nodes == ((8, 1), (4, 1)) and p.billed_gpus == 12
    # nodes (2, 3, 8), 3 replicas × 2 GPUs: none fills 8; 3 never fills completely with
    # TP2 -> three 2-GPU nodes, 6 GPUs billed (not 3 + 3 + 3 = 9).
    p = pack_replicas(replicas=3, gpus_per_replica=2, node_sizes=(2, 3, 8))
    assert p.nodes == ((2, 3),) and p.billed_gpus == 6


def test_fleet_cost_equations():
    # 6 billed GPUs × $2.5 = $15/h; at 1000 output tok/s: 15 / 3.6e6 × 1e6 = $4.1666…/1M;
    # monthly on-demand 15 × 730.5 = 10957.5; reserved 1y × 0.63 = 6903.225;
    # reserved 3y × 0.45 = 4930.875; spot × 0.48 = 5259.6.
    p = pack_replicas(replicas=3, gpus_per_replica=2)
    c = fleet_cost(packing=p, price_per_gpu_hour_usd=2.5, output_tokens_per_s=1000.0,
                   price_source="catalog")
    assert c.price_per_gpu_hour_usd == 2.5 and c.packing is p and c.price_source == "catalog"
    assert c.cost_per_hour_usd == 15.0 and c.output_tokens_per_s == 1000.0
    assert c.cost_per_million_output_tokens_usd == pytest.approx(15 / 3.6, rel=1e-12)
    assert c.monthly_usd == pytest.approx({"on_demand": 10957.5, "reserved_1y": 6903.225,
                                           "reserved_3y": 4930.875, "spot": 5259.6}, rel=1e-12)
    assert [t.name for t in PRICE_TIERS] == ["on_demand", "reserved_1y", "reserved_3y", "spot"]
    d = c.to_dict()
    assert d["packing"]["billed_gpus"] == 6 and d["packing"]["idle_gpus"] == 0
    assert d["cost_per_hour_usd"] == 15.0 and d["price_source"] == "catalog"


def test_fleet_cost_defaults_and_low_rates():
    p = pack_replicas(replicas=1, gpus_per_replica=1)
    # no output -> no finite $/token (inf), and no source by default
    c0 = fleet_cost(packing=p, price_per_gpu_hour_usd=3.0, output_tokens_per_s=0.0)
    assert c0.cost_per_million_output_tokens_usd == math.inf and c0.price_source == ""
    # half a token per second: 3 / (0.5 × 3600) × 1e6 = 1666.66…
    c1 = fleet_cost(packing=p, price_per_gpu_hour_usd=3.0, output_tokens_per_s=0.5)
    assert c1.cost_per_million_output_tokens_usd == pytest.approx(3 / 1800 * 1e6, rel=1e-12)


@pytest.mark.parametrize("sizes", [(2, 3, 8), (4, 5, 8), (3, 8), (1, 2, 4, 8)])
def test_every_replica_has_a_place_with_odd_node_sizes(sizes):
    # Whatever the node sizes, the rented nodes hold every replica whole: a node of s GPUs
    # holds s // g replicas of g GPUs, so sum(count × (s // g)) >= replicas (3 TP2 replicas).
    p = pack_replicas(replicas=3, gpus_per_replica=2, node_sizes=sizes)
    assert sum(c * (s // 2) for s, c in p.nodes) >= 3
