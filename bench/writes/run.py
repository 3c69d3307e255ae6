#!/usr/bin/env python3
"""Writes under concurrency: many tills posting orders at once, with nothing lost and no false 409.

Per engine (SQLite, PostgreSQL, and Citus when its coordinator answers on 5433), a fresh database
and `patron serve` (release build), then three loads of CLIENTS parallel clients (keep-alive HTTP,
one thread each), each posting single orders with `POST /api/v1/orders`:

- spread:   every order for a different customer of 2,000: no two requests contend (the floor);
- hot:      every order for ONE customer: each request takes that customer's row lock in turn;
- retries:  rounds in which every client sends the SAME order (same external id) at once, as
            retries after a timeout do: one must answer 201 `created: true`, the rest 200.

It counts answers by status, checks that the database holds exactly the orders answered 201 and
that each customer's kept-current summary equals a recomputation from the orders, and prints
throughput and latency. Writes bench/results/writes.json and prints the README table. The VM is
noisy and the server shares its 2 cores with the clients: compare rows of one run.

Usage: bench/writes/run.py [--clients 8] [--requests 400] [--rounds 50] [--engines sqlite,postgres,citus]
(build first: cargo build --release -p patron)
"""
import argparse, http.client, json, os, random, statistics, subprocess, sys, threading, time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from machine import machine  # noqa: E402  (bench/machine.py)
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.path.join(ROOT, "bench", "work", "writes")
PATRON = os.path.join(ROOT, "target", "release", "patron")
PG = os.environ.get("PATRON_BENCH_PG", "postgres://postgres@127.0.0.1:5432")
COORDINATOR = os.environ.get("PATRON_BENCH_CITUS", "postgres://postgres@127.0.0.1:5433")
WORKERS = [("127.0.0.1", 5434), ("127.0.0.1", 5435)]
DB = "patron_bench_writes"
CUSTOMERS = 2000


def sh(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def psql(url, sql):
    return sh(["psql", url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql]).stdout.strip()


def citus_up():
    try:
        psql(f"{COORDINATOR}/postgres", "SELECT 1")
        return True
    except Exception:
        return False


def fresh(engine):
    """A new, empty database; returns its URL."""
    if engine == "sqlite":
        os.makedirs(WORK, exist_ok=True)
        path = os.path.join(WORK, "writes.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        return f"sqlite://{path}"
    if engine == "postgres":
        psql(f"{PG}/postgres", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        psql(f"{PG}/postgres", f"CREATE DATABASE {DB}")
        return f"{PG}/{DB}"
    host = COORDINATOR.rsplit("@", 1)[0]
    urls = [COORDINATOR] + [f"{host}@{h}:{p}" for h, p in WORKERS]
    for url in urls:
        psql(f"{url}/postgres", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        psql(f"{url}/postgres", f"CREATE DATABASE {DB}")
        psql(f"{url}/{DB}", "CREATE EXTENSION citus")
    url = f"{COORDINATOR}/{DB}"
    h, p = COORDINATOR.rsplit("@", 1)[1].split(":")
    psql(url, f"SELECT citus_set_coordinator_host('{h}', {p})")
    for wh, wp in WORKERS:
        psql(url, f"SELECT citus_add_node('{wh}', {wp})")
    sh([PATRON, "db", "distribute", "--db", url])
    return url


def query(engine, url, sql):
    if engine == "sqlite":
        return sh(["sqlite3", url[len("sqlite://"):], sql]).stdout.strip()
    return psql(url, sql)


class Client:
    """One keep-alive connection."""

    def __init__(self, port, token):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def post(self, path, body):
        t = time.perf_counter()
        self.conn.request("POST", path, json.dumps(body), self.headers)
        r = self.conn.getresponse()
        data = r.read()
        return r.status, data, time.perf_counter() - t


def order(ext, customer_id, i):
    return {"external_id": ext, "customer_id": customer_id, "ordered_at": f"2026-0{1 + i % 6}-{1 + i % 28:02d}T12:{i % 60:02d}:00Z",
            "total_cents": 1000 + i % 5000, "store": "南京西路店"}


def run_parallel(clients, bodies_per_client, barrier_rounds=False):
    """Each client posts its bodies; returns (statuses, latencies, created flags, seconds)."""
    statuses, latencies, created = [], [], []
    lock = threading.Lock()
    barrier = threading.Barrier(len(clients)) if barrier_rounds else None

    def work(c, bodies):
        mine = []
        for b in bodies:
            if barrier:
                barrier.wait()
            s, data, dt = c.post("/api/v1/orders", b)
            flag = None
            if s in (200, 201):
                flag = json.loads(data)[0]["created"]
            mine.append((s, dt, flag))
        with lock:
            for s, dt, f in mine:
                statuses.append(s)
                latencies.append(dt)
                created.append(f)

    threads = [threading.Thread(target=work, args=(c, b)) for c, b in zip(clients, bodies_per_client)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return statuses, latencies, created, time.perf_counter() - t


def summarise(name, statuses, latencies, seconds):
    lat = sorted(latencies)
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000
    counts = {str(s): statuses.count(s) for s in sorted(set(statuses))}
    return {"scenario": name, "requests": len(statuses), "rps": round(len(statuses) / seconds, 1),
            "p50_ms": round(pct(0.5), 1), "p99_ms": round(pct(0.99), 1), "statuses": counts}


def bench(engine, args):
    url = fresh(engine)
    port = 18000 + random.randint(0, 999)
    env = dict(os.environ, PATRON_LOG="warn")
    token = sh([PATRON, "token", "create", "--db", url, "--name", "bench", "--role", "admin"], env=env).stdout.strip()
    server = subprocess.Popen([PATRON, "serve", "--db", url, "--listen", f"127.0.0.1:{port}", "--jobs-every", "0"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        setup = Client(port, token)
        ids = []
        for i in range(CUSTOMERS):
            s, data, _ = setup.post("/api/v1/customers", {"name": f"客户{i}", "external_id": f"W{i:05d}"})
            assert s == 201, data
            ids.append(json.loads(data)["id"])
        clients = [Client(port, token) for _ in range(args.clients)]
        n = args.requests
        rows = []
        # spread: distinct customers
        bodies = [[order(f"S{c}-{i}", ids[(c * n + i) % CUSTOMERS], i) for i in range(n)] for c in range(args.clients)]
        st, lat, _, secs = run_parallel(clients, bodies)
        rows.append(summarise("spread (no contention)", st, lat, secs))
        # hot: one customer
        hot = ids[0]
        bodies = [[order(f"H{c}-{i}", hot, i) for i in range(n)] for c in range(args.clients)]
        st, lat, _, secs = run_parallel(clients, bodies)
        rows.append(summarise("hot (one customer)", st, lat, secs))
        hot_created = st.count(201)
        # retries: the same order from every client at once
        bodies = [[order(f"R{r}", ids[1], r) for r in range(args.rounds)] for _ in range(args.clients)]
        st, lat, created, secs = run_parallel(clients, bodies, barrier_rounds=True)
        row = summarise("retries (same order at once)", st, lat, secs)
        row["created_true"] = sum(1 for f in created if f is True)
        rows.append(row)
        # What the database holds.
        expected = args.clients * n * 2 + args.rounds
        held = int(query(engine, url, "SELECT COUNT(*) FROM orders"))
        hot_rows = int(query(engine, url, f"SELECT COUNT(*) FROM orders WHERE customer_id = {hot}"))
        mismatched = int(query(engine, url,
            "SELECT COUNT(*) FROM customer_summaries s WHERE s.order_count <> (SELECT COUNT(*) FROM orders o "
            "WHERE o.customer_id = s.customer_id AND o.status = 'completed') OR s.spend_cents <> (SELECT SUM(o.total_cents) "
            "FROM orders o WHERE o.customer_id = s.customer_id AND o.status = 'completed')"))
        check = {"orders_expected": expected, "orders_held": held, "hot_rows": hot_rows, "hot_created": hot_created,
                 "summaries_differing_from_orders": mismatched}
        return {"engine": engine, "rows": rows, "check": check}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=400, help="orders per client in the spread and hot loads")
    ap.add_argument("--rounds", type=int, default=50, help="rounds of the retries load")
    ap.add_argument("--engines", default="sqlite,postgres,citus")
    args = ap.parse_args()
    engines = [e for e in args.engines.split(",") if e != "citus" or citus_up()]
    results = [bench(e, args) for e in engines]
    lines = ["| engine | load | requests | req/s | p50 ms | p99 ms | answers |", "|---|---|---|---|---|---|---|"]
    for r in results:
        for row in r["rows"]:
            answers = ", ".join(f"{k}: {v}" for k, v in row["statuses"].items())
            if "created_true" in row:
                answers += f" ({row['created_true']} created, one per round)"
            lines.append(f"| {r['engine']} | {row['scenario']} | {row['requests']} | {row['rps']} | {row['p50_ms']} | {row['p99_ms']} | {answers} |")
    lines.append("")
    lines.append("| engine | orders answered 201 | orders in the database | summaries ≠ recomputation |")
    lines.append("|---|---|---|---|")
    ok = True
    for r in results:
        c = r["check"]
        answered = sum(row["statuses"].get("201", 0) for row in r["rows"])
        lines.append(f"| {r['engine']} | {answered} | {c['orders_held']} | {c['summaries_differing_from_orders']} |")
        bad = any(k not in ("200", "201") for row in r["rows"] for k in row["statuses"])
        ok = ok and not bad and answered == c["orders_held"] == c["orders_expected"] and c["summaries_differing_from_orders"] == 0
    table = "\n".join(lines)
    print(table)
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "clients": args.clients, "machine": machine(),
           "results": results, "all_written_none_refused": ok, "table": table}
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "writes.json"), "w") as f:
        json.dump(out, f, ensure_ascii=False, indent=2)
    if not ok:
        print("FAILED: an order was lost, refused or answered other than 200/201", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
