"""One self-contained HTML page a clinician can read: results first, methods and provenance after.

No scripts, no external fonts or stylesheets, figures embedded as base64 PNG: the file
can be e-mailed, archived with the study, or opened on an offline hospital workstation.
Every value that comes from the data (column names, subgroup levels, paths, params) is
HTML-escaped (:func:`pipeline.report.html.markup.esc`). One module per part of the page:
``results``, ``calibration``, ``external``, ``comparisons``, ``methods``, ``provenance``; ``page``
puts them in order, ``markup`` and ``style`` are shared.
"""

from __future__ import annotations

from pipeline.report.html.page import render_html

__all__ = ["render_html"]
