#!/usr/bin/env python3
"""Database analysis benchmark (issue 15 §5): `patron analyze --db` on the 1 M-customer database
that bench/api builds and keeps (bench/work/api; built here the same way when missing), against
the named peer of the same run: `patron analyze --orders` (file mode) on the orders file that
database was imported from, as of the same day. File mode reads the file and fits the same models
and writes scores.csv; database mode also reads each order's lines (next best action baskets, the
cost to serve's margin), the calibration of every customer's channels, and stores a million score
rows, their snapshot, the migration matrices and the overview in one transaction.

Rounds interleave the two modes (`--rounds`); the best of each is reported, with database mode's
phases (logged at debug level by patron_store) from its best round. On PostgreSQL each round also
measures the floor (`pg_floor`): psql running the statements of a run that cannot overlap, on the
same database right after patron's run (`--no-floor` skips it). Each engine
of --engines (SQLite and PostgreSQL by default) analyses its own copy, built from the same
generated files. Writes bench/results/analyze.json; the README shows the table. Targets at 1 M:
<= 15 s on SQLite, <= 20 s on PostgreSQL.

Usage: bench/analyze/run.py [--rounds 3] [--engines sqlite,postgres] [--as-of 2026-12-01] [--no-floor]
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


# What the run reads (crate analytics/input.rs, PG_SCAN_SQL): completed orders up to the day and
# their lines, one statement per half of the customers, $1 the day, $2 and $3 the bounds.
PG_SCAN_SQL = ("SELECT o.customer_id, o.id, o.ordered_day, o.total_cents, o.discount_cents, CAST(l.line_no AS BIGINT), "
               "l.category_id, l.product_id, CAST(CASE WHEN l.promo THEN 1 ELSE 0 END AS BIGINT), l.quantity * l.unit_price_cents "
               "FROM orders o LEFT JOIN order_lines l ON l.customer_id = o.customer_id AND l.order_id = o.id "
               "AND l.customer_id > {low} AND l.customer_id <= {high} "
               "WHERE o.status = 'completed' AND o.ordered_day <= {day} AND o.customer_id > {low} AND o.customer_id <= {high} "
               "ORDER BY o.customer_id, o.id")
I64_MIN, I64_MAX = -(2 ** 63), 2 ** 63 - 1


def psql_timed(url, script):
    """Runs `script` in one psql session with \\timing; the milliseconds of each statement, in order."""
    p = subprocess.run(["psql", url, "-q", "-v", "ON_ERROR_STOP=1", "-c", "\\timing on", "-f", "-"],
                       input=script, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"psql failed:\n{p.stderr[-2000:]}")
    return [float(m) for m in re.findall(r"^Time: ([0-9.]+) ms", p.stdout, re.M)]


def wall_of(commands):
    """Starts every command at once; the seconds until the last has ended."""
    t = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in commands]
    for c, pr in zip(commands, procs):
        _, err = pr.communicate()
        if pr.returncode != 0:
            sys.exit(f"{' '.join(c)} failed:\n{err[-2000:]}")
    return time.perf_counter() - t


def pg_floor(api, url, as_of):
    """PostgreSQL's own time for the statements of a run that cannot overlap, by psql on the same
    database in the same round: the orders and lines read as the run reads them (two halves at
    once, to /dev/null), then in one transaction, rolled back, the scores' million rows and a
    snapshot's put back by binary COPY from files the server wrote beforehand (untimed), and the
    `VACUUM (ANALYZE)` of both tables at once, as the run refreshes them when autovacuum is off.
    The run also deletes the scores (timed here as well), but does that while its models run.
    Needs a superuser (server-side files); `None` without one."""
    if api.query("postgres", url, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user") != "t":
        log("postgres: not a superuser; the floor is not measured")
        return None
    day = (datetime.fromisoformat(as_of).date() - datetime(1970, 1, 1).date()).days
    bounds = api.query("postgres", url, "SELECT CAST(histogram_bounds AS TEXT) FROM pg_stats WHERE schemaname = current_schema() "
                       "AND tablename = 'orders' AND attname = 'customer_id'").strip("{}").split(",")
    split = int(bounds[len(bounds) // 2]) - 1 if bounds != [""] else I64_MAX
    halves = [(I64_MIN, split), (split, I64_MAX)]
    orders_s = wall_of([["psql", url, "-qc", f"COPY ({PG_SCAN_SQL.format(day=day, low=lo, high=hi)}) TO STDOUT (FORMAT binary)"]
                        for lo, hi in halves])
    scores_file, snapshot_file = "/tmp/patron-floor-scores.bin", "/tmp/patron-floor-snapshot.bin"
    psql_timed(url, f"COPY customer_scores TO '{scores_file}' (FORMAT binary);\n"
                    "COPY (SELECT customer_id, run_id + 1000000000, trailing_spend_cents, clv_cents, p_alive, abcd_tier, rfm_class, "
                    "lifecycle, churn FROM score_snapshots WHERE run_id = (SELECT MAX(run_id) FROM score_snapshots)) "
                    f"TO '{snapshot_file}' (FORMAT binary);\n")
    ms = psql_timed(url, "BEGIN;\nSET LOCAL session_replication_role = replica;\nDELETE FROM customer_scores;\n"
                         f"COPY customer_scores FROM '{scores_file}' (FORMAT binary);\n"
                         f"COPY score_snapshots FROM '{snapshot_file}' (FORMAT binary);\nROLLBACK;\n")
    # BEGIN, SET, DELETE, COPY, COPY, ROLLBACK.
    delete_s, scores_s, snapshot_s = ms[2] / 1000, ms[3] / 1000, ms[4] / 1000
    vacuum_s = wall_of([["psql", url, "-qc", f"VACUUM (ANALYZE) {t}"] for t in ("customer_scores", "score_snapshots")])
    for f in (scores_file, snapshot_file):
        try:
            os.remove(f)
        except OSError:
            pass
    return {"orders_s": round(orders_s, 2), "write_scores_s": round(scores_s, 2), "snapshot_s": round(snapshot_s, 2),
            "vacuum_s": round(vacuum_s, 2), "delete_s": round(delete_s, 2),
            "serial_s": round(orders_s + scores_s + snapshot_s + vacuum_s, 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--engines", default="sqlite,postgres")
    ap.add_argument("--as-of", default=datetime.now(timezone.utc).date().isoformat())
    ap.add_argument("--no-floor", action="store_true", help="skip PostgreSQL's floor (psql running the run's serial statements)")
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
            if engine == "postgres" and not a.no_floor:
                f = pg_floor(api, d["url"], a.as_of)
                if f:
                    d.setdefault("floors", []).append(f)
                    line += f" (PostgreSQL's own serial statements {f['serial_s']:.1f} s)"
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
        if d.get("floors"):
            results[-1]["postgres_floor"] = {"rounds": d["floors"], "best": min(d["floors"], key=lambda f: f["serial_s"])}
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
    for x in results:
        if "postgres_floor" in x:
            f = x["postgres_floor"]["best"]
            # The models' own phase (since 2026-12-07 "models (with …)", beside the clear of the scores).
            models = next((p["ms"] for p in x["phases"] if p["phase"] == "models" or p["phase"].startswith("models (")), 0) / 1000
            rounds = ", ".join(f"{r['serial_s']:.1f}" for r in x["postgres_floor"]["rounds"])
            print(f"| PostgreSQL's own serial statements, psql (floor: orders read {f['orders_s']:.1f} + scores COPY "
                  f"{f['write_scores_s']:.1f} + snapshot COPY {f['snapshot_s']:.1f} + VACUUM {f['vacuum_s']:.1f}) | "
                  f"{f['serial_s']:.1f} s | {rounds} |")
            print(f"| that floor + the best run's models ({models:.1f} s), which need every order read first | "
                  f"{f['serial_s'] + models:.1f} s | |")
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
