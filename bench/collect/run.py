#!/usr/bin/env python3
"""Web analytics ingest: events per second through the real `POST /collect` endpoint, with the
server's batched writes (issue 19 §8; target ≥ 5,000 events/s on SQLite on this machine).

Per engine (SQLite, PostgreSQL), a fresh database and `patron serve` (target/release/patron if it
exists, else target/debug/patron; --collect-per-minute raised, as every client here shares one
address). A site is added through the API, then CLIENTS concurrent keep-alive connections
(asyncio streams, spread over PROCS processes, standard library only) send page views for
SECONDS: distinct browser user agents (many visitors), paths, UTM fields. The server is then
stopped with SIGTERM (its queue is flushed on shutdown) and the rows in web_events counted.

Reported per engine: events answered 202, events stored, stored/s over the sending time, and
request latency p50/p99. Writes bench/results/collect.json.

Usage: bench/collect/run.py [--seconds 20] [--clients 64] [--procs 2] [--engines sqlite,postgres]
"""
import argparse, asyncio, json, multiprocessing, os, random, signal, sqlite3, subprocess, sys, time, urllib.request
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from machine import machine  # noqa: E402  (bench/machine.py)
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.path.join(ROOT, "bench", "work", "collect")
RESULTS = os.path.join(ROOT, "bench", "results")
RELEASE, DEBUG = (os.path.join(ROOT, "target", b, "patron") for b in ("release", "debug"))
PATRON = RELEASE if os.path.exists(RELEASE) else DEBUG
PG = os.environ.get("PATRON_BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DB = "patron_bench_collect"
TARGET = 5000


def sh(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def fresh(engine):
    if engine == "sqlite":
        os.makedirs(WORK, exist_ok=True)
        path = os.path.join(WORK, "collect.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        return f"sqlite://{path}"
    sh(["psql", f"{PG}/postgres", "-qAtc", f"DROP DATABASE IF EXISTS {DB}"])
    sh(["psql", f"{PG}/postgres", "-qAtc", f"CREATE DATABASE {DB}"])
    return f"{PG}/{DB}"


def stored(engine, url):
    if engine == "sqlite":
        with sqlite3.connect(url[len("sqlite://"):]) as c:
            return c.execute("SELECT COUNT(*) FROM web_events").fetchone()[0]
    return int(sh(["psql", url, "-qAtc", "SELECT COUNT(*) FROM web_events"]).stdout.strip())


async def client(port, site, deadline, n, out):
    """One keep-alive connection sending page views until the deadline."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ua = f"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.{n}.{random.randint(0, 9999)} Safari/537.36"
    ok = bad = 0
    lat = []
    i = 0
    while time.monotonic() < deadline:
        i += 1
        body = json.dumps({"site": site, "type": "pageview", "title": "菜单",
                           "url": f"https://shop.example.com/menu/{i % 50}?utm_source=wechat&utm_campaign=c{i % 5}",
                           "referrer": "https://www.baidu.com/s?wd=patron"}).encode()
        head = (f"POST /collect HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {ua}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        t = time.perf_counter()
        writer.write(head + body)
        await writer.drain()
        status_line = await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if length:
            await reader.readexactly(length)
        lat.append(time.perf_counter() - t)
        if status_line.split()[1:2] == [b"202"]:
            ok += 1
        else:
            bad += 1
    writer.close()
    out.append((ok, bad, lat))


def worker(port, site, seconds, clients, first, q):
    async def main():
        out = []
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(client(port, site, deadline, first + k, out) for k in range(clients)))
        return out
    res = asyncio.run(main())
    ok = sum(r[0] for r in res)
    bad = sum(r[1] for r in res)
    lat = sorted(x for r in res for x in r[2])
    # A sample of latencies is enough for percentiles.
    q.put((ok, bad, lat[:: max(1, len(lat) // 20000)]))


def bench(engine, args):
    url = fresh(engine)
    port = 19000 + random.randint(0, 999)
    env = dict(os.environ, PATRON_LOG="warn")
    token = sh([PATRON, "token", "create", "--db", url, "--name", "bench", "--role", "admin"], env=env).stdout.strip()
    server = subprocess.Popen([PATRON, "serve", "--db", url, "--listen", f"127.0.0.1:{port}", "--jobs-every", "0",
                               "--collect-per-minute", "1000000000"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/web/sites", method="POST",
                                     data=json.dumps({"name": "bench", "origin": "https://shop.example.com"}).encode(),
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req) as r:
            site = json.loads(r.read())["id"]
        q = multiprocessing.Queue()
        per = max(1, args.clients // args.procs)
        procs = [multiprocessing.Process(target=worker, args=(port, site, args.seconds, per, p * per, q)) for p in range(args.procs)]
        t = time.perf_counter()
        for p in procs:
            p.start()
        results = [q.get() for _ in procs]
        for p in procs:
            p.join()
        secs = time.perf_counter() - t
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    ok = sum(r[0] for r in results)
    bad = sum(r[1] for r in results)
    lat = sorted(x for r in results for x in r[2]) or [0.0]
    n = stored(engine, url)
    pct = lambda f: round(lat[min(len(lat) - 1, int(f * len(lat)))] * 1000, 2)
    return {"engine": engine, "answered_202": ok, "other_answers": bad, "stored": n, "seconds": round(secs, 2),
            "stored_per_s": round(n / secs, 1), "p50_ms": pct(0.5), "p99_ms": pct(0.99), "all_stored": n == ok}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--engines", default="sqlite,postgres")
    args = ap.parse_args()
    rows = []
    for engine in args.engines.split(","):
        r = bench(engine, args)
        print(json.dumps(r, ensure_ascii=False), flush=True)
        rows.append(r)
    os.makedirs(RESULTS, exist_ok=True)
    doc = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "binary": os.path.relpath(PATRON, ROOT),
           "seconds": args.seconds, "clients": args.clients, "procs": args.procs, "target_sqlite_per_s": TARGET,
           "rows": rows, "machine": machine()}
    with open(os.path.join(RESULTS, "collect.json"), "w") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
    print("\n| engine | events/s stored | answered 202 | stored | p50 ms | p99 ms |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['engine']} | {r['stored_per_s']:,.0f} | {r['answered_202']:,} | {r['stored']:,} | {r['p50_ms']} | {r['p99_ms']} |")


if __name__ == "__main__":
    main()
