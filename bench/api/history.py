#!/usr/bin/env python3
"""What a long history costs (issue 15): the customer 360 and POST /orders for customers with
thousands of orders (a B2B account, a regular of ten years) against the same requests for
customers with about ten, in the same run and on the same database (the floor: what a
customer's history may not add to).

Per engine (SQLite by default; --engines sqlite,postgres), builds a database (SQLite: in
bench/work/history; PostgreSQL: patron_bench_history_pristine; kept, --fresh rebuilds):
`patron generate` 20,000 customers and their orders, imported, plus `--orders` orders (default
5,000) for each of 8 accounts (the first 8 customers) through the import, then one analysis run.
Each round starts from a copy of that database (PostgreSQL: CREATE DATABASE ... TEMPLATE; the
orders a round POSTs would otherwise pile onto the customers and change the next round), starts
`patron serve`, and runs wrk (bench/api/paths.lua and orders.lua, on the same two cores as the
server) for the 8 accounts and for the 2,000 customers with ordinary histories whose id ends in 5
(9 orders each on average), alternating which goes first: the 360 at 4 connections, then new
orders at 1 and at 8 connections. Reported per request: requests/s, p50 and p99 (medians over
the rounds), and the ratio of the accounts' rate to the others'. Writes
bench/results/api-history.json.

Usage: bench/api/history.py [--engines sqlite,postgres] [--orders 5000] [--rounds 3] [--seconds 6]
                            [--fresh] [--patron PATH]
"""
import argparse, csv, json, os, shutil, subprocess, sys, time, urllib.request
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from machine import RESULTS, ROOT, machine, patron_binary  # noqa: E402  (bench/machine.py)
from datetime import datetime, timezone
from statistics import median

WORK = os.path.join(ROOT, "bench", "work", "history")
LUA = os.path.join(ROOT, "bench", "api")
PORT = 18590
ACCOUNTS = 8


PG_ADMIN = os.environ.get("PATRON_BENCH_PG", "postgres://postgres@127.0.0.1:5432")


def url_of(engine, name):
    return f"sqlite://{os.path.join(WORK, name + '.db')}" if engine == "sqlite" else f"{PG_ADMIN}/patron_bench_history_{name}"


def sql(url, text):
    """Rows of a query, each a list of text values."""
    if url.startswith("sqlite://"):
        out = sh(["sqlite3", "-separator", "\t", url[len("sqlite://"):], text])
    else:
        out = sh(["psql", url, "-qAt", "-F", "\t", "-c", text])
    return [l.split("\t") for l in out.splitlines()]


def fresh_database(url, template=None):
    """An empty database at `url`, or a copy of the database at `template`."""
    if url.startswith("sqlite://"):
        path = url[len("sqlite://"):]
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        if template:
            shutil.copyfile(template[len("sqlite://"):], path)
        return
    name = url.rsplit("/", 1)[1]
    sh(["psql", f"{PG_ADMIN}/postgres", "-q", "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
    copy = f" TEMPLATE {template.rsplit('/', 1)[1]}" if template else ""
    sh(["psql", f"{PG_ADMIN}/postgres", "-q", "-c", f"CREATE DATABASE {name}{copy}"])


def sh(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def build(engine, patron, orders, fresh):
    """The pristine database's URL (built unless one with the same --orders is kept)."""
    os.makedirs(WORK, exist_ok=True)
    url = url_of(engine, "pristine")
    marker = os.path.join(WORK, f"{engine}.json")
    if not fresh and os.path.exists(marker) and json.load(open(marker)).get("orders") == orders:
        return url
    fresh_database(url)
    gen = os.path.join(WORK, "gen")
    if not os.path.exists(os.path.join(gen, "orders.csv")):
        sh([patron, "generate", "--customers", "20000", "--out", gen])
    sh([patron, "import", "customers", os.path.join(gen, "customers.csv"), "--db", url])
    sh([patron, "import", "orders", os.path.join(gen, "orders.csv"), "--db", url])
    with open(os.path.join(gen, "orders.csv"), encoding="utf-8") as f:
        r = csv.reader(f)
        head = next(r)
        template = dict(zip(head, next(r)))
    accounts = [r[0] for r in sql(url, f"SELECT external_id FROM customers ORDER BY id LIMIT {ACCOUNTS}")]
    history = os.path.join(WORK, "accounts.csv")
    with open(history, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(head)
        for c in accounts:
            for i in range(orders):
                row = dict(template, order_id=f"H-{c}-{i}", customer_id=c, amount="12.34",
                           ordered_at=f"{2016 + i % 10}-{1 + i % 12:02d}-{1 + i % 28:02d} {8 + i % 12:02d}:{i % 60:02d}:00")
                w.writerow([row[h] for h in head])
    sh([patron, "import", "orders", history, "--db", url])
    sh([patron, "analyze", "--db", url])
    json.dump({"orders": orders}, open(marker, "w"))
    return url


def wrk(script, data, token, connections, seconds, *extra):
    out = sh(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", os.path.join(LUA, script),
              f"http://127.0.0.1:{PORT}", "--", data, token, *extra])
    line = next(l for l in out.splitlines() if l.startswith("JSON "))
    r = json.loads(line[5:])
    r["rps"] = r["requests"] / r["seconds"]
    r["errors"] = sum(r[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return r


def one_round(engine, patron, pristine, n, args):
    url = url_of(engine, "round")
    fresh_database(url, pristine)
    ids = {
        "accounts": [r[0] for r in sql(url, f"SELECT id FROM customers ORDER BY id LIMIT {ACCOUNTS}")],
        # Many, so that the orders POSTed in a round add a few to each (8 customers would have
        # gained some 700 orders each in a few seconds of writes).
        "others": [r[0] for r in sql(url, f"SELECT id FROM customers WHERE id > {ACCOUNTS} AND id % 10 = 5 ORDER BY id")],
    }
    files = {}
    for who, list_ in ids.items():
        files[who] = (os.path.join(WORK, f"{who}.ids"), os.path.join(WORK, f"{who}.paths"))
        open(files[who][0], "w").write("\n".join(list_) + "\n")
        open(files[who][1], "w").write("".join(f"/api/v1/customers/{i}\n" for i in list_))
    token = sh([patron, "token", "create", "--db", url, "--name", f"history-{time.time_ns()}", "--role", "admin"]).strip()
    server = subprocess.Popen([patron, "serve", "--db", url, "--listen", f"127.0.0.1:{PORT}", "--jobs-every", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = {}
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/healthz", timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        order = ["accounts", "others"] if n % 2 == 0 else ["others", "accounts"]
        # The reads first: the orders POSTed after them would lengthen the others' histories.
        for who in order:
            out[("360, 4 connections", who)] = wrk("paths.lua", files[who][1], token, 4, args.seconds)
        for c in (1, 8):
            for who in order:
                out[(f"POST /orders, {c} connection{'s' if c > 1 else ''}", who)] = \
                    wrk("orders.lua", files[who][0], token, c, args.seconds, f"h{n}{who}{c}")
    finally:
        server.terminate()
        server.wait()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--engines", default="sqlite")
    ap.add_argument("--orders", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--patron", default=patron_binary())
    args = ap.parse_args()
    results = {}
    for engine in args.engines.split(","):
        pristine = build(engine, args.patron, args.orders, args.fresh)
        results[engine] = table(engine, [one_round(engine, args.patron, pristine, n, args) for n in range(args.rounds)], args)
    errors = sum(r[w]["errors"] for rows in results.values() for r in rows for w in ("accounts", "others"))
    if errors:
        sys.exit(f"{errors} requests failed")
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "api-history.json"), "w") as f:
        json.dump({"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
                   "binary": os.path.relpath(args.patron, ROOT) if args.patron.startswith(ROOT) else args.patron,
                   "orders_per_account": args.orders, "rounds": args.rounds, "seconds": args.seconds, "engines": results}, f, indent=1)


def table(engine, rounds, args):
    """The rounds' medians per request and customer group, printed as a table."""
    rows = []
    for name in dict.fromkeys(k[0] for k in rounds[0]):
        row = {"request": name}
        for who in ("accounts", "others"):
            xs = [r[(name, who)] for r in rounds]
            row[who] = {"rps": round(median(x["rps"] for x in xs)), "p50_ms": round(median(x["p50_us"] for x in xs) / 1000, 2),
                        "p99_ms": round(median(x["p99_us"] for x in xs) / 1000, 2), "errors": sum(x["errors"] for x in xs),
                        "rps_rounds": [round(x["rps"]) for x in xs]}
        row["ratio"] = round(row["accounts"]["rps"] / row["others"]["rps"], 2)
        rows.append(row)
    print(f"\n{engine}: {ACCOUNTS} accounts with {args.orders:,} orders each against 2,000 customers with ordinary histories "
          f"(median of {args.rounds} rounds, {args.seconds} s each)")
    print("| request | accounts: req/s | p50 / p99 ms | others: req/s | p50 / p99 ms | accounts / others |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        a, o = r["accounts"], r["others"]
        print(f"| {r['request']} | {a['rps']:,} | {a['p50_ms']} / {a['p99_ms']} | {o['rps']:,} | {o['p50_ms']} / {o['p99_ms']} | {r['ratio']} |")
    return rows


if __name__ == "__main__":
    main()
