#!/usr/bin/env python3
"""API read benchmark at scale (issue 18 §3, the start of issue 15's API benchmark): how long the
dashboard's and the 360's reads take on a database of 1 M customers / ~9 M orders.

Per engine (SQLite by default; PostgreSQL with --engines sqlite,postgres): `patron generate`
customers and orders, `patron import` them, `patron analyze` twice (the second run gives the ABCD
migration something to compare; cohorts and trends are precomputed by each run), then
`patron serve` and, over one keep-alive connection with an admin token, `--rounds` rounds that each
request every endpoint once, in turn (interleaved: a change of load hits all of them alike).

The floor, in the same rounds: `GET /healthz` (the same server, connection and client; no
database work). Reported per endpoint: p50, p95 and max milliseconds. Targets (issue 18 §3):
cohorts and trends under 1 s at 1 M customers. The database is kept in bench/work/api and reused
by the next run with the same --customers (pass --fresh to rebuild it).

Usage: bench/api/run.py [--customers 1000000] [--engines sqlite] [--rounds 20] [--fresh]
Uses target/release/patron when built, else target/debug/patron (`binary` in the JSON).
"""
import argparse, http.client, json, os, random, shutil, signal, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from machine import RESULTS, ROOT, machine, patron_binary  # noqa: E402  (bench/machine.py)
from datetime import datetime, timezone
from statistics import median

WORK = os.path.join(ROOT, "bench", "work", "api")
PATRON = patron_binary()
PG_ADMIN = os.environ.get("PATRON_BENCH_PG", "postgres://postgres@127.0.0.1:5432")
TARGET_MS = {"analytics/cohorts": 1000, "analytics/trends": 1000}


def sh(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def database(engine, customers, fresh, env):
    """The URL of a loaded and analysed database (built unless a matching one is kept); the build's timings."""
    os.makedirs(WORK, exist_ok=True)
    marker = os.path.join(WORK, f"{engine}.json")
    if engine == "sqlite":
        path = os.path.join(WORK, "patron.db")
        url = f"sqlite://{path}"
    else:
        name = "patron_bench_api"
        url = f"{PG_ADMIN}/{name}"
    if not fresh and os.path.exists(marker):
        with open(marker) as f:
            built = json.load(f)
        if built.get("customers") == customers:
            log(f"{engine}: reusing the database built {built['when']}")
            return url, built
    if engine == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
    else:
        sh(["psql", f"{PG_ADMIN}/postgres", "-q", "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
        sh(["psql", f"{PG_ADMIN}/postgres", "-q", "-c", f"CREATE DATABASE {name}"])
    gen = os.path.join(WORK, "gen")
    built = {"customers": customers}
    if not os.path.exists(os.path.join(gen, "orders.csv")):
        t = time.perf_counter()
        sh([PATRON, "generate", "--customers", str(customers), "--out", gen], env=env)
        built["generate_s"] = round(time.perf_counter() - t, 1)
    for kind in ("customers", "orders"):
        t = time.perf_counter()
        sh([PATRON, "import", kind, os.path.join(gen, f"{kind}.csv"), "--db", url], env=env)
        built[f"import_{kind}_s"] = round(time.perf_counter() - t, 1)
        log(f"{engine}: {kind} imported in {built[f'import_{kind}_s']} s")
    for n in (1, 2):
        t = time.perf_counter()
        sh([PATRON, "analyze", "--db", url], env=env)
        built[f"analyze_{n}_s"] = round(time.perf_counter() - t, 1)
        log(f"{engine}: analysis {n} in {built[f'analyze_{n}_s']} s")
    built["orders"] = int(query(engine, url, "SELECT COUNT(*) FROM orders"))
    built["when"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with open(marker, "w") as f:
        json.dump(built, f)
    return url, built


def query(engine, url, sql):
    if engine == "sqlite":
        return sh(["sqlite3", url[len("sqlite://"):], sql]).stdout.strip()
    return sh(["psql", url, "-qAtc", sql]).stdout.strip()


def bench(engine, args, env):
    url, built = database(engine, args.customers, args.fresh, env)
    ids = [int(x) for x in query(engine, url, "SELECT id FROM customers ORDER BY id").split()]
    token = sh([PATRON, "token", "create", "--db", url, "--name", f"bench-{time.time_ns()}", "--role", "admin"], env=env).stdout.strip()
    port = 21000 + random.randint(0, 999)
    server = subprocess.Popen([PATRON, "serve", "--db", url, "--listen", f"127.0.0.1:{port}", "--jobs-every", "0"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn = None
        for _ in range(600):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                conn.request("GET", "/healthz")
                if conn.getresponse().read() is not None:
                    break
            except OSError:
                time.sleep(0.1)
        headers = {"Authorization": f"Bearer {token}"}
        rng = random.Random(42)
        endpoints = [
            ("healthz (floor)", lambda: "/healthz"),
            ("analytics/overview", lambda: "/api/v1/analytics/overview"),
            ("analytics/cohorts", lambda: "/api/v1/analytics/cohorts"),
            ("analytics/trends", lambda: "/api/v1/analytics/trends"),
            ("analytics/migration", lambda: "/api/v1/analytics/migration"),
            ("analytics/runs", lambda: "/api/v1/analytics/runs"),
            ("customers (first page)", lambda: "/api/v1/customers?limit=50"),
            ("customers/{id} (360)", lambda: f"/api/v1/customers/{rng.choice(ids)}"),
            ("customers/{id}/timeline", lambda: f"/api/v1/customers/{rng.choice(ids)}/timeline"),
        ]
        times = {name: [] for name, _ in endpoints}
        for r in range(args.rounds):
            for name, path in endpoints:
                p = path()
                t = time.perf_counter()
                conn.request("GET", p, headers=headers)
                res = conn.getresponse()
                body = res.read()
                times[name].append((time.perf_counter() - t) * 1000)
                if res.status != 200:
                    sys.exit(f"{engine} GET {p}: {res.status} {body[:300]!r}")
        conn.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    rows = []
    for name, _ in endpoints:
        t = sorted(times[name])
        rows.append({"endpoint": name, "p50_ms": round(median(t), 2), "p95_ms": round(t[min(len(t) - 1, int(0.95 * len(t)))], 2),
                     "max_ms": round(t[-1], 2), "target_ms": TARGET_MS.get(name)})
    return {"engine": engine, "database": built, "rows": rows}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--engines", default="sqlite")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--fresh", action="store_true", help="rebuild the kept database")
    args = ap.parse_args()
    env = dict(os.environ, PATRON_LOG="warn")
    results = []
    for engine in args.engines.split(","):
        r = bench(engine, args, env)
        print(json.dumps(r, ensure_ascii=False), flush=True)
        results.append(r)
    os.makedirs(RESULTS, exist_ok=True)
    doc = {"benchmark": "api", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "binary": os.path.relpath(PATRON, ROOT), "customers": args.customers, "rounds": args.rounds,
           "results": results, "machine": machine()}
    name = "api.json" if args.customers == 1_000_000 else f"api-{args.customers}.json"
    with open(os.path.join(RESULTS, name), "w") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
    for r in results:
        d = r["database"]
        print(f"\n{r['engine']}: {d['customers']:,} customers, {d.get('orders', 0):,} orders; {args.rounds} rounds\n")
        print("| endpoint | p50 ms | p95 ms | max ms | target |\n|---|---:|---:|---:|---|")
        for x in r["rows"]:
            target = f"< {x['target_ms']:,} ms" if x["target_ms"] else ""
            print(f"| {x['endpoint']} | {x['p50_ms']:,.1f} | {x['p95_ms']:,.1f} | {x['max_ms']:,.1f} | {target} |")


if __name__ == "__main__":
    main()
