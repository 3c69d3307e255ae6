#!/usr/bin/env python3
"""Import benchmark: `patron import orders` (and `import customers`, for the file that comes
first) against the engines' own bulk loaders on the same files.

- SQLite: the sqlite3 shell's `.import` of each file into a bare table with the same columns
  (same pragmas as patron: WAL, synchronous=NORMAL).
- PostgreSQL: `COPY … FROM … CSV HEADER` (psql's \\copy) of each file into a bare table.

patron's import validates every row, resolves customers, upserts by order id into indexed
`orders` and `order_lines` tables in one transaction; the peers load raw text into one unindexed
table. The ratio is patron's rows/s over the peer's.

For each file the bench also measures the floor of any loader that keeps patron's tables: the same
peer tool writing the rows patron wrote (ids resolved) into the same tables, indexes, triggers and
keys, in a database cloned just before patron's import of that file. For orders those rows include
the per-customer summaries the import keeps current (`customer_summaries`); for customers, their
tags and consents (and on PostgreSQL the key table of external ids). The peer's bare-table time over
that floor is the best ratio such a loader could reach; the target is patron at >= 0.8 of the floor.
Usage: bench/import/run.py [--orders 1000000] [--rounds 1]
"""
import argparse, json, os, shutil, statistics, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from machine import machine  # noqa: E402  (bench/machine.py)
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.path.join(ROOT, "bench", "work", "import")
PATRON = os.path.join(ROOT, "target", "release", "patron")
PG_ADMIN = os.environ.get("PATRON_BENCH_PG", "postgres://postgres@127.0.0.1:5432")
COLUMNS = ["order_id", "customer_id", "ordered_at", "amount", "discount", "currency", "channel", "store",
           "status", "category", "product", "quantity", "promo"]


def sh(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def timed(args, **kw):
    t = time.perf_counter()
    sh(args, **kw)
    return time.perf_counter() - t


def tool_versions():
    return {"sqlite3": sh(["sqlite3", "--version"]).stdout.split()[0], "postgres": sh(["psql", "--version"]).stdout.strip()}


def pg(db, sql):
    sh(["psql", f"{PG_ADMIN}/{db}", "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])


# The tables each file's import writes, in the order a loader must fill them.
FLOOR_TABLES = {
    "customers": ["customers", "customer_tags", "customer_consents"],
    "orders": ["categories", "products", "orders", "order_lines", "customer_summaries"],
}


def sqlite_floor(patron_db, floor_db, file):
    """The sqlite3 shell writing the rows patron wrote (customer ids and catalogue names
    resolved) into a copy of patron's database taken just before its import of `file`: the same
    tables with their indexes, triggers (the search index), constraints and foreign keys, in one
    transaction, from an attached database, so without even parsing text. No validation, no
    lookups. (`WHERE true` keeps SQLite from copying the B-tree pages wholesale, which it does
    only into an empty table.) The shell checkpoints the log when it closes the database, as
    patron does at the end of a bulk import. Returns the seconds of the load."""
    tables = FLOOR_TABLES[file]
    inserts = "".join(f"INSERT INTO {t} SELECT * FROM src.{t} WHERE true ORDER BY rowid;\n" if t in ("customers", "orders")
                      else f"INSERT INTO {t} SELECT * FROM src.{t} WHERE true;\n" for t in tables)
    script = (f"PRAGMA journal_mode=WAL;\nPRAGMA synchronous=NORMAL;\nPRAGMA foreign_keys=ON;\nPRAGMA cache_size=-65536;\n"
              f".bail on\nATTACH '{patron_db}' AS src;\nBEGIN;\n{inserts}COMMIT;\n")
    t0 = time.perf_counter()
    sh(["sqlite3", floor_db], input=script)
    seconds = time.perf_counter() - t0
    for t in tables:
        n = int(sh(["sqlite3", floor_db, f"SELECT COUNT(*) FROM {t}"]).stdout)
        m = int(sh(["sqlite3", patron_db, f"SELECT COUNT(*) FROM {t}"]).stdout)
        assert n == m, (t, n, m)
    return seconds


def pg_floor(file):
    """`COPY` of the rows patron wrote into the same tables of a database cloned just before its
    import of `file`, in one transaction with the foreign-key triggers off (as patron runs as a
    superuser here): the engine's bulk loader doing only the writes patron's tables need."""
    tables = {"customers": ["customers", "customer_keys", "customer_tags", "customer_consents"],
              "orders": ["categories", "products", "orders", "order_lines", "order_keys", "customer_summaries"]}[file]
    paths = {t: os.path.join(WORK, f"floor_{t}.copy") for t in tables}
    for table, path in paths.items():
        pg("patron_bench", f"\\copy {table} TO '{path}'")
    script = os.path.join(WORK, "floor.sql")
    with open(script, "w") as f:
        f.write("BEGIN;\nSET LOCAL session_replication_role = replica;\n")
        for table, path in paths.items():
            f.write(f"\\copy {table} FROM '{path}'\n")
        f.write("COMMIT;\n")
    t0 = time.perf_counter()
    sh(["psql", f"{PG_ADMIN}/patron_bench_floor", "-v", "ON_ERROR_STOP=1", "-q", "-f", script])
    return time.perf_counter() - t0


def sqlite_round(customers_csv, orders_csv, env):
    """patron's customers then orders import into a new SQLite database, each followed by the
    floor of the same file (the sqlite3 shell into a copy taken just before patron's import)."""
    patron_db = os.path.join(WORK, "patron.db")
    for f in os.listdir(WORK):
        if f.startswith(("patron.db", "floor.db")):
            os.remove(os.path.join(WORK, f))
    url = f"sqlite://{patron_db}"
    floor_db = os.path.join(WORK, "floor.db")
    out = {"engine": "sqlite"}
    sh([PATRON, "user", "list", "--db", url], env=env)  # creates the database: the migrations are not the import's
    for file, path in (("customers", customers_csv), ("orders", orders_csv)):
        if os.path.exists(floor_db):
            os.remove(floor_db)
        sh(["sqlite3", patron_db, f".backup '{floor_db}'"])
        patron_s = timed([PATRON, "import", file, path, "--db", url], env=env)
        out[file] = {"patron_seconds": patron_s, "floor_seconds": sqlite_floor(patron_db, floor_db, file)}
    return out


def pg_round(customers_csv, orders_csv, env):
    """The same on PostgreSQL: the floor's database is a clone (TEMPLATE) taken just before
    patron's import of each file."""
    pg("postgres", "DROP DATABASE IF EXISTS patron_bench")
    pg("postgres", "CREATE DATABASE patron_bench")
    url = f"{PG_ADMIN}/patron_bench"
    out = {"engine": "postgres"}
    sh([PATRON, "user", "list", "--db", url], env=env)
    for file, path in (("customers", customers_csv), ("orders", orders_csv)):
        pg("postgres", "DROP DATABASE IF EXISTS patron_bench_floor")
        pg("postgres", "CREATE DATABASE patron_bench_floor TEMPLATE patron_bench")
        patron_s = timed([PATRON, "import", file, path, "--db", url], env=env)
        out[file] = {"patron_seconds": patron_s, "floor_seconds": pg_floor(file)}
    for db in ("patron_bench", "patron_bench_floor"):
        pg("postgres", f"DROP DATABASE IF EXISTS {db}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=1_000_000, help="about this many orders")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds per engine; the best of each is reported")
    ap.add_argument("--engine", choices=["sqlite", "postgres", "both"], default="both")
    a = ap.parse_args()
    if not os.path.exists(PATRON):
        sys.exit("build first: cargo build --release -p patron")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    customers = int(a.orders / 9.1) + 1  # the generator averages ~9.1 orders per customer
    sh([PATRON, "generate", "--customers", str(customers), "--seed", "1", "--out", WORK])
    orders_csv = os.path.join(WORK, "orders.csv")
    with open(orders_csv, "rb") as f:
        rows = sum(1 for _ in f) - 1
    env = dict(os.environ, PATRON_LOG=os.environ.get("PATRON_LOG", "warn"))
    results = []

    customers_csv = os.path.join(WORK, "customers.csv")
    with open(customers_csv, "rb") as f:
        customer_rows = sum(1 for _ in f) - 1
    with open(customers_csv, encoding="utf-8-sig") as f:
        customer_cols = ", ".join(f'"{c.strip()}" TEXT' for c in f.readline().split(","))
    cols = ", ".join(f"{c} TEXT" for c in COLUMNS)

    # --- SQLite ---
    peer_db = os.path.join(WORK, "peer.db")
    sh(["sqlite3", peer_db], input=f"PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; CREATE TABLE orders ({cols}); CREATE TABLE customers ({customer_cols});")
    peer = {"sqlite": {}, "postgres": {}}
    for table, path in (("customers", customers_csv), ("orders", orders_csv)):
        t0 = time.perf_counter()
        sh(["sqlite3", peer_db], input=f"PRAGMA synchronous=NORMAL;\n.import --csv --skip 1 {path} {table}\n")
        peer["sqlite"][table] = time.perf_counter() - t0
    n = int(sh(["sqlite3", peer_db, "SELECT COUNT(*) FROM orders"]).stdout)
    assert n == rows, (n, rows)
    pg("postgres", "DROP DATABASE IF EXISTS patron_bench_peer")
    pg("postgres", "CREATE DATABASE patron_bench_peer")
    pg("patron_bench_peer", f"CREATE TABLE orders ({cols})")
    pg("patron_bench_peer", f"CREATE TABLE customers ({customer_cols})")
    for table, path in (("customers", customers_csv), ("orders", orders_csv)):
        peer["postgres"][table] = timed(["psql", f"{PG_ADMIN}/patron_bench_peer", "-v", "ON_ERROR_STOP=1", "-q", "-c",
                                         f"\\copy {table} FROM '{path}' WITH (FORMAT csv, HEADER true)"])
    pg("postgres", "DROP DATABASE IF EXISTS patron_bench_peer")
    rounds = []
    for rnd in range(a.rounds):
        # Interleaved: each round loads both files on both engines (the VM is noisy).
        if a.engine != "postgres":
            rounds.append(sqlite_round(customers_csv, orders_csv, env))
        if a.engine != "sqlite":
            rounds.append(pg_round(customers_csv, orders_csv, env))
    for engine, peer_name in (("sqlite", "sqlite3 .import"), ("postgres", "COPY")):
        if not any(r["engine"] == engine for r in rounds):
            continue
        for file, n in (("orders", rows), ("customers", customer_rows)):
            runs = [r[file] for r in rounds if r["engine"] == engine]
            best = min(runs, key=lambda r: r["patron_seconds"])
            results.append({"engine": engine, "file": file, "peer": peer_name, "rows": n, "peer_seconds": peer[engine][file],
                            "patron_seconds": best["patron_seconds"], "floor_seconds": min(r["floor_seconds"] for r in runs),
                            "patron_runs": [r["patron_seconds"] for r in runs], "floor_runs": [r["floor_seconds"] for r in runs]})
    for r in results:
        r["peer_rows_per_s"] = r["rows"] / r["peer_seconds"]
        r["patron_rows_per_s"] = r["rows"] / r["patron_seconds"]
        r["ratio"] = r["patron_rows_per_s"] / r["peer_rows_per_s"]
        # The best ratio any loader keeping patron's tables could reach: the peer's time over
        # the time the engine's own loader takes to write the same rows into those tables.
        r["floor_ratio"] = r["peer_seconds"] / r["floor_seconds"]
        r["patron_vs_floor"] = r["floor_seconds"] / r["patron_seconds"]
        # Each round's floor is measured right after patron's import of the same file into the
        # same database: its own ratio compares the two under the same load on this noisy VM
        # (the best of each can come from different rounds). The median of those is shown too.
        r["round_ratios"] = [f / p for p, f in zip(r["patron_runs"], r["floor_runs"])]
        r["round_ratio_median"] = statistics.median(r["round_ratios"])
        r["target_vs_floor"] = 0.8
    out = {"benchmark": "import", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": machine(**tool_versions()), "results": results}
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "import.json"), "w") as f:
        json.dump(out, f, indent=2)
    print("| engine | file | rows | peer | peer rows/s | patron rows/s | patron s | ratio (target ≥ 0.8) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['engine']} | {r['file']} | {r['rows']:,} | {r['peer']} | {r['peer_rows_per_s']:,.0f} | {r['patron_rows_per_s']:,.0f} | {r['patron_seconds']:.1f} | {r['ratio']:.2f} |")
    print("\nSame rows into patron's own tables (the floor of any loader that keeps them):\n")
    print("| engine | file | peer, bare table s | floor: peer into patron's tables s | best possible ratio | patron s | floor / patron, best of each (target ≥ 0.8) | floor / patron, per round | median of rounds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        rounds = ", ".join(f"{x:.2f}" for x in r["round_ratios"])
        print(f"| {r['engine']} | {r['file']} | {r['peer_seconds']:.2f} | {r['floor_seconds']:.2f} | {r['floor_ratio']:.2f} | {r['patron_seconds']:.2f} | {r['patron_vs_floor']:.2f} | {rounds} | {r['round_ratio_median']:.2f} |")
    m = out["machine"]
    print(f"\nmachine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; sqlite3 {m['sqlite3']}, {m['postgres']}")


if __name__ == "__main__":
    main()
