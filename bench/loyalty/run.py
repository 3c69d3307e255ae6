#!/usr/bin/env python3
"""Loyalty benchmark (issue 13 §9): what earning points costs the orders import.

The same generated files are imported twice per engine (SQLite, PostgreSQL): into a database
without the loyalty programme (the import bench's setting) and into one with the programme on
(1 point per yuan, automatic enrolment, expiry after 24 months), where every completed order
earns in the import's transaction (members enrolled, entries and lots written in bulk, refunds
reversed). Reported: each import's seconds, the slowdown, and the ledger written (checked: one
earning per completed order of a positive amount, and the sum of the entries equal to the lots'
remaining less the debts). Usage: bench/loyalty/run.py [--orders 1000000]
"""
import argparse, json, os, shutil, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from machine import machine  # noqa: E402  (bench/machine.py)
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.path.join(ROOT, "bench", "work", "loyalty")
PATRON = os.path.join(ROOT, "target", "release", "patron")
PG_ADMIN = os.environ.get("PATRON_BENCH_PG", "postgres://postgres@127.0.0.1:5432")
PROGRAMME = '{"enabled": true, "expiry_months": 24, "auto_enrol": true}'


def sh(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def timed(args, **kw):
    t = time.perf_counter()
    sh(args, **kw)
    return time.perf_counter() - t


def query_sqlite(db, sql):
    return sh(["sqlite3", db, sql]).stdout.strip()


def query_pg(db, sql):
    return sh(["psql", f"{PG_ADMIN}/{db}", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql]).stdout.strip()


CHECKS = {
    "completed_orders": "SELECT COUNT(*) FROM orders WHERE status = 'completed' AND total_cents >= 100",
    "earn_entries": "SELECT COUNT(*) FROM loyalty_entries WHERE kind = 'earn'",
    "members": "SELECT COUNT(*) FROM loyalty_members",
    "ledger_sum": "SELECT COALESCE(SUM(points), 0) FROM loyalty_entries",
    "lots_less_debt": "SELECT (SELECT COALESCE(SUM(remaining), 0) FROM loyalty_lots) - (SELECT COALESCE(SUM(debt), 0) FROM loyalty_members)",
}


def run_engine(engine, customers_csv, orders_csv, env):
    out = {"engine": engine}
    for programme in (False, True):
        if engine == "sqlite":
            db = os.path.join(WORK, f"patron-{int(programme)}.db")
            url = f"sqlite://{db}"
            q = lambda sql: query_sqlite(db, sql)  # noqa: E731
        else:
            name = f"patron_bench_loyalty_{int(programme)}"
            sh(["psql", f"{PG_ADMIN}/postgres", "-q", "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
            sh(["psql", f"{PG_ADMIN}/postgres", "-q", "-c", f"CREATE DATABASE {name}"])
            url = f"{PG_ADMIN}/{name}"
            q = lambda sql, name=name: query_pg(name, sql)  # noqa: E731
        sh([PATRON, "import", "customers", customers_csv, "--db", url], env=env)
        if programme:
            q(f"INSERT INTO settings (key, value, updated_at) VALUES ('loyalty', '{PROGRAMME}', '2026-01-01 00:00:00+00:00')")
        seconds = timed([PATRON, "import", "orders", orders_csv, "--db", url], env=env)
        key = "with_programme" if programme else "without_programme"
        out[f"{key}_seconds"] = round(seconds, 2)
        if programme:
            checks = {k: int(float(q(v))) for k, v in CHECKS.items()}
            out["ledger"] = checks
            assert checks["ledger_sum"] == checks["lots_less_debt"], checks
    out["slowdown"] = round(out["with_programme_seconds"] / out["without_programme_seconds"], 3)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=1_000_000, help="about this many orders")
    a = ap.parse_args()
    if not os.path.exists(PATRON):
        sys.exit("build first: cargo build --release -p patron")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    customers = int(a.orders / 9.1) + 1  # the generator averages ~9.1 orders per customer
    sh([PATRON, "generate", "--customers", str(customers), "--seed", "1", "--out", WORK])
    customers_csv, orders_csv = os.path.join(WORK, "customers.csv"), os.path.join(WORK, "orders.csv")
    with open(orders_csv, "rb") as f:
        rows = sum(1 for _ in f) - 1
    env = dict(os.environ, PATRON_LOG="warn")
    results = [run_engine(e, customers_csv, orders_csv, env) for e in ("sqlite", "postgres")]
    for r in results:
        r["orders"] = rows
        print(json.dumps(r, ensure_ascii=False))
    out = {"benchmark": "loyalty", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(), "results": results}
    with open(os.path.join(ROOT, "bench", "results", "loyalty.json"), "w") as f:
        json.dump(out, f, indent=2, ensure_ascii=False)


if __name__ == "__main__":
    main()
