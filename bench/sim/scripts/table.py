#!/usr/bin/env python3
"""Turns JSON-lines reports from shoal-sim into a Markdown table.

Usage: table.py reports.jsonl
"""
import json
import sys

cols = [
    ("scenario", lambda r: r["scenario"]),
    ("N", lambda r: r["agents"]),
    ("origins", lambda r: r["origins"]),
    ("piece MiB", lambda r: r["piece_bytes"] >> 20),
    ("pipeline", lambda r: r["tunables"]["pipeline"]),
    ("K", lambda r: r["tunables"]["handout"]),
    ("slots", lambda r: r["tunables"]["unchoke_slots"]),
    ("announce s", lambda r: r["tunables"]["announce_s"]),
    ("peers", lambda r: r["tunables"]["max_peers"]),
    ("p50/bound", lambda r: f"{r['ratio_p50']:.2f}"),
    ("p99/bound", lambda r: f"{r['p99_s'] / r['bound_s']:.2f}"),
    ("max/bound", lambda r: f"{r['ratio_max']:.2f}"),
    ("origin egress (F)", lambda r: f"{r['origin_egress_f']:.2f}"),
    ("done/left/stuck", lambda r: f"{r['completed']}/{r['departed']}/{r['incomplete']}"),
    ("events", lambda r: f"{r['events'] / 1e6:.1f} M"),
    ("wall s", lambda r: f"{r['wall_s']:.0f}"),
]

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
print("| " + " | ".join(c[0] for c in cols) + " |")
print("|" + "---|" * len(cols))
for r in rows:
    print("| " + " | ".join(str(c[1](r)) for c in cols) + " |")
