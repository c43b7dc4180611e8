"""Which mappings make up a process's resident memory: /proc/PID/smaps summed per file.

A worker's RSS is its heap (anonymous pages) plus every page of a mapped file it has touched
(the graph's and the bundle's ``.npy`` arrays, libraries). smaps_rollup gives the totals; this
gives them per mapped file, largest first, so a whole-array read shows up as a file whose
resident size is its full size:

    python -m experiments.bench.smaps PID [--top 40] [--json]

``scale.py --workers 1 --smaps-top N`` takes the same listing of each served worker.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tyro

FIELDS = ("Rss", "Pss", "Anonymous", "Private_Clean", "Private_Dirty", "Shared_Clean")


def per_mapping(pid: int | str = "self") -> dict[str, dict[str, int]]:
    """kB of each of ``FIELDS`` per mapped path (anonymous regions under ``[anon]``, the brk
    heap as ``[heap]``), summed over all the path's mappings, plus ``size_kb`` (mapped size)."""
    out: dict[str, dict[str, int]] = {}
    cur: dict[str, int] | None = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if not head:
            continue
        if "-" in head[0] and not head[0].endswith(":") and len(head) >= 5:
            name = head[5].strip() if len(head) == 6 else "[anon]"
            cur = out.setdefault(name, dict.fromkeys(("size_kb", *FIELDS), 0))
        elif cur is not None and head[0].endswith(":") and len(head) >= 2:
            key = head[0][:-1]
            if key == "Size":
                cur["size_kb"] += int(head[1])
            elif key in FIELDS:
                cur[key] += int(head[1])
    return out


def top_mappings(pid: int | str = "self", top: int = 40) -> dict[str, Any]:
    """The ``top`` mappings by RSS in MB, and totals by kind: anonymous, files under each
    folder that holds ``.npy`` arrays (graph data, bundle), libraries and the rest."""
    rows = per_mapping(pid)
    mb = 1024.0
    by_kind: dict[str, dict[str, float]] = {}
    for path, r in rows.items():
        if path.startswith("["):
            kind = "anonymous " + path
        elif path.endswith(".npy"):
            kind = "npy " + os.path.dirname(path)
        elif ".so" in os.path.basename(path):
            kind = "libraries"
        else:
            kind = "other files"
        k = by_kind.setdefault(kind, {"rss_mb": 0.0, "pss_mb": 0.0, "anonymous_mb": 0.0})
        k["rss_mb"] += r["Rss"] / mb
        k["pss_mb"] += r["Pss"] / mb
        k["anonymous_mb"] += r["Anonymous"] / mb
    ranked = sorted(rows.items(), key=lambda kv: -kv[1]["Rss"])[:top]
    return {
        "by_kind": {
            k: {f: round(v, 1) for f, v in d.items()}
            for k, d in sorted(by_kind.items(), key=lambda kv: -kv[1]["rss_mb"])
        },
        "top": [
            {
                "path": path,
                "size_mb": round(r["size_kb"] / mb, 1),
                "rss_mb": round(r["Rss"] / mb, 1),
                "pss_mb": round(r["Pss"] / mb, 1),
                "anonymous_mb": round(r["Anonymous"] / mb, 1),
            }
            for path, r in ranked
        ],
    }


@dataclass
class Args:
    """Settings (every one is a command-line flag)."""

    pid: int
    top: int = 40
    json: bool = False


def main(args: Args) -> dict[str, Any]:
    result = top_mappings(args.pid, args.top)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for kind, m in result["by_kind"].items():
            print(f"{kind}: {json.dumps(m)}")
        for row in result["top"]:
            print(json.dumps(row))
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
