#!/usr/bin/env python3
"""API benchmark at scale (issue 15; issue 18 §3): how long the dashboard's, the 360's, the
customer lists' and search's and the segment previews' reads take on a database of 1 M customers /
~9 M orders, one at a time and under concurrent load.

Per engine (SQLite by default; PostgreSQL with --engines sqlite,postgres): `patron generate`
customers and orders, `patron import` them, `patron analyze` twice (the second run gives the ABCD
migration something to compare; cohorts and trends are precomputed by each run), then
`patron serve` and, over one keep-alive connection with an admin token, `--rounds` rounds that each
request every endpoint once, in turn (interleaved: a change of load hits all of them alike).

The floor, in the same rounds: `GET /healthz` (the same server, connection and client; no
database work). Reported per endpoint: p50, p95 and max milliseconds. Targets: cohorts and trends
under 1 s (issue 18 §3); the overview and segment previews under 1 s, a page of a list or a
search under 50 ms (issue 15). Lists, searches and previews draw their cities, names and mobiles
from a sample of real customers (every 500th id).

Then, under load (`--connections 16,64`, `--seconds` each): wrk (Debian's package; it runs on
the same two cores as the server, so it takes a share of the CPU the server would have) GETs paths
drawn at random (bench/api/paths.lua) for the 360, the timeline, a city's list and a search, and
`/healthz` as the floor, endpoint by endpoint and round by round (`--load-rounds`, interleaved);
on SQLite also the 360 of a second server on the same file that reads and writes through sqlx
only (`PATRON_SQLITE_READS=sqlx PATRON_SQLITE_WRITES=sqlx`: the peer of patron's direct reads and
transactions);
then 8 clients POSTing new orders (bench/api/orders.lua), alone and while 16 read the 360 (the
peer server paused meanwhile: one server is what a deployment runs); the same 16 readers beside 8
writers that each pause 80 ms after every answer (bench/api/orders-paced.lua: about 100 orders/s,
a steady rate rather than all the machine can take), and the 16 readers alone right after, for
the comparison in the same minute; and on SQLite the 8 writers alone against the peer server (the
first one paused meanwhile).
Reported: requests per second, p50/p99 and errors (non-2xx count as errors), and for the runs of
one client alone the CPU milliseconds a request cost the server (its /proc stat) and wrk (this
script's finished children): two cores' 2,000 ms a second over that is the most requests a second
the machine can serve, and what writers take of it is what the readers beside them lose.
Targets (issue 15):
the 360 at 5,000 requests/s with p99 under 10 ms; POST /orders p99 under 50 ms at 8 writers, and
reads unaffected by them. The database is kept in bench/work/api and reused
by the next run with the same --customers (pass --fresh to rebuild it).

Usage: bench/api/run.py [--customers 1000000] [--engines sqlite] [--merge] [--rounds 20] [--fresh]
                        [--connections 16,64] [--seconds 10] [--load-rounds 2] [--no-load]
Uses target/release/patron when built, else target/debug/patron (`binary` in the JSON).
"""
import argparse, http.client, json, os, random, re, resource, shutil, signal, subprocess, sys, time, urllib.parse
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from machine import RESULTS, ROOT, machine, patron_binary  # noqa: E402  (bench/machine.py)
from datetime import datetime, timezone
from statistics import median

WORK = os.path.join(ROOT, "bench", "work", "api")
PATRON = patron_binary()
PG_ADMIN = os.environ.get("PATRON_BENCH_PG", "postgres://postgres@127.0.0.1:5432")
TARGET_MS = {"analytics/cohorts": 1000, "analytics/trends": 1000, "analytics/overview": 1000}
PACE_MS = 80  # the paced writers' pause after each answer (bench/api/orders-paced.lua)
SEGMENT_RULES = [  # docs/segments.md's examples and issue 15's three
    'rfm_class = "重要挽留" and p_alive < 0.5 and city in ("上海", "杭州")',
    'city in ("上海", "杭州") and clv > 1000',
    'abcd_tier in ("A", "B") and days_since_last_purchase > 90',
    'tag = "下午茶" or spend >= 5000',
    'clv > 5000 and lifecycle in ("流失风险", "已流失")',
    'created_at >= "2025-01-01" and order_count = 1 and consent.sms = true',
    'tag = "vip" and (owner is null or mobile is null)',
    'not (tag = "test" or name contains "测试") and not consent.sms = false',
    'attr.level = "gold" or attr."会员 等级" = "金"',
]


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


def sample(engine, url, remainder=0):
    """Every 500th live customer: id, name, mobile and city (for paths and search terms).
    `remainder` 250: another 2,000, the writers' customers (the orders they POST would
    otherwise pile onto the customers whose 360 and timeline are read, 280 more each after a
    few runs, and those pages read all of a customer's orders: the 360's totals, the timeline's
    merge; the 360 measured 4,326 requests/s on a fresh database and 1,141 after)."""
    sql = ("SELECT id, name, COALESCE(mobile, ''), COALESCE(city, '') FROM customers "
           f"WHERE deleted_at IS NULL AND id % 500 = {int(remainder)} ORDER BY id")
    if engine == "sqlite":
        out = sh(["sqlite3", "-separator", "\t", url[len("sqlite://"):], sql]).stdout
    else:
        out = sh(["psql", url, "-qAt", "-F", "\t", "-c", sql]).stdout
    rows = [line.split("\t") for line in out.splitlines() if line.count("\t") == 3]
    return [{"id": int(r[0]), "name": r[1], "mobile": r[2], "city": r[3]} for r in rows]


def customers_path(**params):
    return "/api/v1/customers?" + urllib.parse.urlencode(dict(params, limit=50))


def path_makers(people, rng):
    """Per endpoint: a function that draws one request path."""
    pick = lambda: rng.choice(people)
    with_mobile = [p for p in people if p["mobile"]] or people
    cities = sorted({p["city"] for p in people if p["city"]})
    # A name's substring of 3 characters or more (the trigram search): the name without its
    # first character when that leaves 3, else the whole name.
    middle = lambda n: n[1:] if len(n) >= 4 else n
    return [
        ("customers/{id} (360)", lambda: f"/api/v1/customers/{pick()['id']}"),
        ("customers/{id}/timeline", lambda: f"/api/v1/customers/{pick()['id']}/timeline"),
        ("customers city= (a page)", lambda: customers_path(city=rng.choice(cities))),
        ("customers sort=name", lambda: customers_path(sort="name")),
        ("customers sort=-updated_at", lambda: customers_path(sort="-updated_at")),
        ("search: part of a name", lambda: customers_path(q=middle(pick()["name"]))),
        ("search: surname (1 character)", lambda: customers_path(q=pick()["name"][:1])),
        ("search: complete mobile", lambda: customers_path(q=rng.choice(with_mobile)["mobile"])),
        ("search: 4 digits of a mobile", lambda: customers_path(q=rng.choice(with_mobile)["mobile"][-4:])),
    ]


def wrk_args(port, token, script, data_file, connections, seconds, *extra):
    return ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", os.path.join(ROOT, "bench", "api", script),
            f"http://127.0.0.1:{port}", "--", data_file, token, *extra]


def wrk(port, token, paths_file, connections, seconds):
    return wrk_result(sh(wrk_args(port, token, "paths.lua", paths_file, connections, seconds)).stdout)


def wrk_mixed(port, token, paths_file, ids_file, readers, writers, seconds, pause_ms=0):
    """The 360 read by `readers` connections while `writers` connections POST orders (both wrk at
    once; `readers` 0: the writers alone; `pause_ms`: each writer pauses that long after every
    answer, bench/api/orders-paced.lua). Returns (reads or None, writes)."""
    run = str(time.time_ns())
    script, extra = ("orders-paced.lua", [run, str(pause_ms)]) if pause_ms else ("orders.lua", [run])
    w = subprocess.Popen(wrk_args(port, token, script, ids_file, writers, seconds, *extra), stdout=subprocess.PIPE, text=True)
    reads = wrk(port, token, paths_file, readers, seconds) if readers else None
    out, _ = w.communicate()
    if w.returncode != 0:
        sys.exit(f"wrk (orders) failed:\n{out}")
    return reads, wrk_result(out)


def wrk_result(out):
    m = re.search(r"^JSON (\{.*\})$", out, re.M)
    if not m:
        sys.exit(f"wrk printed no result:\n{out}")
    r = json.loads(m.group(1))
    r["rps"] = r["requests"] / r["seconds"]
    r["errors"] = sum(r[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return r


def warm(engine, url):
    """Reads the database's files once, so that the first rounds do not measure the disk (a
    running server's working set is in memory; the bench's own build may have evicted it).
    SQLite: the file. PostgreSQL: the database's directory under the server's data directory,
    into the OS page cache its reads come through (when this script may read it; else the
    first round of each rule runs cold: 1.2 s for a rule whose p50 was 0.1 s)."""
    t = time.time()
    if engine == "sqlite":
        paths = [url[len("sqlite://"):]]
    else:
        try:
            base = os.path.join(query(engine, url, "SHOW data_directory"), "base",
                                query(engine, url, "SELECT oid FROM pg_database WHERE datname = current_database()"))
            paths = [os.path.join(base, f) for f in os.listdir(base)]
        except (OSError, subprocess.CalledProcessError) as e:
            log(f"{engine}: database files not read ahead ({e})")
            return
    size = 0
    for path in paths:
        try:
            with open(path, "rb") as f:
                while chunk := f.read(8 << 20):
                    size += len(chunk)
        except OSError:
            pass  # a file that went away meanwhile (PostgreSQL's temporary files)
    log(f"{engine}: {size / 2**30:.1f} GiB of database files read into the page cache in {time.time() - t:.1f} s")


class Cpu:
    """CPU seconds spent by the server (its /proc stat) and by this script's finished children
    (wrk) between start and stop: what a request costs the machine, client included."""

    def __init__(self, pid):
        self.pid = pid
        self.t = self.now()

    def now(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (int(fields[11]) + int(fields[12])) / tick, children.ru_utime + children.ru_stime

    def stop(self):
        (s0, c0), (s1, c1) = self.t, self.now()
        return {"server_cpu_s": round(s1 - s0, 3), "client_cpu_s": round(c1 - c0, 3)}


def settle():
    """Before a server is paused: a second for the requests of the run just ended to finish. A
    server stopped inside a write transaction keeps SQLite's write lock, and the other server's
    writers then wait for it (one round of the peer's writes answered nothing that way)."""
    time.sleep(1)


def serve(url, port, env):
    return subprocess.Popen([PATRON, "serve", "--db", url, "--listen", f"127.0.0.1:{port}", "--jobs-every", "0"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ready(port):
    """A keep-alive connection to the server on `port` once it answers /healthz."""
    for _ in range(600):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            return conn
        except OSError:
            time.sleep(0.1)
    sys.exit(f"the server on port {port} did not start")


def bench(engine, args, env):
    url, built = database(engine, args.customers, args.fresh, env)
    warm(engine, url)
    people = sample(engine, url)
    token = sh([PATRON, "token", "create", "--db", url, "--name", f"bench-{time.time_ns()}", "--role", "admin"], env=env).stdout.strip()
    port = 21000 + 2 * random.randint(0, 499)
    server = serve(url, port, env)
    # SQLite: a second server on the same file reading through sqlx's pool only (the peer of the
    # direct reads, db/direct.rs); idle except while the load phase measures it.
    peer = serve(url, port + 1, dict(env, PATRON_SQLITE_READS="sqlx", PATRON_SQLITE_WRITES="sqlx")) if engine == "sqlite" and not args.no_load else None
    load = []
    try:
        conn = ready(port)
        if peer:
            ready(port + 1).close()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        rng = random.Random(42)
        makers = path_makers(people, rng)
        # (name, method, path or body maker)
        endpoints = [("healthz (floor)", "GET", lambda: "/healthz")]
        endpoints += [(name, "GET", f) for name, f in makers[:2]]
        endpoints += [
            ("analytics/overview", "GET", lambda: "/api/v1/analytics/overview"),
            ("analytics/cohorts", "GET", lambda: "/api/v1/analytics/cohorts"),
            ("analytics/trends", "GET", lambda: "/api/v1/analytics/trends"),
            ("analytics/migration", "GET", lambda: "/api/v1/analytics/migration"),
            ("analytics/runs", "GET", lambda: "/api/v1/analytics/runs"),
            ("customers (first page)", "GET", lambda: "/api/v1/customers?limit=50"),
        ]
        endpoints += [(name, "GET", f) for name, f in makers[2:]]
        endpoints += [(f"segment preview: {rule}", "POST", lambda rule=rule: json.dumps({"rule": rule, "limit": 20})) for rule in SEGMENT_RULES]
        times = {name: [] for name, _, _ in endpoints}
        for r in range(args.rounds):
            for name, method, make in endpoints:
                if method == "GET":
                    p, body = make(), None
                else:
                    p, body = "/api/v1/segments/preview", make()
                t = time.perf_counter()
                conn.request(method, p, body=body, headers=headers)
                res = conn.getresponse()
                answer = res.read()
                times[name].append((time.perf_counter() - t) * 1000)
                if res.status != 200:
                    sys.exit(f"{engine} {method} {p} {body or ''}: {res.status} {answer[:300]!r}")
        conn.close()
        if not args.no_load:
            # Under load: one file of 20,000 drawn paths per endpoint; endpoints and connection
            # counts interleaved round by round.
            files = {}
            for name, f in [("healthz (floor)", lambda: "/healthz")] + makers[:3] + makers[5:6]:
                fn = os.path.join(WORK, f"paths-{engine}-{len(files)}.txt")
                with open(fn, "w") as out:
                    out.write("\n".join(f() for _ in range(20_000)) + "\n")
                files[name] = fn
            ids_file = os.path.join(WORK, f"ids-{engine}.txt")
            with open(ids_file, "w") as out:
                out.write("\n".join(str(p["id"]) for p in sample(engine, url, 250)) + "\n")
            runs = {}
            targets = [(name, port, fn) for name, fn in files.items()]
            if peer:
                targets.insert(2, ("customers/{id} (360), through sqlx", port + 1, files["customers/{id} (360)"]))
            for r in range(args.load_rounds):
                for name, at, fn in targets:
                    for c in args.connections:
                        cpu = Cpu((server if at == port else peer).pid)
                        x = wrk(at, token, fn, c, args.seconds)
                        x.update(cpu.stop())
                        runs.setdefault((name, c), []).append(x)
                        log(f"{engine} load round {r + 1}: {name} c={c}: {x['rps']:,.0f} rps, p99 {x['p99_us'] / 1000:.1f} ms, {x['errors']} errors")
                # Writes: 8 clients POST orders, alone and while 16 read the 360 (issue 15 §6).
                # The peer server is there for the 360's comparison only and is paused meanwhile:
                # a second server's once-a-second checkpoint of the same file raised the writers'
                # p99 from 25-33 to 42-45 ms (one server is what a deployment runs).
                if peer:
                    settle()
                    peer.send_signal(signal.SIGSTOP)
                try:
                    cpu = Cpu(server.pid)
                    _, x = wrk_mixed(port, token, files["customers/{id} (360)"], ids_file, 0, 8, args.seconds)
                    x.update(cpu.stop())
                    reads, writes = wrk_mixed(port, token, files["customers/{id} (360)"], ids_file, 16, 8, args.seconds)
                    # The same readers beside writers at a steady rate (each pauses 80 ms after
                    # every answer: about 100 orders/s, 8.6 M a day), and the readers alone right
                    # after, for the comparison in the same minute.
                    paced_reads, paced_writes = wrk_mixed(port, token, files["customers/{id} (360)"], ids_file, 16, 8, args.seconds, PACE_MS)
                    cpu = Cpu(server.pid)
                    alone = wrk(port, token, files["customers/{id} (360)"], 16, args.seconds)
                    alone.update(cpu.stop())
                finally:
                    if peer:
                        peer.send_signal(signal.SIGCONT)
                runs.setdefault(("POST orders (8 writers alone)", 8), []).append(x)
                runs.setdefault(("POST orders (8 writers, 16 readers of the 360)", 8), []).append(writes)
                runs.setdefault(("customers/{id} (360) while 8 write", 16), []).append(reads)
                runs.setdefault((f"POST orders (8 writers pausing {PACE_MS} ms, 16 readers of the 360)", 8), []).append(paced_writes)
                runs.setdefault((f"customers/{{id}} (360) while 8 write, pausing {PACE_MS} ms", 16), []).append(paced_reads)
                runs.setdefault(("customers/{id} (360) alone, right after", 16), []).append(alone)
                if peer:
                    # The same 8 writers against the peer (sqlx's transactions), this server paused.
                    settle()
                    server.send_signal(signal.SIGSTOP)
                    try:
                        _, xp = wrk_mixed(port + 1, token, files["customers/{id} (360)"], ids_file, 0, 8, args.seconds)
                    finally:
                        server.send_signal(signal.SIGCONT)
                    runs.setdefault(("POST orders (8 writers alone), through sqlx", 8), []).append(xp)
                    log(f"{engine} load round {r + 1}: writes alone through sqlx {xp['rps']:,.0f} rps p99 {xp['p99_us'] / 1000:.1f} ms")
                log(f"{engine} load round {r + 1}: writes alone {x['rps']:,.0f} rps p99 {x['p99_us'] / 1000:.1f} ms; mixed: "
                    f"writes {writes['rps']:,.0f} rps p99 {writes['p99_us'] / 1000:.1f} ms, 360 {reads['rps']:,.0f} rps p99 {reads['p99_us'] / 1000:.1f} ms; "
                    f"paced: writes {paced_writes['rps']:,.0f} rps p99 {paced_writes['p99_us'] / 1000:.1f} ms, 360 {paced_reads['rps']:,.0f} rps "
                    f"p99 {paced_reads['p99_us'] / 1000:.1f} ms; 360 alone {alone['rps']:,.0f} rps p99 {alone['p99_us'] / 1000:.1f} ms")
            for (name, c), xs in runs.items():
                best = sorted(xs, key=lambda x: x["rps"])[len(xs) // 2]  # the median run by throughput
                row = {"endpoint": name, "connections": c, "runs": len(xs), "rps": round(best["rps"]),
                       "p50_ms": round(best["p50_us"] / 1000, 2), "p99_ms": round(best["p99_us"] / 1000, 2),
                       "errors": sum(x["errors"] for x in xs), "all_rps": [round(x["rps"]) for x in xs]}
                timed = [x for x in xs if "server_cpu_s" in x]
                if timed:
                    # CPU milliseconds per request, over every run (server; server and wrk).
                    n = sum(x["requests"] for x in timed)
                    row["server_cpu_ms"] = round(1000 * sum(x["server_cpu_s"] for x in timed) / n, 3)
                    row["cpu_ms"] = round(1000 * sum(x["server_cpu_s"] + x["client_cpu_s"] for x in timed) / n, 3)
                load.append(row)
    finally:
        for p in (server, peer):
            if p:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=60)
    rows = []
    for name, _, _ in endpoints:
        t = sorted(times[name])
        target = TARGET_MS.get(name) or (1000 if name.startswith("segment preview") else 50 if name.startswith(("customers ", "search")) else None)
        rows.append({"endpoint": name, "p50_ms": round(median(t), 2), "p95_ms": round(t[min(len(t) - 1, int(0.95 * len(t)))], 2),
                     "max_ms": round(t[-1], 2), "target_ms": target})
    return {"engine": engine, "database": built, "rows": rows, "load": load}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--engines", default="sqlite")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--fresh", action="store_true", help="rebuild the kept database")
    ap.add_argument("--connections", default="16,64", help="wrk connection counts, comma-separated")
    ap.add_argument("--seconds", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--load-rounds", type=int, default=2)
    ap.add_argument("--no-load", action="store_true", help="skip the wrk runs")
    ap.add_argument("--merge", action="store_true", help="keep the other engines' results of the results file")
    args = ap.parse_args()
    args.connections = [int(c) for c in args.connections.split(",")]
    if not args.no_load and not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk), or pass --no-load")
    env = dict(os.environ, PATRON_LOG="warn")
    results = []
    for engine in args.engines.split(","):
        r = bench(engine, args, env)
        r["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        print(json.dumps(r, ensure_ascii=False), flush=True)
        results.append(r)
    os.makedirs(RESULTS, exist_ok=True)
    doc = {"benchmark": "api", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "binary": os.path.relpath(PATRON, ROOT), "customers": args.customers, "rounds": args.rounds,
           "load": None if args.no_load else {"tool": "wrk 4.1.0, 2 threads, on the server's cores", "connections": args.connections,
                                              "seconds": args.seconds, "rounds": args.load_rounds},
           "results": results, "machine": machine()}
    name = "api.json" if args.customers == 1_000_000 else f"api-{args.customers}.json"
    if args.merge and os.path.exists(os.path.join(RESULTS, name)):
        # One engine's leg takes a quarter of an hour: each may be run on its own, the file
        # then holds the latest run of each (each result carries its own date).
        with open(os.path.join(RESULTS, name)) as f:
            kept = [r for r in json.load(f).get("results", []) if r["engine"] not in args.engines.split(",")]
        doc["results"] = kept + results
    with open(os.path.join(RESULTS, name), "w") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
    for r in results:
        d = r["database"]
        print(f"\n{r['engine']}: {d['customers']:,} customers, {d.get('orders', 0):,} orders; {args.rounds} rounds\n")
        print("| endpoint | p50 ms | p95 ms | max ms | target |\n|---|---:|---:|---:|---|")
        for x in r["rows"]:
            target = f"< {x['target_ms']:,} ms" if x["target_ms"] else ""
            print(f"| {x['endpoint']} | {x['p50_ms']:,.1f} | {x['p95_ms']:,.1f} | {x['max_ms']:,.1f} | {target} |")
        if r["load"]:
            print(f"\n{r['engine']} under load (wrk, {args.seconds} s a run, median of {args.load_rounds} interleaved runs)\n")
            print("| endpoint | connections | requests/s | p50 ms | p99 ms | errors | CPU ms a request (server + wrk) |\n|---|---:|---:|---:|---:|---:|---:|")
            for x in r["load"]:
                cpu = f"{x['server_cpu_ms']:.2f} + {x['cpu_ms'] - x['server_cpu_ms']:.2f}" if "cpu_ms" in x else ""
                print(f"| {x['endpoint']} | {x['connections']} | {x['rps']:,} | {x['p50_ms']:,.1f} | {x['p99_ms']:,.1f} | {x['errors']} | {cpu} |")


if __name__ == "__main__":
    main()
