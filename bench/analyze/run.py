#!/usr/bin/env python3
"""Database analysis benchmark (issue 15 §5): `patron analyze --db` on the 1 M-customer database
that bench/api builds and keeps (bench/work/api; built here the same way when missing), against
the named peer of the same run: `patron analyze --orders` (file mode) on the orders file that
database was imported from, as of the same day. File mode reads the file and fits the same models
and writes scores.csv; database mode also reads each order's lines (next best action baskets, the
cost to serve's margin), the calibration of every customer's channels, and stores a million score
rows, their snapshot, the migration matrices and the overview in one transaction.

Rounds interleave the two modes (`--rounds`); the best of each is reported, with database mode's
phases (logged at debug level by patron_store) from its best round. Writes
bench/results/analyze.json; the README shows the table. Targets: <= 15 s on SQLite at 1 M.

Usage: bench/analyze/run.py [--rounds 3] [--as-of 2026-12-01]
"""
import argparse, importlib.util, json, os, re, subprocess, sys, time, tempfile
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from machine import RESULTS, machine, patron_binary  # noqa: E402  (bench/machine.py)
from datetime import datetime, timezone

PATRON = patron_binary()
PHASE = re.compile(r'phase="([^"]+)"\s+ms=(\d+)')


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(args, env=None):
    t = time.perf_counter()
    p = subprocess.run(args, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{p.stderr[-2000:]}")
    return time.perf_counter() - t, p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--as-of", default=datetime.now(timezone.utc).date().isoformat())
    a = ap.parse_args()
    # bench/api/run.py: the database it builds and keeps.
    spec = importlib.util.spec_from_file_location("bench_api", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "api", "run.py"))
    api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(api)
    env = dict(os.environ, PATRON_LOG="warn,patron_store=debug", NO_COLOR="1")
    url, built = api.database("sqlite", a.customers, False, dict(os.environ))
    orders_file = os.path.join(api.WORK, "gen", "orders.csv")
    orders = int(api.query("sqlite", url, "SELECT COUNT(*) FROM orders"))
    customers = int(api.query("sqlite", url, "SELECT COUNT(*) FROM customers WHERE deleted_at IS NULL"))
    log(f"database: {customers:,} customers, {orders:,} orders; file: {orders_file}")
    out = tempfile.mkdtemp(prefix="patron-analyze-bench-")
    file_s, db_s, phases_of = [], [], []
    for r in range(a.rounds):
        t, _ = run([PATRON, "analyze", "--orders", orders_file, "--map", "ordered_at=date", "--as-of", a.as_of,
                    "--out", os.path.join(out, "scores.csv"), "--params", os.path.join(out, "params.json")])
        file_s.append(t)
        t, p = run([PATRON, "analyze", "--db", url, "--as-of", a.as_of], env=env)
        db_s.append(t)
        phases_of.append([(m.group(1), int(m.group(2))) for m in PHASE.finditer(re.sub(r"\x1b\[[0-9;]*m", "", p.stderr))])
        log(f"round {r + 1}: file {file_s[-1]:.1f} s, database {db_s[-1]:.1f} s")
    best = min(range(len(db_s)), key=lambda i: db_s[i])
    phases = [{"phase": k, "ms": v} for k, v in phases_of[best] if not k.startswith("save: ")]
    save_parts = [{"phase": k, "ms": v} for k, v in phases_of[best] if k.startswith("save: ")]
    result = {
        "benchmark": "analyze",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "binary": os.path.relpath(PATRON, api.ROOT),
        "engine": "sqlite",
        "customers": customers,
        "orders": orders,
        "as_of": a.as_of,
        "rounds": a.rounds,
        "file_mode_s": [round(x, 2) for x in file_s],
        "database_s": [round(x, 2) for x in db_s],
        "best_file_mode_s": round(min(file_s), 2),
        "best_database_s": round(min(db_s), 2),
        "target_s": 15,
        "phases": phases,
        "save_phases": save_parts,
        "machine": machine(),
    }
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "analyze.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"| what | best of {a.rounds} | all rounds |")
    print("|---|---|---|")
    print(f"| `patron analyze --orders` (file mode, the peer) | {min(file_s):.1f} s | {', '.join(f'{x:.1f}' for x in file_s)} |")
    print(f"| `patron analyze --db` (SQLite; target 15 s) | {min(db_s):.1f} s | {', '.join(f'{x:.1f}' for x in db_s)} |")
    print()
    print("| phase of the best database run | seconds |")
    print("|---|---|")
    for p in phases:
        print(f"| {p['phase']} | {p['ms'] / 1000:.1f} |")
    for p in save_parts:
        print(f"| &nbsp;&nbsp;{p['phase']} | {p['ms'] / 1000:.1f} |")


if __name__ == "__main__":
    main()
