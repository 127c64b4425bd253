"""The scorecard as one self-contained HTML page (inline CSS, no scripts, nothing fetched)."""

from __future__ import annotations

import re
from html import escape

from driftloop.lens.document import STATUSES
from driftloop.lens.scorecard import Scorecard

COLOURS = {
    "realised": "#1a7f37",
    "partial": "#9a6700",
    "organisational": "#0969da",
    "not applicable": "#6e7781",
    "missing": "#cf222e",
}
LEGEND = {
    "realised": "code does it and a test proves it",
    "partial": "some of it is done",
    "organisational": "people decide it; a template helps",
    "not applicable": "does not apply, with the reason",
    "missing": "nothing does it yet",
}

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;
  margin:0;background:#f6f8fa}
main{max-width:1220px;margin:0 auto;padding:28px 32px 48px;background:#fff}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:36px 0 10px;padding-top:8px;
  border-top:1px solid #d0d7de}
p.lead{color:#59636e;margin:0 0 18px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:7px 9px;border-bottom:1px solid #d8dee4}
th{font-size:13px;color:#59636e;font-weight:600;background:#f6f8fa}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;width:82px}
.bar{display:flex;height:14px;border-radius:4px;overflow:hidden;background:#eaeef2;min-width:220px}
.bar span{display:block;height:100%}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;
  font-weight:600;white-space:nowrap}
.legend{display:flex;flex-wrap:wrap;gap:8px 18px;margin:12px 0 20px;font-size:13px;
  color:#59636e}
td.id{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:13px;white-space:nowrap;
  width:84px}
td.title{width:230px;font-weight:600}td.status{width:118px}
.refs{margin:6px 0 0;padding:0;list-style:none;font-family:ui-monospace,SFMono-Regular,Menlo,
  monospace;font-size:12px;color:#59636e;overflow-wrap:anywhere}
.refs li{padding-left:5.5em;text-indent:-5.5em}
.sub{display:flex;align-items:center;gap:12px;margin:0 0 12px;color:#59636e;font-size:13px}
.bar.small{min-width:0;width:240px;height:10px}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:90%;background:#eff2f5;
  padding:0 3px;border-radius:3px}
a{color:#0969da;text-decoration:none}
.refs li::before{content:attr(data-kind);display:inline-block;width:5.5em;text-indent:0;
  color:#8c959f}
.why{color:#59636e}
tr.total td{font-weight:700}
"""


def _text(text: str) -> str:
    """Escaped ``text`` with its `backticked` parts as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text))


def _breakable(ref: str) -> str:
    """An escaped reference that may wrap after ``/``, ``::`` and ``_`` (not inside a word)."""
    return escape(ref).replace("/", "/<wbr>").replace("_", "_<wbr>").replace("::", "::<wbr>")


def _badge(status: str) -> str:
    return f'<span class="badge" style="background:{COLOURS[status]}">{escape(status)}</span>'


def _bar(counts: dict[str, int], css: str = "bar") -> str:
    total = sum(counts.values()) or 1
    parts = "".join(
        f'<span style="width:{100 * counts[s] / total:.2f}%;background:{COLOURS[s]}" '
        f'title="{escape(s)}: {counts[s]}"></span>'
        for s in STATUSES
        if counts[s]
    )
    return f'<div class="{css}">{parts}</div>'


def _summary(card: Scorecard) -> list[str]:
    head = "".join(f'<th class="n">{escape(s)}</th>' for s in STATUSES)
    out = [f'<table><tr><th>pillar</th>{head}<th class="n">total</th><th>share</th></tr>']
    for pillar in card.pillars():
        cells = "".join(f'<td class="n">{pillar.counts[s]}</td>' for s in STATUSES)
        out.append(
            f'<tr><td><a href="#{pillar.prefix}">{escape(pillar.name)} ({pillar.prefix})</a></td>'
            f"{cells}"
            f'<td class="n">{pillar.total}</td><td>{_bar(pillar.counts)}</td></tr>'
        )
    totals = card.totals()
    cells = "".join(f'<td class="n">{totals[s]}</td>' for s in STATUSES)
    out.append(
        f'<tr class="total"><td>all</td>{cells}<td class="n">{sum(totals.values())}</td>'
        f"<td>{_bar(totals)}</td></tr></table>"
    )
    return out


def _refs(kind: str, refs: list[str]) -> str:
    return "".join(f'<li data-kind="{kind}">{_breakable(r)}</li>' for r in refs)


def render_html(card: Scorecard) -> str:
    """The page: counts per pillar with a bar each, then every practice with its evidence, the
    code that realises it and the tests that prove it."""
    legend = "".join(f"<span>{_badge(s)} {escape(LEGEND[s])}</span>" for s in STATUSES)
    body = [
        "<h1>Machine Learning Lens scorecard</h1>",
        f'<p class="lead">driftloop against the {len(card.rows)} best practices of the '
        "Well-Architected Machine Learning Lens, from <code>lens.yaml</code> "
        "(checked by <code>driftloop lens check</code>).</p>",
        f'<div class="legend">{legend}</div>',
        *_summary(card),
    ]
    for pillar in card.pillars():
        counts = " · ".join(f"{pillar.counts[s]} {s}" for s in STATUSES if pillar.counts[s])
        body.append(
            f'<h2 id="{pillar.prefix}">{escape(pillar.name)} ({pillar.prefix})</h2>'
            f'<div class="sub">{_bar(pillar.counts, "bar small")}<span>{counts}</span></div>'
        )
        body.append("<table><tr><th>id</th><th>practice</th><th>status</th><th>evidence</th></tr>")
        for practice, entry in card.rows:
            if practice.prefix != pillar.prefix:
                continue
            extra = ""
            if entry.reason:
                extra += f' <span class="why">Not applicable: {_text(entry.reason)}</span>'
            refs = _refs("template", [entry.template] if entry.template else [])
            refs += _refs("code", entry.code) + _refs("test", entry.tests)
            refs_html = f'<ul class="refs">{refs}</ul>' if refs else ""
            body.append(
                f'<tr id="{practice.id}"><td class="id">{practice.id}</td>'
                f'<td class="title">{escape(practice.title)}</td>'
                f'<td class="status">{_badge(entry.status)}</td>'
                f"<td>{_text(entry.evidence)}{extra}{refs_html}</td></tr>"
            )
        body.append("</table>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>driftloop: Machine Learning Lens scorecard</title>"
        f"<style>{CSS}</style></head><body><main>\n" + "\n".join(body) + "\n</main></body></html>\n"
    )
