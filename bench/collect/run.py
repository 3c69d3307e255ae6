#!/usr/bin/env python3
"""Web analytics ingest: events per second through the real `POST /collect` endpoint, with the
server's batched writes (issue 19 §8; target ≥ 5,000 events/s on SQLite on this machine).

Per engine (SQLite, PostgreSQL), a fresh database and `patron serve` (target/release/patron if it
exists, else target/debug/patron; --collect-per-minute raised, as every client here shares one
address). A site is added through the API, then CLIENTS concurrent keep-alive connections
(asyncio streams, spread over PROCS processes, standard library only) send page views for
SECONDS: distinct browser user agents (many visitors), paths, UTM fields. The server is then
stopped with SIGTERM (its queue is flushed on shutdown) and the rows in web_events counted.

The floor, measured in the same run and interleaved with it (`--rounds`, the machine is shared):
the same clients sending the same requests with `DNT: 1` — parsed, checked and answered 202 by
the same server, but dropped before the queue — i.e. what the HTTP path and these clients can
carry at all on this machine, without hashing and writing.

Reported per engine: events answered 202, events stored, stored/s over the sending time, the
floor's requests/s, and request latency p50/p99 (medians of the rounds). Writes
bench/results/collect.json.

Usage: bench/collect/run.py [--seconds 20] [--clients 64] [--procs 2] [--rounds 2]
       [--engines sqlite,postgres]
"""
import argparse, asyncio, json, multiprocessing, os, random, signal, sqlite3, subprocess, sys, time, urllib.request
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from machine import RESULTS, ROOT, machine, patron_binary  # noqa: E402  (bench/machine.py)
from datetime import datetime, timezone
from statistics import median

WORK = os.path.join(ROOT, "bench", "work", "collect")
PATRON = patron_binary()
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


async def client(port, site, deadline, n, out, dnt):
    """One keep-alive connection sending page views until the deadline (with `DNT: 1`: the floor)."""
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
                f"{'DNT: 1' + chr(13) + chr(10) if dnt else ''}Content-Length: {len(body)}\r\n\r\n").encode()
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


def worker(port, site, seconds, clients, first, q, dnt):
    async def main():
        out = []
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(client(port, site, deadline, first + k, out, dnt) for k in range(clients)))
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
        rounds = []
        for n in range(args.rounds):
            rnd = {}
            for phase, dnt in (("floor", True), ("collect", False)):
                before = stored(engine, url)
                ok, bad, lat, secs = phase_run(port, site, args, dnt)
                after = settled(engine, url)
                res = {"answered_202": ok, "other_answers": bad, "seconds": round(secs, 2),
                       "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)}
                if dnt:
                    res["requests_per_s"] = round(ok / secs, 1)
                    assert after == before, "DNT requests were stored"
                else:
                    res["stored"] = after - before
                    res["stored_per_s"] = round((after - before) / secs, 1)
                    res["all_stored"] = after - before == ok
                rnd[phase] = res
            print(f"{engine} round {n + 1}: {json.dumps(rnd)}", flush=True)
            rounds.append(rnd)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    med = lambda phase, key: median([r[phase][key] for r in rounds])
    return {"engine": engine, "rounds": rounds, "stored_per_s": med("collect", "stored_per_s"),
            "answered_202": med("collect", "answered_202"), "stored": med("collect", "stored"),
            "all_stored": all(r["collect"]["all_stored"] for r in rounds), "p50_ms": med("collect", "p50_ms"),
            "p99_ms": med("collect", "p99_ms"), "floor_requests_per_s": med("floor", "requests_per_s"),
            "floor_p50_ms": med("floor", "p50_ms")}


def pct(lat, f):
    lat = lat or [0.0]
    return round(lat[min(len(lat) - 1, int(f * len(lat)))] * 1000, 2)


def phase_run(port, site, args, dnt):
    """The clients for --seconds; (answered 202, other answers, sorted latency sample, seconds)."""
    q = multiprocessing.Queue()
    per = max(1, args.clients // args.procs)
    procs = [multiprocessing.Process(target=worker, args=(port, site, args.seconds, per, p * per, q, dnt)) for p in range(args.procs)]
    t = time.perf_counter()
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    secs = time.perf_counter() - t
    return sum(r[0] for r in results), sum(r[1] for r in results), sorted(x for r in results for x in r[2]), secs


def settled(engine, url):
    """The stored count once the server's write-behind queue has drained (two equal reads)."""
    last = stored(engine, url)
    while True:
        time.sleep(0.3)
        now = stored(engine, url)
        if now == last:
            return now
        last = now


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--engines", default="sqlite,postgres")
    args = ap.parse_args()
    rows = []
    for engine in args.engines.split(","):
        r = bench(engine, args)
        print(json.dumps(r, ensure_ascii=False), flush=True)
        rows.append(r)
    os.makedirs(RESULTS, exist_ok=True)
    doc = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "binary": os.path.relpath(PATRON, ROOT),
           "seconds": args.seconds, "clients": args.clients, "procs": args.procs, "rounds": args.rounds,
           "target_sqlite_per_s": TARGET,
           "rows": rows, "machine": machine()}
    with open(os.path.join(RESULTS, "collect.json"), "w") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
    print("\n| engine | events/s stored | floor requests/s (DNT, nothing stored) | stored / answered 202 | p50 ms | p99 ms |"
          "\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['engine']} | {r['stored_per_s']:,.0f} | {r['floor_requests_per_s']:,.0f} | {r['stored']:,.0f} / "
              f"{r['answered_202']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |")


if __name__ == "__main__":
    main()
