"""The access-review report as one self-contained HTML file: template, charts, print styles.

Everything P0 sent is attacker-typed text: it is made visible (``for_people`` escapes bidi
controls and other hidden code points) and then HTML-escaped by the template engine's
autoescape; nothing from P0 becomes a link, an attribute name or markup. Charts are
Vega-Lite specifications rendered to SVG here, inlined, with no script, font or URL.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import altair as alt
import jinja2
import vl_convert
from markupsafe import escape

from p0_receiver.entrypoints.cli.output import for_people

# Inline SVG in HTML needs no namespace declarations; without them the file names no URL.
_XMLNS = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')
_LABEL_CHARS = 48


def _label(text: str) -> str:
    shown = for_people(text)
    return shown if len(shown) <= _LABEL_CHARS else shown[: _LABEL_CHARS - 1] + "…"


def _data(values: list[dict[str, Any]]) -> Any:
    return alt.Data(values=values)  # type: ignore[no-untyped-call]


def _svg(chart: alt.TopLevelMixin) -> str:
    svg = vl_convert.vegalite_to_svg(chart.to_dict())
    return _XMLNS.sub("", svg)


def _empty(title: str) -> str:
    return f'<p class="empty">{escape(title)}: nothing in this period</p>'


def charts(series: Mapping[str, list[dict[str, Any]]]) -> dict[str, str]:
    """The four charts as inline SVG (or a line saying there is nothing to draw)."""
    size = {"width": 420, "height": 180}
    drawn: dict[str, str] = {}
    grants = series["grantsPerWeek"]
    drawn["grantsPerWeek"] = (
        _svg(
            alt.Chart(
                _data([{**g, "access": _label(g["access"])} for g in grants]),
                title="Grants per week by access type",
            )
            .mark_bar()
            .encode(
                x=alt.X("week:O", title="week of"),
                y=alt.Y("grants:Q", title="grants"),
                color=alt.Color("access:N", title="access"),
            )
            .properties(**size)
        )
        if grants
        else _empty("Grants per week")
    )
    buckets = series["timeToApprove"]
    drawn["timeToApprove"] = (
        _svg(
            alt.Chart(_data(buckets), title="Time to approve")
            .mark_bar()
            .encode(
                x=alt.X("bucket:O", title="time from request to approval", sort=None),
                y=alt.Y("requests:Q", title="requests"),
            )
            .properties(**size)
        )
        if any(bucket["requests"] for bucket in buckets)
        else _empty("Time to approve")
    )
    top = series["topResources"]
    drawn["topResources"] = (
        _svg(
            alt.Chart(
                _data([{**t, "resource": _label(t["resource"])} for t in top]),
                title="Top resources by grants",
            )
            .mark_bar()
            .encode(
                y=alt.Y("resource:N", title=None, sort="-x"),
                x=alt.X("grants:Q", title="grants"),
            )
            .properties(width=420, height=max(60, 22 * len(top)))
        )
        if top
        else _empty("Top resources")
    )
    found = series["findingsPerWeek"]
    drawn["findingsPerWeek"] = (
        _svg(
            alt.Chart(_data(found), title="Findings per week")
            .mark_bar()
            .encode(
                x=alt.X("week:O", title="week of"),
                y=alt.Y("findings:Q", title="findings"),
                color=alt.Color("rule:N", title="rule"),
            )
            .properties(**size)
        )
        if found
        else _empty("Findings per week")
    )
    return drawn


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="referrer" content="no-referrer">
<title>Access review {{ period.from }} to {{ period.to }}</title>
<style>
  body { font: 13px/1.4 system-ui, sans-serif; margin: 24px; color: #1b1f24; }
  h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
  h3 { font-size: 14px; margin: 16px 0 6px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { border: 1px solid #d0d7de; padding: 3px 6px; text-align: left; vertical-align: top; }
  th { background: #f6f8fa; }
  td.text { white-space: pre-wrap; overflow-wrap: anywhere; max-width: 28em; }
  .meta td:first-child { font-weight: 600; width: 14em; }
  .ok { color: #116329; font-weight: 600; } .bad { color: #a40e26; font-weight: 600; }
  .figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(11em, 1fr)); gap: 8px; }
  .figure { border: 1px solid #d0d7de; border-radius: 6px; padding: 8px; }
  .figure b { display: block; font-size: 18px; }
  .charts { display: flex; flex-wrap: wrap; gap: 16px; }
  .sev-high { color: #a40e26; } .sev-medium { color: #9a6700; } .sev-low { color: #0550ae; }
  .empty { color: #57606a; font-style: italic; }
  tr:target { background: #fff8c5; }
  @media print {
    body { margin: 0; font-size: 9px; }
    a { color: inherit; text-decoration: none; }
    .charts { page-break-inside: avoid; }
    tr, .figure, svg { break-inside: avoid; }
    h2 { break-after: avoid; }
    @page { size: A4 landscape; margin: 12mm; }
  }
</style>
</head>
<body>
<h1>Access review</h1>
<table class="meta" id="meta">
<tr><td>Period (P0 time, UTC)</td><td>{{ period.from }} to {{ period.to }} (end exclusive)</td></tr>
<tr><td>Project</td><td>{{ project|t }}</td></tr>
<tr><td>Collection</td><td>{{ collection|t }}{% if notifier %} (notifier {{ notifier|t }}){% endif %}</td></tr>
<tr><td>Generated</td><td>{{ generated }} by p0-receiver {{ version }}</td></tr>
<tr><td>Thresholds</td><td>{{ thresholds|t }}</td></tr>
</table>

<h2>Integrity</h2>
<p id="integrity" class="{{ 'ok' if integrity.ok else 'bad' }}">{{ integrity.statement|t }}</p>
{% if integrity.failures %}<table><tr><th>eventId</th><th>problem</th></tr>
{% for failure in integrity.failures %}<tr><td>{{ failure.eventId|t }}</td><td class="text">{{ failure.problem|t }}</td></tr>
{% endfor %}</table>{% endif %}

<h2>Summary</h2>
<div class="figures" id="figures">
{% for figure in figures %}<div class="figure" data-figure="{{ figure.key }}"><b>{{ figure.value }}</b>{{ figure.label }}</div>
{% endfor %}</div>

<h2>Charts</h2>
<div class="charts" id="charts">
{% for name, svg in charts.items() %}<figure data-chart="{{ name }}">{{ svg|safe }}</figure>
{% endfor %}</div>

<h2>Findings</h2>
<div id="findings">
{% for group in findings %}<section data-rule="{{ group.rule }}">
<h3 class="sev-{{ group.severity }}">{{ group.rule }} ({{ group.severity }}): {{ group.count }}</h3>
<p>{{ group.rationale }}</p>
{% if group.count %}<ul>{% for item in group.entries %}<li><a href="#row-{{ item.row }}">{{ item.objectId|t }}</a>: {{ item.principal|t }} on {{ item.permission|t }}, approved by {{ item.approver|t }}: {{ item.detail|t }}</li>
{% endfor %}</ul>{% else %}<p class="empty">none</p>{% endif %}
</section>
{% endfor %}</div>

<h2>Requests and pre-approvals</h2>
<table id="rows">
<tr>{% for column in columns %}<th>{{ column }}</th>{% endfor %}</tr>
{% for row in rows %}<tr id="row-{{ row.index }}" data-object="{{ row.cells.objectId|t }}">{% for column in columns %}<td class="text">{{ row.cells[column]|t }}</td>{% endfor %}</tr>
{% endfor %}</table>
</body>
</html>
"""  # noqa: E501 (HTML lines)


def _text(value: Any) -> str:
    """Any value as visible text: None as nothing, hidden code points as escapes."""
    if value is None:
        return ""
    return for_people(str(value))


def environment() -> jinja2.Environment:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["t"] = _text
    return env


def render_html(context: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """The report's text piece by piece: rows are consumed as they are written."""
    template = environment().from_string(_TEMPLATE)
    return template.generate(**context, rows=rows)
