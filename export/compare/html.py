"""The comparison as one self-contained HTML file: sortable, filterable table and size/quality plots.

Everything is inlined (styles, script, the report's JSON), so the file works opened from disk with no network.
The page is drawn in the browser from the JSON of :class:`~modelpress.export.compare.schema.Report`, so any
saved ``--json`` report renders the same way without measuring again.
"""

from __future__ import annotations

import html
from importlib.resources import files
from string import Template

from modelpress.export.compare.schema import Report


def _asset(name: str) -> str:
    return (files("modelpress.export.compare") / "assets" / name).read_text(encoding="utf-8")


def script_json(text: str) -> str:
    """JSON made safe inside ``<script>``: no ``</script>``, ``<!--`` or U+2028/9 can end or bend the element."""
    return (
        text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    )  # fmt: skip


def to_html(report: Report) -> str:
    """The report as one HTML document (a ``str``), with no external reference."""
    return Template(_asset("report.html")).substitute(
        title=html.escape(report.repository),
        repository=html.escape(report.repository),
        schema_version=report.schema_version,
        css=_asset("report.css"),
        js=_asset("report.js"),
        data=script_json(report.model_dump_json()),
    )
