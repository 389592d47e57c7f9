"""Self-contained HTML pages: headings, text, tables, inline SVG figures, details.

``Page(title)`` collects blocks; ``render()`` returns one HTML5 document with its
CSS inline, figures as inline ``<svg>``, no script and no external resource (no
URL of any kind is emitted), so the file can be mailed, archived or opened
offline. All text passed in is HTML-escaped; only ``figure`` (an SVG string from
``charts``) and ``details``/``raw`` (HTML the caller built) are inserted as-is.
"""

from __future__ import annotations

import html
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

__all__ = ["Page", "write_html", "fmt_cell"]

_CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#ffffff;--alt:#f6f8fa;--good:#009E73;--bad:#D55E00;--warn:#B07800}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:var(--fg);background:var(--bg);
max-width:1100px;margin:2rem auto;padding:0 1.25rem;line-height:1.5;font-size:15px}
h1{font-size:1.7rem;margin:.2rem 0 1rem;border-bottom:1px solid var(--line);padding-bottom:.4rem}
h2{font-size:1.3rem;margin:2rem 0 .6rem}h3{font-size:1.1rem;margin:1.4rem 0 .4rem}h4{font-size:1rem}
p{margin:.5rem 0 .9rem}
table{border-collapse:collapse;margin:.6rem 0 1.2rem;font-size:14px;font-variant-numeric:tabular-nums}
caption{caption-side:top;text-align:left;font-weight:600;padding:.2rem 0 .4rem}
th,td{border:1px solid var(--line);padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:var(--alt)}td.num{text-align:right}tbody tr:nth-child(even){background:#fbfcfd}
figure{margin:1rem 0 1.6rem}figure svg{max-width:100%;height:auto;display:block}
figcaption{color:var(--muted);font-size:13px;margin-top:.3rem}
details{margin:.6rem 0 1rem;border:1px solid var(--line);border-radius:6px;padding:.4rem .8rem}
summary{cursor:pointer;font-weight:600}
.good{color:var(--good);font-weight:600}.bad{color:var(--bad);font-weight:600}.warn{color:var(--warn);font-weight:600}
.muted{color:var(--muted)}footer{color:var(--muted);font-size:12px;margin-top:3rem;border-top:1px solid var(--line);padding-top:.5rem}
pre,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
pre{background:var(--alt);padding:.6rem .8rem;overflow-x:auto;border-radius:6px}
"""

# Words that colour a table cell: verdicts of claims, SLO checks.
_CELL_CLASS = {"supported": "good", "pass": "good", "met": "good", "yes": "good", "true": "good",
               "rejected": "bad", "fail": "bad", "not met": "bad", "no": "bad", "false": "bad",
               "pending": "warn", "inconclusive": "warn"}


def fmt_cell(value: Any) -> tuple[str, bool]:
    """(text, is_number) for a table cell: floats to 4 significant digits, None → "–"."""
    if value is None:
        return "–", False
    if isinstance(value, bool):
        return ("yes" if value else "no"), False
    if isinstance(value, int):
        return f"{value:,}", True
    if isinstance(value, float):
        if math.isnan(value):
            return "–", False
        if math.isinf(value):
            return ("∞" if value > 0 else "−∞"), True
        a = abs(value)
        if a != 0 and (a >= 1e6 or a < 1e-3):
            return f"{value:.3e}", True
        return (f"{value:,.1f}" if a >= 1000 else f"{value:.4g}"), True
    return str(value), False


class Page:
    """An HTML report under construction; every method returns ``self`` for chaining."""

    def __init__(self, title: str, *, subtitle: str = "") -> None:
        self.title = title
        self._blocks: list[str] = [f"<h1>{html.escape(title)}</h1>"]
        if subtitle:
            self._blocks.append(f'<p class="muted">{html.escape(subtitle)}</p>')

    def heading(self, text: str, level: int = 2) -> "Page":
        level = min(max(int(level), 1), 6)
        self._blocks.append(f"<h{level}>{html.escape(text)}</h{level}>")
        return self

    def paragraph(self, text: str) -> "Page":
        self._blocks.append(f"<p>{html.escape(text)}</p>")
        return self

    def code(self, text: str) -> "Page":
        self._blocks.append(f"<pre><code>{html.escape(text)}</code></pre>")
        return self

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, caption: str = "") -> "Page":
        """A table; cells are escaped and formatted by ``fmt_cell``; verdict words
        (supported / rejected / pending, pass / fail) are coloured."""
        out = ["<table>"]
        if caption:
            out.append(f"<caption>{html.escape(caption)}</caption>")
        out.append("<thead><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in columns) + "</tr></thead><tbody>")
        for row in rows:
            cells = []
            for v in row:
                text, num = fmt_cell(v)
                cls = [c for c in (("num" if num else ""), _CELL_CLASS.get(text.strip().lower(), "")) if c]
                attr = f' class="{" ".join(cls)}"' if cls else ""
                cells.append(f"<td{attr}>{html.escape(text)}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</tbody></table>")
        self._blocks.append("".join(out))
        return self

    def figure(self, svg: str, caption: str = "") -> "Page":
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._blocks.append(f"<figure>{svg}{cap}</figure>")
        return self

    def details(self, summary: str, inner_html: str) -> "Page":
        """A collapsible block (no script needed); ``inner_html`` is inserted as-is."""
        self._blocks.append(f"<details><summary>{html.escape(summary)}</summary>{inner_html}</details>")
        return self

    def raw(self, inner_html: str) -> "Page":
        """Caller-built HTML, inserted as-is."""
        self._blocks.append(inner_html)
        return self

    def render(self, *, generated_at: datetime | None = None) -> str:
        when = (generated_at or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
        body = "\n".join(self._blocks)
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n"
                f"<footer>servelab · generated {html.escape(when)}</footer>\n</body></html>\n")


def write_html(page: Page, path: str | os.PathLike[str]) -> Path:
    """Render ``page`` to ``path`` (UTF-8), creating parent folders; returns the path."""
    from .._files import atomic_write_text
    return atomic_write_text(path, page.render())
