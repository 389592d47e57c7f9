import pytest

from servelab import units


def test_decimal_and_binary_prefixes_differ():
    # 80 GB (datasheet, decimal) is 74.5 GiB
    assert 80 * units.GB / units.GiB == pytest.approx(74.505805969, rel=1e-9)
    assert units.TB == 1e12 and units.TiB == 1099511627776


def test_dtype_bytes_and_error_names_valid():
    assert units.dtype_bytes("bf16") == 2 and units.dtype_bytes("int4") == 0.5
    with pytest.raises(ValueError, match="unknown dtype 'bf17'; known: fp32"):
        units.dtype_bytes("bf17")


def test_formatting():
    assert units.fmt_bytes(80e9) == "80.0 GB"
    assert units.fmt_seconds(0.0123) == "12.3 ms"
    assert units.fmt_seconds(45e-6) == "45 µs"
