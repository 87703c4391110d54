#!/usr/bin/env python3
"""Plots completion time against N (log-log) from shoal-sim JSON reports:
p50, p99 and the slowest agent, next to the P2P lower bound and
client-server. Writes the data as a table and has gnuplot (Debian
gnuplot-nox) draw the PNG.

usage: plot_n.py REPORTS.jsonl OUT.png
    REPORTS.jsonl: one `shoal-sim --json` report per line, flash crowd, one
    per N (the last report of each N wins).
"""

import json
import os
import subprocess
import sys
import tempfile


def main(reports, out):
    rows = {}
    with open(reports) as f:
        for line in f:
            if line.strip():
                report = json.loads(line)
                rows[report["agents"]] = report
    if not rows:
        sys.exit(f"no reports in {reports}")
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as data:
        data.write("# N bound p50 p99 max client_server\n")
        for n in sorted(rows):
            r = rows[n]
            cells = [r["bound_s"], r["p50_s"], r["p99_s"], r["max_s"], r["client_server_s"]]
            data.write(f"{n} " + " ".join(f"{c:.4f}" for c in cells) + "\n")
    first = rows[min(rows)]
    t = first["tunables"]
    title = (f"shoal-sim flash crowd: {first['f_bytes'] >> 20} MiB to N agents, "
             f"{first['origins']} origins, pipeline {t['pipeline']}, {t['unchoke_slots']} slots, "
             f"max {t.get('max_unchokers', '?')} unchokers")
    script = f"""
set terminal pngcairo size 900,560 font ",11"
set output "{out}"
set title "{title}"
set xlabel "N (agents)"
set ylabel "seconds (virtual time)"
set logscale xy
set grid
set key top left
plot "{data.name}" using 1:6 with linespoints title "client-server N F/u_s", \\
     "{data.name}" using 1:5 with linespoints title "slowest agent", \\
     "{data.name}" using 1:4 with linespoints title "p99", \\
     "{data.name}" using 1:3 with linespoints title "p50", \\
     "{data.name}" using 1:2 with lines dashtype 2 title "P2P lower bound"
"""
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    finally:
        os.unlink(data.name)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
