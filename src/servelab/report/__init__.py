"""Reports: terminal tables (rich) and self-contained HTML pages with SVG charts.

- ``charts``: dependency-free SVG — ``line_chart``, ``scatter_chart``,
  ``bar_chart`` (stacked), ``interval_chart`` (estimates with CIs vs a threshold).
- ``html``: ``Page`` (headings, paragraphs, tables, figures, details) rendered to
  one offline HTML file by ``write_html``.
- ``tables``: ``summary_table`` for a ``metrics.summarize`` dict, ``kv_table``.
- ``runs``: ready-made figures and a page for one run (records → plots).
- ``inputs``: runs read back for ``report`` and ``compare`` (folders, records files,
  vLLM/guidellm results); ``compare``: runs side by side with bootstrap CIs.
- ``*_text``: each command's terminal output (``estimate_text``, ``sim_text``,
  ``bench_text``, ``compare_text``, ``catalog_text``, ``ledger_text``,
  ``calibration_text``, ``kernels_text``, ``watch_text``, ``plan_text``, ``pd_text``,
  ``day_text``); ``*_page``: the HTML pages of plans and decisions.

Only this package and ``cli`` print or render; the core never imports it.
"""

from __future__ import annotations

from .charts import Series, bar_chart, interval_chart, line_chart, scatter_chart, svg_document
from .html import Page, fmt_cell, write_html
from .runs import cdf_series, run_figures, run_page
from .tables import kv_table, latency_rows, overview_rows, summary_table

__all__ = [
    "Series", "line_chart", "scatter_chart", "bar_chart", "interval_chart", "svg_document",
    "Page", "write_html", "fmt_cell", "summary_table", "kv_table", "latency_rows", "overview_rows",
    "run_figures", "run_page", "cdf_series",
]
