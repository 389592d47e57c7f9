"""GPU catalog: datasheet anchors, dense-vs-sparse, aliases, errors."""

from __future__ import annotations

import pytest

from servelab.catalog import get_gpu, list_gpus
from servelab.errors import ConfigError
from servelab.units import GB, TFLOP

IDS = ["a10g", "l4", "l40s", "a100-40g", "a100-80g", "h100-sxm", "h100-pcie", "h200", "b200", "mi300x"]


def test_all_required_gpus_present_in_order() -> None:
    assert [g.name for g in list_gpus()] == IDS


@pytest.mark.parametrize("alias,canonical", [
    ("h100", "h100-sxm"), ("H100_SXM", "h100-sxm"), ("a100", "a100-80g"), ("h200-sxm", "h200"),
    ("A100-40GB", "a100-40g"), ("MI300X", "mi300x"),
])
def test_aliases(alias: str, canonical: str) -> None:
    assert get_gpu(alias).name == canonical


def test_unknown_gpu_lists_known_ids() -> None:
    with pytest.raises(ConfigError) as e:
        get_gpu("h1000")
    msg = str(e.value)
    assert "'h1000'" in msg
    for gid in IDS:
        assert gid in msg


@pytest.mark.parametrize("gid,mem_gb,bw_gb_s,bf16_tf,fp8_tf", [
    # Datasheet figures (sparse figures halved): see each entry's `source`.
    ("l4", 24, 300, 121, 242.5),          # L4: 242 / 485 TFLOPS with sparsity
    ("l40s", 48, 864, 362.05, 733),
    ("a100-80g", 80, 2039, 312, None),    # A100 has no FP8
    ("h100-sxm", 80, 3350, 989.4, 1978.9),  # H100 SXM: 1,979 / 3,958 with sparsity
    ("h100-pcie", 80, 2000, 756.5, 1513),
    ("h200", 141, 4800, 989.4, 1978.9),
    ("b200", 180, 8000, 2250, 4500),
    ("mi300x", 192, 5300, 1307.4, 2614.9),
])
def test_datasheet_anchors(gid: str, mem_gb: float, bw_gb_s: float, bf16_tf: float, fp8_tf: float | None) -> None:
    g = get_gpu(gid)
    assert g.memory_bytes == mem_gb * GB
    assert g.hbm_bytes_per_s == bw_gb_s * GB
    assert g.flops("bf16") == pytest.approx(bf16_tf * TFLOP)
    assert g.flops("fp16") == g.flops("bf16")
    if fp8_tf is None:
        with pytest.raises(ConfigError, match="fp8"):
            g.flops("fp8")
    else:
        assert g.flops("fp8") == pytest.approx(fp8_tf * TFLOP)


def test_fp4_only_on_blackwell() -> None:
    assert get_gpu("b200").flops("fp4") == pytest.approx(9000 * TFLOP)  # DGX B200: 72 PF FP4 dense / 8
    for g in list_gpus():
        if g.name != "b200":
            assert "fp4" not in g.peak_flops


def test_a10g_has_no_invented_tensor_rate() -> None:
    g = get_gpu("a10g")
    with pytest.raises(ConfigError, match="a10g"):
        g.flops("bf16")
    assert "not found" in g.notes or "absent" in g.notes.lower()


def test_interconnect_is_per_direction() -> None:
    # NVLink 4 "900 GB/s" is the bidirectional total -> 450 GB/s each way.
    assert get_gpu("h100-sxm").interconnect_bytes_per_s == 450 * GB
    assert get_gpu("b200").interconnect_bytes_per_s == 900 * GB
    assert get_gpu("l40s").interconnect_bytes_per_s == 0  # PCIe only
    assert get_gpu("h100-sxm").pcie_bytes_per_s == 64 * GB and get_gpu("l4").pcie_gen == 4


def test_every_gpu_has_sources_and_sane_ratios() -> None:
    for g in list_gpus():
        assert g.source, g.name
        if g.price_per_hour_usd:
            assert g.price_source and len(g.price_date) == 10, g.name
        # dense fp8 = 2x dense bf16 on every chip that has both (tensor-core generation rule)
        if "fp8" in g.peak_flops:
            assert g.peak_flops["fp8"] == pytest.approx(2 * g.peak_flops["bf16"], rel=0.02)
        assert g.gpus_per_node in (1, 2, 4, 8)


def test_reported_memory_vs_datasheet() -> None:
    from servelab.units import MiB

    # nvidia-smi memory.total from public run logs: "NVIDIA H100 80GB HBM3, 81559 MiB",
    # "NVIDIA H200, 143771 MiB": binary MiB, a bit above the decimal datasheet figure.
    h100, h200 = get_gpu("h100-sxm"), get_gpu("h200")
    assert h100.reported_memory_bytes == 81559 * MiB
    assert h200.reported_memory_bytes == 143771 * MiB
    assert h100.reported_memory_bytes / h100.memory_bytes == pytest.approx(1.069, abs=0.001)
    assert get_gpu("mi300x").reported_memory_bytes == 0  # not sourced


def test_public_api_is_all() -> None:
    import servelab.catalog as catalog

    for name in catalog.__all__:
        assert hasattr(catalog, name), name
    public = {n for n in dir(catalog) if not n.startswith("_")}
    modules = {"gpus", "models", "workloads", "hf_config", "params", "requests", "slo", "lengths", "ratecurve",
               "prices"}
    assert public - modules - {"annotations"} == set(catalog.__all__)
