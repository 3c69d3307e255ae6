#!/usr/bin/env python3
"""Database analysis benchmark (issue 15 §5): `patron analyze --db` on the 1 M-customer database
that bench/api builds and keeps (bench/work/api; built here the same way when missing), against
the named peer of the same run: `patron analyze --orders` (file mode) on the orders file that
database was imported from, as of the same day. File mode reads the file and fits the same models
and writes scores.csv; database mode also reads each order's lines (next best action baskets, the
cost to serve's margin), the calibration of every customer's channels, and stores a million score
rows, their snapshot, the migration matrices and the overview in one transaction.

Rounds interleave the two modes (`--rounds`); the best of each is reported, with database mode's
phases (logged at debug level by patron_store) from its best round. Each engine
of --engines (SQLite and PostgreSQL by default) analyses its own copy, built from the same
generated files. Writes bench/results/analyze.json; the README shows the table. Targets at 1 M:
<= 15 s on SQLite, <= 20 s on PostgreSQL.

Usage: bench/analyze/run.py [--rounds 3] [--engines sqlite,postgres] [--as-of 2026-12-01]
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


TARGET_S = {"sqlite": 15, "postgres": 20}
NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--engines", default="sqlite,postgres")
    ap.add_argument("--as-of", default=datetime.now(timezone.utc).date().isoformat())
    a = ap.parse_args()
    engines = a.engines.split(",")
    # bench/api/run.py: the databases it builds and keeps (the same generated files for each engine).
    spec = importlib.util.spec_from_file_location("bench_api", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "api", "run.py"))
    api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(api)
    env = dict(os.environ, PATRON_LOG="warn,patron_store=debug", NO_COLOR="1")
    orders_file = os.path.join(api.WORK, "gen", "orders.csv")
    dbs = {}
    for engine in engines:
        url, _ = api.database(engine, a.customers, False, dict(os.environ))
        orders = int(api.query(engine, url, "SELECT COUNT(*) FROM orders"))
        customers = int(api.query(engine, url, "SELECT COUNT(*) FROM customers WHERE deleted_at IS NULL"))
        dbs[engine] = {"url": url, "orders": orders, "customers": customers, "s": [], "phases_of": []}
        log(f"{engine}: {customers:,} customers, {orders:,} orders")
    log(f"file: {orders_file}")
    out = tempfile.mkdtemp(prefix="patron-analyze-bench-")
    file_s = []
    for r in range(a.rounds):
        t, _ = run([PATRON, "analyze", "--orders", orders_file, "--map", "ordered_at=date", "--as-of", a.as_of,
                    "--out", os.path.join(out, "scores.csv"), "--params", os.path.join(out, "params.json")])
        file_s.append(t)
        line = f"round {r + 1}: file {file_s[-1]:.1f} s"
        for engine in engines:
            d = dbs[engine]
            t, p = run([PATRON, "analyze", "--db", d["url"], "--as-of", a.as_of], env=env)
            d["s"].append(t)
            d["phases_of"].append([(m.group(1), int(m.group(2))) for m in PHASE.finditer(re.sub(r"\x1b\[[0-9;]*m", "", p.stderr))])
            line += f", {engine} {t:.1f} s"
        log(line)
    results = []
    for engine in engines:
        d = dbs[engine]
        best = min(range(len(d["s"])), key=lambda i: d["s"][i])
        results.append({
            "engine": engine,
            "customers": d["customers"],
            "orders": d["orders"],
            "database_s": [round(x, 2) for x in d["s"]],
            "best_database_s": round(min(d["s"]), 2),
            "target_s": TARGET_S.get(engine),
            "phases": [{"phase": k, "ms": v} for k, v in d["phases_of"][best] if not k.startswith("save: ")],
            "save_phases": [{"phase": k, "ms": v} for k, v in d["phases_of"][best] if k.startswith("save: ")],
        })
    result = {
        "benchmark": "analyze",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "binary": os.path.relpath(PATRON, api.ROOT),
        "as_of": a.as_of,
        "rounds": a.rounds,
        "file_mode_s": [round(x, 2) for x in file_s],
        "best_file_mode_s": round(min(file_s), 2),
        "results": results,
        "machine": machine(),
    }
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "analyze.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"| what | best of {a.rounds} | all rounds |")
    print("|---|---:|---|")
    print(f"| `patron analyze --orders` (file mode, the peer) | {min(file_s):.1f} s | {', '.join(f'{x:.1f}' for x in file_s)} |")
    for x in results:
        print(f"| `patron analyze --db`, {NAMES[x['engine']]} (target {x['target_s']} s) | **{x['best_database_s']:.1f} s** | "
              f"{', '.join(f'{v:.1f}' for v in x['database_s'])} |")
    print()
    print("| phase of the best database run | " + " | ".join(f"{NAMES[x['engine']]} s" for x in results) + " |")
    print("|---|" + "---:|" * len(results))
    for key, indent in (("phases", ""), ("save_phases", "&nbsp;&nbsp;")):
        names = []
        for x in results:
            for p in x[key]:
                if p["phase"] not in names:
                    names.append(p["phase"])
        for n in names:
            cells = []
            for x in results:
                ms = next((p["ms"] for p in x[key] if p["phase"] == n), None)
                cells.append("" if ms is None else f"{ms / 1000:.1f}")
            print(f"| {indent}{n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
