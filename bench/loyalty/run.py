#!/usr/bin/env python3
"""Loyalty benchmark (issue 13 §9): what earning points costs the orders import.

The same generated files are imported twice per engine (SQLite, PostgreSQL): into a database
without the loyalty programme (the import bench's setting) and into one with the programme on
(1 point per yuan, automatic enrolment, expiry after 24 months), where every completed order
earns in the import's transaction (members enrolled, entries and lots written in bulk, refunds
reversed). Reported: each import's seconds, the slowdown, and the ledger written (checked: one
earning per completed order of a positive amount, and the sum of the entries equal to the lots'
remaining less the debts).

Then redemption throughput under concurrency, on the database with the programme: `patron serve`
on loopback (no scheduler) and N client threads (keep-alive connections) posting redemptions of
1 point with unique idempotency keys, in three interleaved rounds of three workloads:
- `floor`: the same clients reading a member (`GET /api/v1/loyalty/members/{id}`): HTTP, auth and
  one read, the measured floor a redemption is compared with;
- `spread`: each redemption for a random member of up to 2,000 (little contention);
- `hot`: every redemption for one member (all wait for that member's row lock in turn).
Reported: requests/s (median of the rounds) and the p50/p99 latency; checked afterwards: every
201 is one redeem entry, no lot negative, the ledger sum equal to the lots less the debts.
Usage: bench/loyalty/run.py [--orders 1000000] [--clients 16] [--requests 3000] [--engines sqlite,postgres]
"""
import argparse, http.client, json, os, random, shutil, socket, statistics, subprocess, sys, threading, time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from machine import machine  # noqa: E402  (bench/machine.py)
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.path.join(ROOT, "bench", "work", "loyalty")
# The release binary; PATRON_BIN names another (a debug build, to try the script quickly).
PATRON = os.environ.get("PATRON_BIN", os.path.join(ROOT, "target", "release", "patron"))
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc, timeout=120):
    t = time.time()
    while time.time() - t < timeout:
        if proc.poll() is not None:
            sys.exit(f"patron serve exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit("patron serve did not become ready")


def load(port, token, requests, clients, make):
    """`requests` requests over `clients` keep-alive connections; make(i) -> (method, path, body,
    expected status). Returns (requests/s, p50 ms, p99 ms, statuses)."""
    lat, statuses, errors, lock = [], {}, [], threading.Lock()
    per = requests // clients

    def worker(w):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, seen = [], {}
        try:
            for k in range(per):
                method, path, body, _ = make(w * per + k)
                data = json.dumps(body).encode() if body is not None else None
                headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
                t = time.perf_counter()
                c.request(method, path, body=data, headers=headers)
                r = c.getresponse()
                r.read()
                mine.append(time.perf_counter() - t)
                seen[r.status] = seen.get(r.status, 0) + 1
        except Exception as e:  # a timed-out request fails the run, never shortens it quietly
            with lock:
                errors.append(repr(e))
        with lock:
            lat.extend(mine)
            for k, v in seen.items():
                statuses[k] = statuses.get(k, 0) + v

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    if errors:
        sys.exit(f"{len(errors)} client(s) failed: {errors[0]}")
    lat.sort()
    return per * clients / wall, lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000, statuses


def redemptions(engine, url, q, env, clients, requests):
    """Redemption throughput under concurrency against the database `url` (programme on)."""
    token = sh([PATRON, "token", "create", "--db", url, "--name", "bench", "--role", "admin"], env=env).stdout.strip()
    members = [int(x) for x in q(
        "SELECT customer_id FROM loyalty_lots WHERE remaining > 0 AND (expires_at IS NULL OR expires_at > CURRENT_TIMESTAMP) "
        "GROUP BY customer_id HAVING SUM(remaining) >= 50 ORDER BY customer_id LIMIT 2000").split()]
    hot = int(q("SELECT customer_id FROM loyalty_lots WHERE remaining > 0 AND (expires_at IS NULL OR expires_at > CURRENT_TIMESTAMP) "
                "GROUP BY customer_id ORDER BY SUM(remaining) DESC LIMIT 1"))
    port = free_port()
    srv = subprocess.Popen([PATRON, "serve", "--db", url, "--listen", f"127.0.0.1:{port}", "--jobs-every", "0",
                            "--outbox", os.path.join(WORK, "outbox")], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rng = random.Random(7)
    spread_ids = [rng.choice(members) for _ in range(requests * 3)]
    run_id = [0]
    workloads = {
        "floor": lambda i: ("GET", f"/api/v1/loyalty/members/{spread_ids[i]}", None, 200),
        "spread": lambda i: ("POST", f"/api/v1/loyalty/members/{spread_ids[i]}/redemptions",
                             {"points": 1, "idempotency_key": f"bench-s-{run_id[0]}-{i}"}, 201),
        "hot": lambda i: ("POST", f"/api/v1/loyalty/members/{hot}/redemptions",
                          {"points": 1, "idempotency_key": f"bench-h-{run_id[0]}-{i}"}, 201),
    }
    rounds = {k: [] for k in workloads}
    created = 0
    try:
        wait_ready(port, srv)
        for r in range(3):
            for name, make in workloads.items():
                run_id[0] = r
                rps, p50, p99, statuses = load(port, token, requests if name != "hot" else requests // 3, clients, make)
                expected = 200 if name == "floor" else 201
                bad = {k: v for k, v in statuses.items() if k != expected}
                assert not bad, f"{engine} {name}: unexpected statuses {bad}"
                if name != "floor":
                    created += statuses.get(201, 0)
                rounds[name].append((rps, p50, p99))
    finally:
        srv.terminate()
        srv.wait(timeout=60)
    redeems = int(q("SELECT COUNT(*) FROM loyalty_entries WHERE kind = 'redeem' AND idempotency_key LIKE 'bench-%'"))
    assert redeems == created, (redeems, created)
    assert int(q("SELECT COUNT(*) FROM loyalty_lots WHERE remaining < 0")) == 0
    out = {"clients": clients, "members": len(members), "redemptions_checked": redeems}
    for name, rs in rounds.items():
        out[name] = {
            "requests_per_s": round(statistics.median(x[0] for x in rs), 1),
            "p50_ms": round(statistics.median(x[1] for x in rs), 2),
            "p99_ms": round(statistics.median(x[2] for x in rs), 2),
            "rounds_requests_per_s": [round(x[0], 1) for x in rs],
        }
    return out


def run_engine(engine, customers_csv, orders_csv, env, clients, requests):
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
            out["redemptions"] = redemptions(engine, url, q, env, clients, requests)
            after = {k: int(float(q(v))) for k, v in CHECKS.items()}
            assert after["ledger_sum"] == after["lots_less_debt"], after
    out["slowdown"] = round(out["with_programme_seconds"] / out["without_programme_seconds"], 3)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=1_000_000, help="about this many orders")
    ap.add_argument("--clients", type=int, default=16, help="concurrent clients in the redemption runs")
    ap.add_argument("--requests", type=int, default=3000, help="requests per round (the hot member gets a third)")
    ap.add_argument("--engines", default="sqlite,postgres")
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
    results = [run_engine(e, customers_csv, orders_csv, env, a.clients, a.requests) for e in a.engines.split(",")]
    print(f"{'engine':<9} {'orders':>9} {'import s':>9} {'+ points s':>10} {'slowdown':>8} | "
          f"{'floor GET/s':>11} {'redeem/s':>9} {'hot/s':>7} {'p99 ms':>7}")
    for r in results:
        r["orders"] = rows
        red = r["redemptions"]
        print(f"{r['engine']:<9} {rows:>9,} {r['without_programme_seconds']:>9} {r['with_programme_seconds']:>10} {r['slowdown']:>8} | "
              f"{red['floor']['requests_per_s']:>11} {red['spread']['requests_per_s']:>9} {red['hot']['requests_per_s']:>7} "
              f"{red['spread']['p99_ms']:>7}")
    out = {"benchmark": "loyalty", "binary": os.path.relpath(PATRON, ROOT), "requests_per_round": a.requests, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(), "results": results}
    with open(os.path.join(ROOT, "bench", "results", "loyalty.json"), "w") as f:
        json.dump(out, f, indent=2, ensure_ascii=False)


if __name__ == "__main__":
    main()
