#!/usr/bin/env python3
"""Plots time against N from the runs of one sweep (their --label):
Shoal, aria2, client-server and the P2P lower bound. Writes the data as a
table and has gnuplot (Debian gnuplot-nox) draw the PNG.

usage: plot.py RESULTS.jsonl LABEL OUT.png
"""

import json
import os
import subprocess
import sys
import tempfile


def main(results, label, out):
    rows = {}
    with open(results) as f:
        for line in f:
            run = json.loads(line)
            if run.get("label") == label:
                rows[run["agents"]] = run  # the latest run of each N wins
    if not rows:
        sys.exit(f"no runs labelled {label!r} in {results}")
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as data:
        data.write("# N bound shoal aria2 client_server\n")
        for n in sorted(rows):
            run = rows[n]
            cells = [run["bound"], run.get("shoal", {}).get("total", "NaN"),
                     run.get("aria2", {}).get("total", "NaN"), run["client_server"]]
            data.write(f"{n} " + " ".join(str(c) for c in cells) + "\n")
    first = rows[min(rows)]
    title = (f"{first['size'] >> 20} MiB to N agents, uploads {first['origin_up_mbit']:g} Mbit/s "
             f"(origin) / {first['agent_up_mbit']:g} Mbit/s (agents)")
    script = f"""
set terminal pngcairo size 900,560 font ",11"
set output "{out}"
set title "{title}"
set xlabel "N (agents)"
set ylabel "seconds until every agent has the blob"
set logscale xy 2
set xtics ({", ".join(str(n) for n in sorted(rows))})
set key top left
set grid
plot "{data.name}" using 1:5 with linespoints lw 2 title "client-server N*F/u_s", \\
     "{data.name}" using 1:4 with linespoints lw 2 title "aria2 + opentracker", \\
     "{data.name}" using 1:3 with linespoints lw 2 title "Shoal", \\
     "{data.name}" using 1:2 with lines dt 2 lw 2 title "P2P lower bound"
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    os.unlink(data.name)
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
