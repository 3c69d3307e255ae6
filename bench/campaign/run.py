#!/usr/bin/env python3
"""Campaign benchmark (issue 12 §9): launching a campaign to every customer, and sending.

Per engine (SQLite, PostgreSQL): `patron generate` customers (with their consents), import them,
add an SMS marketing template, and time `patron campaigns launch` over the segment `id >= 1`
(every customer) on the `preferred` channel with a 10% holdout and the default 5% global control
group: one transaction that classifies the audience (segment, consent per channel, frequency
caps) in one query and writes the outbox rows (queued and holdout) with set-based
`INSERT … SELECT`. Checked: one outbox row per eligible customer, holdout = round(10% of them).
Then `patron jobs run-once` sends through the file adapter for a time budget (`--send SECONDS`).
Reported: launch seconds and customers/s, send seconds and messages/s, peak memory (max RSS) of
each process. Target (issue 12): launch < 30 s on SQLite for 1 M customers; file adapter
≥ 5,000 messages/s.

Usage: bench/campaign/run.py [--customers 1000000] [--engines sqlite,postgres] [--send 60]
Uses target/release/patron when built, else target/debug/patron (say which: `binary` in the JSON).
"""
import argparse, json, os, re, shutil, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from machine import machine  # noqa: E402  (bench/machine.py)
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK = os.path.join(ROOT, "bench", "work", "campaign")
RELEASE = os.path.join(ROOT, "target", "release", "patron")
DEBUG = os.path.join(ROOT, "target", "debug", "patron")
PG_ADMIN = os.environ.get("PATRON_BENCH_PG", "postgres://postgres@127.0.0.1:5432")
AT = "2026-01-01 00:00:00+00:00"
TEMPLATE = ("INSERT INTO message_templates (name, channel, purpose, subject, body_text, body_html, created_by, created_at, updated_at) "
            f"VALUES ('bench', 'sms', 'marketing', NULL, '{{{{ salutation }}}}，本周到店八折，回T退订', NULL, 'bench', '{AT}', '{AT}')")
# Sending as fast as the channel takes it (the default 50 messages/s is a provider limit).
SETTINGS = (f"INSERT INTO settings (key, value, updated_at) VALUES ('engagement', '{{\"rate_per_second\": 100000}}', '{AT}')")


def sh(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def timed(args, budget=None, **kw):
    """Wall seconds, max RSS (MB) and stdout of a command run under /usr/bin/time -v (stopped
    after `budget` seconds when given)."""
    t = time.perf_counter()
    stop = ["timeout", "-s", "TERM", str(budget)] if budget else []
    r = subprocess.run(["/usr/bin/time", "-v"] + stop + args, capture_output=True, text=True, **kw)
    seconds = time.perf_counter() - t
    if r.returncode != 0 and not (budget and r.returncode == 124):
        sys.exit(f"{args[1:3]} failed: {r.stderr[-2000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) / 1024
    return seconds, round(rss, 1), r.stdout


def run_engine(engine, patron, customers_csv, send, env):  # noqa: C901
    if engine == "sqlite":
        db = os.path.join(WORK, "patron.db")
        url = f"sqlite://{db}"
        q = lambda sql: sh(["sqlite3", db, sql]).stdout.strip()  # noqa: E731
    else:
        name = "patron_bench_campaign"
        sh(["psql", f"{PG_ADMIN}/postgres", "-q", "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
        sh(["psql", f"{PG_ADMIN}/postgres", "-q", "-c", f"CREATE DATABASE {name}"])
        url = f"{PG_ADMIN}/{name}"
        q = lambda sql: sh(["psql", url, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql]).stdout.strip()  # noqa: E731
    sh([patron, "import", "customers", customers_csv, "--db", url], env=env)
    q(TEMPLATE)
    q(SETTINGS)
    template_id = q("SELECT MAX(id) FROM message_templates")
    seconds, rss, out = timed([patron, "campaigns", "launch", "--db", url, "--name", "bench", "--segment", "id >= 1",
                               "--channel", "preferred", "--template-id", template_id, "--holdout", "10"], env=env)
    launched = json.loads(out.strip().splitlines()[-1])
    counts = launched["campaign"]["counts"]
    rows = int(q("SELECT COUNT(*) FROM outbox"))
    eligible = counts["audience"] - counts["global_control"] - counts["no_consent"] - counts["capped"]
    assert rows == eligible, (rows, counts)
    assert counts["holdout"] == round(eligible * 0.10) or abs(counts["holdout"] - eligible * 0.10) <= 0.5, counts
    r = {"engine": engine, "customers": counts["audience"], "counts": counts, "outbox_rows": rows,
         "launch_seconds": round(seconds, 2), "launch_in_transaction_seconds": round(launched["launch_seconds"], 2),
         "launch_customers_per_second": round(counts["audience"] / seconds), "launch_peak_rss_mb": rss}
    print(json.dumps(r, ensure_ascii=False), flush=True)
    if send:
        outbox = os.path.join(WORK, f"outbox-{engine}")
        shutil.rmtree(outbox, ignore_errors=True)
        seconds, rss, out = timed([patron, "jobs", "run-once", "--db", url, "--outbox", outbox], budget=send, env=env)
        # The file adapter's lines are the messages sent (one per message, flushed before it counts).
        lines = sum(sum(1 for _ in open(os.path.join(outbox, f))) for f in os.listdir(outbox) if f.endswith(".jsonl"))
        sent = int(q("SELECT COUNT(*) FROM outbox WHERE status = 'sent'"))
        r.update({"send_adapter": "file", "send_budget_seconds": send, "sent": sent, "file_lines": lines,
                  "send_seconds": round(seconds, 2), "messages_per_second": round(sent / seconds, 1), "send_peak_rss_mb": rss})
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--engines", default="sqlite,postgres")
    ap.add_argument("--send", type=int, default=0, metavar="SECONDS",
                    help="also send through the file adapter (one `jobs run-once` round, stopped after SECONDS)")
    a = ap.parse_args()
    patron = RELEASE if os.path.exists(RELEASE) else DEBUG
    if not os.path.exists(patron):
        sys.exit("build first: cargo build --release -p patron")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    sh([patron, "generate", "--customers", str(a.customers), "--seed", "1", "--out", WORK])
    env = dict(os.environ, PATRON_LOG="warn")
    results = []
    for e in a.engines.split(","):
        r = run_engine(e, patron, os.path.join(WORK, "customers.csv"), a.send, env)
        print(json.dumps(r, ensure_ascii=False))
        results.append(r)
    out = {"benchmark": "campaign", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
           "binary": "release" if patron == RELEASE else "debug (dependencies SQLite/sqlx at opt-level 2)",
           "targets": {"launch_seconds_sqlite_1m": 30, "file_adapter_messages_per_second": 5000}, "results": results}
    with open(os.path.join(ROOT, "bench", "results", "campaign.json"), "w") as f:
        json.dump(out, f, indent=2, ensure_ascii=False)
    print("\n| engine | customers | outbox rows | launch s | customers/s | launch RSS MB | sent | messages/s | send RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['engine']} | {r['customers']:,} | {r['outbox_rows']:,} | {r['launch_seconds']} | {r['launch_customers_per_second']:,} | "
              f"{r['launch_peak_rss_mb']} | {r.get('sent', '–')} | {r.get('messages_per_second', '–')} | {r.get('send_peak_rss_mb', '–')} |")


if __name__ == "__main__":
    main()
