"""The loop's HTML report: one self-contained page (the curve PNG embedded) with the run's
arguments, per-arm figures, the live arms against the holdout, and every decision."""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any


def _num(value: Any) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:+.4f}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    buf.write("<table><tr>")
    buf.write("".join(f"<th>{html.escape(h)}</th>" for h in header))
    buf.write("</tr>")
    for row in rows:
        buf.write("<tr>" + "".join(f"<td>{_num(v)}</td>" for v in row) + "</tr>")
    buf.write("</table>")
    return buf.getvalue()


def write_html(summary: dict[str, Any], png: Path | None, path: Path) -> Path:
    """Write ``report.html`` for a loop summary (what loop.json holds)."""
    esc = html.escape
    args = summary["args"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Marquee online loop</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:.2em .5em;text-align:right}th{background:#eee}</style></head><body>",
        "<h1>Online loop</h1>",
        f"<p>{summary['interactions']} simulated interactions, seed {esc(str(args['seed']))}, "
        f"{esc(str(args['dataset']))} world ({esc(str(args['users']))} users), champion "
        f"v{summary['champion_version']} after {esc(str(args['champion_steps']))} steps.</p>",
    ]
    if png is not None and png.exists():
        data = base64.b64encode(png.read_bytes()).decode()
        parts.append(
            f"<img alt='return and acceptance per arm' src='data:image/png;base64,{data}'>"
        )
    per_arm = summary["per_arm"]
    parts.append("<h2>Per arm</h2>")
    parts.append(
        _table(
            ["arm", "slates", "mean return", "acceptance"],
            [[a, f["slates"], f["mean_return"], f["acceptance"]] for a, f in per_arm.items()],
        )
    )
    fifths = summary.get("fifths", {})
    if fifths:
        parts.append("<h2>First and last fifth of the slates</h2>")
        parts.append(
            _table(
                ["", "live arms", "holdout"],
                [
                    ["first fifth", fifths["live_first"], fifths["holdout_first"]],
                    ["last fifth", fifths["live_last"], fifths["holdout_last"]],
                ],
            )
        )
        parts.append(
            f"<p>Live arms' rise: {_num(fifths['live_rise'])}; their lift over the holdout in "
            f"the last fifth: {_num(fifths['live_lift_over_holdout_last'])}.</p>"
        )
    parts.append("<h2>Decisions</h2>")
    rows = []
    for d in summary["decisions"]:
        online = d.get("online") or {}
        primary = online.get("primary") or {}
        rows.append(
            [
                d["interactions"],
                d["action"],
                d["stage"],
                f"v{d['champion_version']}",
                f"v{d['challenger_version']}",
                primary.get("estimate", float("nan")),
                primary.get("p_value", float("nan")),
                d["reason"],
            ]
        )
    parts.append(
        _table(
            [
                "after",
                "action",
                "stage",
                "champion",
                "challenger",
                "difference",
                "p",
                "reason",
            ],
            rows,
        )
        if rows
        else "<p>none</p>"
    )
    parts.append("</body></html>")
    path.write_text("".join(parts))
    return path
