"""The yardsticks and the table.

Sending F bytes from a seed with upload u_s to N peers with uploads u_i and
downloads d_i takes at least max(F/u_s, F/min d_i, N*F/(u_s + sum u_i)):
the seed must send every byte once, the slowest peer must receive every
byte, and all N copies must cross someone's upload link. Client-server
takes N*F/u_s. (The same formulas as cli/src/bound.rs.)
"""

import math

INF = float("inf")


def lower_bound(size, n, seed_up, peer_up, peer_down):
    terms = [size / seed_up, size / peer_down, n * size / (seed_up + n * peer_up)]
    return max(t for t in terms if t != INF) if any(t != INF for t in terms) else None


def client_server(size, n, seed_up):
    return n * size / seed_up if seed_up != INF else None


def percentile(values, p):
    """Nearest rank: the smallest value with at least p% of values at or
    below it (with 16 values, p99 is the slowest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(times):
    values = list(times.values())
    return {"total": max(values), "p50": percentile(values, 50), "p99": percentile(values, 99)}


def _f(value, digits=2):
    return "" if value is None else f"{value:.{digits}f}"


def table(result):
    """Markdown: one row per system, every figure next to the bound."""
    size, bound = result["size"], result["bound"]
    rows = [("P2P lower bound", bound, None, None, None, None)]
    for name in ("shoal", "aria2"):
        run = result.get(name)
        if run:
            rows.append((name if name == "aria2" else "Shoal", run["total"], run["p50"],
                         run["p99"], run["seed_tx"] / size, run["peers_tx"] / size))
    rows.append(("client-server (computed)", result["client_server"], None, None,
                 result["agents"], 0.0))
    lines = ["| system | all done s | p50 s | p99 s | x bound | seed egress (x F) "
             "| peer-served (x F) |", "|---|---|---|---|---|---|---|"]
    for name, total, p50, p99, seed, peers in rows:
        ratio = total / bound if bound else None
        lines.append(f"| {name} | {_f(total)} | {_f(p50)} | {_f(p99)} | **{_f(ratio)}** "
                     f"| {_f(seed)} | {_f(peers)} |")
    return "\n".join(lines)
