#!/usr/bin/env python3
"""PostgreSQL against Citus on the same data: the same release binary, the same generated files,
one PostgreSQL server (5432) against a Citus coordinator (5433) with two workers (5434, 5435)
started by .ci/citus — all on this one machine, so the three Citus nodes share its cores with
each other and with the client. What it measures is the cost of distribution (network hops,
planning, two-phase commit), not the gain of more machines.

Per engine: a fresh database (on Citus: on every node, the extension, the workers added, then
`patron db distribute` with the default 32 shards), `patron import customers` and
`patron import orders`, `patron analyze --db`, then over HTTP against `patron serve`: the 360
(GET /customers/{id}, random customers), the customer list (first page), a segment preview and the
analytics overview; finally the size of patron's tables, and on Citus rows and bytes per shard.
Writes bench/results/citus.json and prints the README table. Usage:
bench/citus/run.py [--customers 300000] [--reads 300]
"""
import argparse, http.client, json, os, random, statistics, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from machine import machine  # noqa: E402  (bench/machine.py)
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.path.join(ROOT, "bench", "work", "citus")
PATRON = os.path.join(ROOT, "target", "release", "patron")
PG = os.environ.get("PATRON_BENCH_PG", "postgres://postgres@127.0.0.1:5432")
COORDINATOR = os.environ.get("PATRON_BENCH_CITUS", "postgres://postgres@127.0.0.1:5433")
WORKERS = [("127.0.0.1", 5434), ("127.0.0.1", 5435)]
DB = "patron_bench_citus"
AS_OF = "2026-07-01"
RULE = 'rfm_class = "重要价值" and p_alive < 0.9'


def sh(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def psql(url, sql):
    return sh(["psql", url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql]).stdout.strip()


def timed(args, **kw):
    t = time.perf_counter()
    sh(args, **kw)
    return time.perf_counter() - t


def node_urls():
    host = COORDINATOR.rsplit("@", 1)[0]
    return [COORDINATOR] + [f"{host}@{h}:{p}" for h, p in WORKERS]


def fresh(engine):
    """A new, empty database; on Citus distributed. Returns its URL."""
    if engine == "postgres":
        psql(f"{PG}/postgres", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        psql(f"{PG}/postgres", f"CREATE DATABASE {DB}")
        return f"{PG}/{DB}"
    for url in node_urls():
        psql(f"{url}/postgres", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        psql(f"{url}/postgres", f"CREATE DATABASE {DB}")
        psql(f"{url}/{DB}", "CREATE EXTENSION citus")
    url = f"{COORDINATOR}/{DB}"
    host, port = COORDINATOR.rsplit("@", 1)[1].split(":")
    psql(url, f"SELECT citus_set_coordinator_host('{host}', {port})")
    for h, p in WORKERS:
        psql(url, f"SELECT citus_add_node('{h}', {p})")
    sh([PATRON, "db", "distribute", "--db", url])
    return url


def drop(engine):
    for url in ([PG] if engine == "postgres" else node_urls()):
        psql(f"{url}/postgres", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


class Api:
    """Keep-alive HTTP against `patron serve`."""

    def __init__(self, port, token):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method, path, body=None):
        t = time.perf_counter()
        self.conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=self.headers)
        r = self.conn.getresponse()
        data = r.read()
        ms = (time.perf_counter() - t) * 1000
        assert r.status == 200, (path, r.status, data[:300])
        return ms, json.loads(data)


def stats(ms):
    ms = sorted(ms)
    return {"n": len(ms), "mean_ms": round(statistics.fmean(ms), 2), "median_ms": round(statistics.median(ms), 2),
            "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 2)}


def reads(url, n_reads, customers):
    token = sh([PATRON, "token", "create", "--db", url, "--name", "bench", "--role", "admin"]).stdout
    token = next(w for w in token.split() if w.startswith("pat_"))
    port = 18000 + random.randint(0, 999)
    server = subprocess.Popen([PATRON, "serve", "--db", url, "--listen", f"127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PATRON_LOG": "warn"})
    try:
        api = None
        for _ in range(600):
            try:
                api = Api(port, token)
                api.call("GET", "/healthz")
                break
            except Exception:
                api = None
                time.sleep(0.1)
        assert api, "server did not start"
        ids = [c["id"] for c in api.call("GET", "/api/v1/customers?limit=1000&sort=id")[1]["items"]]
        lo, hi = min(ids), min(ids) + customers - 1
        rng = random.Random(1)
        out = {}
        api.call("GET", f"/api/v1/customers/{lo}")  # warm the connection pool
        out["customer_360"] = stats([api.call("GET", f"/api/v1/customers/{rng.randint(lo, hi)}")[0] for _ in range(n_reads)])
        out["customer_list"] = stats([api.call("GET", "/api/v1/customers?limit=50")[0] for _ in range(max(20, n_reads // 10))])
        out["segment_preview"] = stats([api.call("POST", "/api/v1/segments/preview", {"rule": RULE})[0] for _ in range(20)])
        out["analytics_overview"] = stats([api.call("GET", "/api/v1/analytics/overview")[0] for _ in range(20)])
        return out
    finally:
        server.terminate()
        server.wait()


def sizes(engine, url):
    if engine == "postgres":
        total = int(psql(url, "SELECT SUM(pg_total_relation_size(c.oid)) FROM pg_class c WHERE c.relkind = 'r' "
                              "AND c.relnamespace = 'public'::regnamespace"))
        return {"total_bytes": total}
    total = int(psql(url, "SELECT SUM(citus_total_relation_size(table_name)) FROM citus_tables"))
    per_shard = psql(url, "SELECT COUNT(*), CAST(AVG(shard_size) AS BIGINT), MAX(shard_size) FROM citus_shards s "
                          "JOIN citus_tables t ON t.table_name = s.table_name WHERE t.colocation_id = "
                          "(SELECT colocation_id FROM citus_tables WHERE table_name = 'customers'::regclass) AND t.table_name = 'orders'::regclass")
    n, avg, mx = (int(x) for x in per_shard.split("|"))
    group = int(psql(url, "SELECT SUM(shard_size) FROM citus_shards s JOIN citus_tables t ON t.table_name = s.table_name "
                          "WHERE t.colocation_id = (SELECT colocation_id FROM citus_tables WHERE table_name = 'customers'::regclass)"))
    shards = int(psql(url, "SELECT shard_count FROM citus_tables WHERE table_name = 'customers'::regclass"))
    per_node = psql(url, "SELECT nodeport, SUM(shard_size) FROM citus_shards GROUP BY 1 ORDER BY 1")
    return {"total_bytes": total, "customer_group_bytes": group, "shards_per_table": shards,
            "customer_group_bytes_per_shard": group // shards, "orders_shards": n, "orders_shard_avg_bytes": avg,
            "orders_shard_max_bytes": mx, "bytes_per_node": dict(l.split("|") for l in per_node.splitlines())}


def run_engine(engine, files, customers, n_reads):
    url = fresh(engine)
    env = {**os.environ, "PATRON_LOG": "warn"}
    out = {"engine": engine}
    out["import_customers_s"] = round(timed([PATRON, "import", "customers", files["customers"], "--db", url], env=env), 2)
    out["import_orders_s"] = round(timed([PATRON, "import", "orders", files["orders"], "--db", url], env=env), 2)
    out["analyze_s"] = round(timed([PATRON, "analyze", "--db", url, "--as-of", AS_OF], env=env), 2)
    out["rows"] = {t: int(psql(url, f"SELECT COUNT(*) FROM {t}")) for t in ("customers", "orders", "order_lines")}
    out["reads"] = reads(url, n_reads, customers)
    out["sizes"] = sizes(engine, url)
    drop(engine)
    return out


def table(result):
    by = {r["engine"]: r for r in result["engines"]}
    p, c = by["postgres"], by["citus"]
    rows = [
        ("import customers (s)", p["import_customers_s"], c["import_customers_s"]),
        ("import orders (s)", p["import_orders_s"], c["import_orders_s"]),
        ("analyze --db (s)", p["analyze_s"], c["analyze_s"]),
    ]
    for k, label in [("customer_360", "360, mean ms"), ("customer_list", "list, mean ms"),
                     ("segment_preview", "segment preview, mean ms"), ("analytics_overview", "overview, mean ms")]:
        rows.append((label, p["reads"][k]["mean_ms"], c["reads"][k]["mean_ms"]))
    rows.append(("tables, MiB", round(p["sizes"]["total_bytes"] / 2**20, 1), round(c["sizes"]["total_bytes"] / 2**20, 1)))
    lines = ["| | PostgreSQL | Citus (coordinator + 2 workers, one machine) | Citus / PostgreSQL |", "|---|---:|---:|---:|"]
    for label, a, b in rows:
        lines.append(f"| {label} | {a:,} | {b:,} | {b / a:.2f} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=300_000)
    ap.add_argument("--reads", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    assert os.path.exists(PATRON), "build first: cargo build --release -p patron"
    os.makedirs(WORK, exist_ok=True)
    sh([PATRON, "generate", "--customers", str(args.customers), "--seed", str(args.seed), "--out", WORK])
    files = {k: os.path.join(WORK, f"{k}.csv") for k in ("customers", "orders")}
    engines = [run_engine(e, files, args.customers, args.reads) for e in ("postgres", "citus")]
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "customers": args.customers, "seed": args.seed,
              "machine": machine(postgres=sh(["psql", "--version"]).stdout.strip(),
                                 citus=psql(f"{COORDINATOR}/postgres", "SELECT default_version FROM pg_available_extensions WHERE name = 'citus'")),
              "engines": engines}
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "citus.json"), "w") as f:
        json.dump(result, f, indent=2, ensure_ascii=False)
    print(table(result))


if __name__ == "__main__":
    main()
