"""The report's stylesheet: one inline block, no external fonts, readable on paper too."""

from __future__ import annotations


CSS = """
:root { --ink:#1d2733; --muted:#5b6776; --line:#d7dde4; --accent:#1f5fa8; --warn:#8a1c1c; --warnbg:#fdecec;
        --note:#7a5b00; --notebg:#fff6da; }
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink);
       margin: 0; background: #f5f7fa; line-height: 1.45; font-size: 15px; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 18px 0 6px; }
.sub { color: var(--muted); margin: 0 0 14px; overflow-wrap: anywhere; }
.banner { border-left: 6px solid var(--warn); background: var(--warnbg); color: var(--warn); padding: 10px 14px;
          margin: 10px 0; font-weight: 600; }
.note { border-left: 6px solid #d4a400; background: var(--notebg); color: var(--note); padding: 8px 14px; margin: 8px 0; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; margin: 14px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
.card .label { color: var(--muted); font-size: 13px; }
.card .value { font-size: 24px; font-weight: 700; color: var(--accent); }
.card .ci { color: var(--muted); font-size: 13px; }
.lead { font-size: 15.5px; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 14px; }
th, td { border: 1px solid var(--line); padding: 5px 10px; text-align: right; vertical-align: top; }
th { background: #eef2f6; }
td.l, th.l { text-align: left; }
td small { white-space: nowrap; }
td.undef { color: var(--muted); font-style: italic; text-align: left; }
.figs { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; align-items: start; }
.figs.gallery { grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); }
figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 8px; }
figure img { width: 100%; height: auto; display: block; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; }
.cm { display: inline-block; margin-right: 28px; vertical-align: top; }
pre { background: #f3f5f8; border: 1px solid var(--line); padding: 10px; font-size: 12.5px; overflow-x: auto;
      white-space: pre-wrap; overflow-wrap: anywhere; }
code, .mono { font-family: "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12.5px; overflow-wrap: anywhere; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 3px 16px; margin: 6px 0 12px; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
details summary { cursor: pointer; color: var(--accent); margin: 6px 0; }
.methods li { margin-bottom: 4px; }
footer { color: var(--muted); font-size: 12.5px; margin-top: 30px; }
@media print { body { background: #fff; } main { padding: 0; } h2 { break-after: avoid; } figure, table { break-inside: avoid; } }
"""
