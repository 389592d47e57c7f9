"""Calibration of the performance model from measurements (docs/calibration.md).

- :mod:`.observations`: per-request facts from records (TTFT of lone prefills, TPOT with
  the batch and context each request decoded in), model-independent.
- :mod:`.predict`: the perf model's predictions for them and the error measures.
- :mod:`.fit`: a bounded, dependency-free search for ``perf.Efficiency`` parameters.
- :mod:`.kernel_bounds`: efficiency upper bounds from the kernel lab's measured peaks.
- :mod:`.calibration_file`: the calibration JSON (write, load into ``perf.Efficiency``).
"""

from __future__ import annotations

from .calibration_file import (
                           SCHEMA,
                           calibration_dict,
                           load_calibration,
                           write_calibration,
)
from .fit import (
                           DEFAULT_PARAMS,
                           EFFICIENCY_FIELDS,
                           CalibrationResult,
                           evaluate,
                           fit_efficiency,
)
from .kernel_bounds import EfficiencyBound, KernelBounds, efficiency_from_kernels
from .observations import (
                           DecodeObs,
                           Observations,
                           PrefillJoin,
                           PrefillObs,
                           merge_observations,
                           observations_from_records,
)
from .predict import Predictions, predict

__all__ = [
                           "DEFAULT_PARAMS",
                           "EFFICIENCY_FIELDS",
                           "SCHEMA",
                           "CalibrationResult",
                           "DecodeObs",
                           "EfficiencyBound",
                           "KernelBounds",
                           "Observations",
                           "Predictions",
                           "PrefillJoin",
                           "PrefillObs",
                           "calibration_dict",
                           "efficiency_from_kernels",
                           "evaluate",
                           "fit_efficiency",
                           "load_calibration",
                           "merge_observations",
                           "observations_from_records",
                           "predict",
                           "write_calibration",
]
