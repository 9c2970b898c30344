"""Small pieces every section uses: escaping, numbers and intervals, figures, key-value lists.

Every value that comes from the data passes through :func:`esc`; an undefined value is
written as such (``undefined``, ``n/a`` with its reason), never as an empty cell.
"""

from __future__ import annotations

import base64
import html
from typing import Any, Mapping

from pipeline.schema import SplitMetrics


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def pct(value: float | None) -> str:
    return "undefined" if value is None else f"{100 * value:.1f}%"


def ci_pct(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f"95% CI {100 * ci[0]:.1f}&ndash;{100 * ci[1]:.1f}%"


def num(value: float | None, digits: int = 3) -> str:
    return "undefined" if value is None else f"{value:.{digits}f}"


def ci_num(ci: tuple[float, float] | None, digits: int = 3) -> str:
    return "" if ci is None else f"95% CI {ci[0]:.{digits}f}&ndash;{ci[1]:.{digits}f}"


def value_or_na(m: SplitMetrics, name: str, digits: int = 3) -> str:
    """The measure ``name`` of ``m``, or "n/a" with the reason metrics.json gives for it."""
    value = getattr(m, name)
    if value is not None:
        return f"{value:.{digits}f}"
    reason = m.not_applicable.get(name, "")
    return f'<span title="{esc(reason)}">n/a</span>'


def img(png: bytes, alt: str) -> str:
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def kv(items: Mapping[str, Any]) -> str:
    return '<dl class="kv">' + "".join(
        f"<dt>{esc(k)}</dt><dd>{'<i>not recorded</i>' if v is None else esc(v)}</dd>" for k, v in items.items()
    ) + "</dl>"
