"""Calibration on run folders that cannot pin its parameters down."""

from __future__ import annotations

from servelab.calibrate import fit_efficiency
from servelab.calibrate.observations import observations_from_records
from servelab.catalog import get_gpu, get_model
from servelab.perf import Deployment
from servelab.records import RequestRecord

DEP = Deployment(model=get_model("llama-3.1-8b"), gpu=get_gpu("h100-sxm"))


def _lone(i: int, prompt: int, out: int) -> RequestRecord:
    # Requests 10 s apart: each prefills alone and decodes alone (batch 1).
    t = 10.0 * i
    return RequestRecord(id=str(i), arrival_s=t, input_tokens=prompt, output_tokens=out,
                         first_token_s=t + 0.03, finish_s=t + 0.03 + (out - 1) * 0.008)


def test_one_operating_point_for_three_parameters_is_flagged() -> None:
    # Ten identical requests: one TTFT condition and one TPOT condition — two numbers
    # cannot determine memory, compute and step_overhead_s; the result must say so.
    obs = observations_from_records([_lone(i, 512, 64) for i in range(10)])
    res = fit_efficiency(obs, DEP, holdout_fraction=0.0)
    assert len(res.params) == 3
    assert any("underdetermined" in n for n in res.notes), res.notes


def test_several_operating_points_are_not_flagged() -> None:
    recs = [_lone(i, p, o) for i, (p, o) in enumerate(
        [(128, 32), (512, 64), (2048, 128), (4096, 256), (1024, 16), (8000, 64)])]
    res = fit_efficiency(observations_from_records(recs), DEP, holdout_fraction=0.0)
    assert not any("underdetermined" in n for n in res.notes), res.notes


def test_vllm_dtype_spellings_in_run_config_are_understood() -> None:
    # vLLM's own values for --dtype and --kv-cache-dtype (engine args): "auto",
    # "bfloat16", "float16", "half", "fp8_e4m3", "fp8_e5m2".
    from servelab.calibrate.runs import deployment_hints
    hints = deployment_hints([{"model": "llama-3.1-8b", "dtype": "bfloat16", "kv_cache_dtype": "auto"}])
    assert hints.get("weight_dtype") == "bf16"
    assert "kv_dtype" not in hints          # "auto": the model's dtype, i.e. the default
    hints = deployment_hints([{"dtype": "half", "kv_cache_dtype": "fp8_e4m3"}])
    assert hints == {"weight_dtype": "fp16", "kv_dtype": "fp8"}
    assert deployment_hints([{"dtype": "auto", "kv_cache_dtype": "fp8_e5m2"}]) == {"kv_dtype": "fp8"}


def test_unreadable_calibration_files_are_config_errors(tmp_path) -> None:
    import pytest
    from servelab.calibrate import load_calibration
    from servelab.errors import ConfigError
    binary = tmp_path / "cal.json"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="cal.json"):
        load_calibration(binary)
    with pytest.raises(ConfigError, match=str(tmp_path.name)):
        load_calibration(tmp_path)            # a folder, not a file


def test_run_folder_with_broken_meta_is_a_config_error(tmp_path) -> None:
    import pytest
    from servelab.calibrate.runs import observations_from_runs
    from servelab.errors import ConfigError
    for name, text in (("badjson", "{"), ("badmeta", '{"run_id": "x"}')):
        d = tmp_path / name
        d.mkdir()
        (d / "meta.json").write_text(text)
        with pytest.raises(ConfigError, match=name):
            observations_from_runs([d])
