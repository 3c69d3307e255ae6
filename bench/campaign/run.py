#!/usr/bin/env python3
"""Campaign benchmark (issue 12 §9): launching a campaign to every customer, and sending.

Per engine (SQLite, PostgreSQL): `patron generate` customers (with their consents), import them,
add an SMS marketing template, and time `patron campaigns launch` over the segment `id >= 1`
(every customer) on the `preferred` channel with a 10% holdout and the default 5% global control
group: one transaction that classifies the audience (segment, consent per channel, frequency
caps) in one query and writes the outbox rows (queued and holdout) with set-based
`INSERT … SELECT`. Checked: one outbox row per eligible customer, holdout = round(10% of them).

Sending, in `--rounds` interleaved rounds (the machine is shared: each round measures patron and
its floor back to back, so that a change of load hits both):
- file adapter (`--send SECONDS`): one `patron jobs run-once` (at most 100,000 messages a round,
  in batches) writing JSON lines, stopped after SECONDS; checked: one line per sent message,
  distinct message ids. Its **floor**: the same lines written raw by Python to one file, 500
  lines per write and one fdatasync per write (patron's batch and fsync scheme without the
  database). With `--before BINARY`, the same run-once with an older patron in each round
  (stopped after `--before-send` seconds).
- SMTP (`--smtp SECONDS`): the e-mail messages only (the others set aside), `patron jobs
  run-once --smtp-url` to a local counting aiosmtpd server (bench/campaign/smtp_count.py, from
  target/smtp-venv) for SECONDS; counted at the server (messages and distinct Message-IDs). Its
  floor: Python's smtplib sending messages of about the same size over one connection to the
  same kind of server (what that server takes from one client).
Between runs the outbox is reset (sent rows back to queued). Reported: seconds, messages/s and
peak memory (max RSS) of each process; medians of the rounds in the table, every round in
`bench/results/campaign.json`. Targets (issue 12): launch < 30 s on SQLite for 1 M customers;
file adapter >= 5,000 messages/s.

Usage: bench/campaign/run.py [--customers 1000000] [--engines sqlite,postgres] [--send 60]
       [--smtp 30] [--rounds 2] [--before PATH [--before-send 30]]
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
# Sending as fast as the channel takes it (the default 50 messages/s is a provider limit), and
# no quiet hours (equal start and end), so that the SMS go out whatever the hour of the run.
SETTINGS = ("INSERT INTO settings (key, value, updated_at) VALUES ('engagement', "
            f"'{{\"rate_per_second\": 100000, \"quiet_start\": \"00:00:00\", \"quiet_end\": \"00:00:00\"}}', '{AT}')")


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


RESET = ("UPDATE outbox SET status = 'queued', attempts = 0, sent_at = NULL, lease_until = NULL, reason = NULL, "
         f"next_attempt_at = '{AT}' WHERE status IN ('sent', 'sending', 'failed') OR (status = 'queued' AND attempts > 0)")
SMTP_VENV = os.path.join(ROOT, "target", "smtp-venv", "bin", "python")


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def file_lines(outbox):
    out = []
    for f in sorted(os.listdir(outbox)):
        if f.endswith(".jsonl"):
            with open(os.path.join(outbox, f), "rb") as fh:
                out.extend(fh.readlines())
    return out


def file_floor(lines, dst, batch=500):
    """Seconds to append `lines` to one file, `batch` lines per write, an fdatasync after each."""
    t = time.perf_counter()
    with open(dst, "ab") as f:
        for i in range(0, len(lines), batch):
            f.write(b"".join(lines[i:i + batch]))
            f.flush()
            os.fdatasync(f.fileno())
    return time.perf_counter() - t


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """The counting SMTP server."""

    def __init__(self):
        self.port = free_port()
        self.p = subprocess.Popen([SMTP_VENV, os.path.join(ROOT, "bench", "campaign", "smtp_count.py"), str(self.port)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.p.stdout.readline().strip() == "READY"

    def count(self):
        self.p.stdin.write("COUNT\n")
        self.p.stdin.flush()
        n, ids = self.p.stdout.readline().split()
        return int(n), int(ids)

    def stop(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


def smtp_floor(size, n=3000):
    """Messages/s Python's smtplib gets through one connection to a fresh counting server."""
    import smtplib
    from email.message import EmailMessage
    sink = Sink()
    body = "x" * max(size - 300, 10)
    msgs = []
    for i in range(n):
        m = EmailMessage()
        m["From"], m["To"], m["Subject"], m["Message-ID"] = "crm@example.com", f"c{i}@example.com", "bench", f"<{i}@floor>"
        m.set_content(body)
        msgs.append(m)
    t = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", sink.port) as c:
        for m in msgs:
            c.send_message(m)
    seconds = time.perf_counter() - t
    got, _ = sink.count()
    sink.stop()
    assert got == n, (got, n)
    return round(n / seconds, 1)


def run_engine(engine, patron, customers_csv, a, env):  # noqa: C901
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
    t = time.perf_counter()
    sh([patron, "import", "customers", customers_csv, "--db", url], env=env)
    print(f"{engine}: imported in {time.perf_counter() - t:.0f} s", flush=True)
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

    def send(binary, budget, extra, outbox):
        q(RESET)
        shutil.rmtree(outbox, ignore_errors=True)
        seconds, rss, _ = timed([binary, "jobs", "run-once", "--db", url, "--outbox", outbox] + extra, budget=budget, env=env)
        sent = int(q("SELECT COUNT(*) FROM outbox WHERE status = 'sent'"))
        return {"seconds": round(seconds, 2), "sent": sent, "messages_per_second": round(sent / seconds, 1), "peak_rss_mb": rss}

    if a.send:
        rounds = []
        for n in range(a.rounds):
            rnd = {}
            if a.before:
                b = send(a.before, a.before_send, [], os.path.join(WORK, f"outbox-{engine}-before"))
                rnd["before"] = b
            outbox = os.path.join(WORK, f"outbox-{engine}")
            f = send(patron, a.send, [], outbox)
            lines = file_lines(outbox)
            ids = {json.loads(x)["message_id"] for x in lines}
            # A run stopped by the budget may have written the batch in flight without recording it
            # (the at-least-once window: at most one batch of 500); never a line twice here.
            assert len(ids) == len(lines) and f["sent"] <= len(lines) <= f["sent"] + 500, (len(lines), f["sent"], len(ids))
            f["file_lines"] = len(lines)
            rnd["file"] = f
            floor_s = file_floor(lines, os.path.join(WORK, f"floor-{engine}.jsonl"))
            os.remove(os.path.join(WORK, f"floor-{engine}.jsonl"))
            rnd["file_floor"] = {"lines": len(lines), "seconds": round(floor_s, 3), "lines_per_second": round(len(lines) / floor_s, 1)}
            print(f"{engine} round {n + 1}: {json.dumps(rnd)}", flush=True)
            rounds.append(rnd)
        r["file_rounds"] = rounds
        r["file_messages_per_second"] = median([x["file"]["messages_per_second"] for x in rounds])
        r["file_sent"] = median([x["file"]["sent"] for x in rounds])
        r["file_seconds"] = median([x["file"]["seconds"] for x in rounds])
        r["file_peak_rss_mb"] = max(x["file"]["peak_rss_mb"] for x in rounds)
        r["file_floor_lines_per_second"] = median([x["file_floor"]["lines_per_second"] for x in rounds])
        if a.before:
            r["before_messages_per_second"] = median([x["before"]["messages_per_second"] for x in rounds])
    if a.smtp:
        q(RESET)
        q("UPDATE outbox SET status = 'skipped', reason = 'bench-aside' WHERE status = 'queued' AND channel <> 'email'")
        rounds = []
        for n in range(a.rounds):
            sink = Sink()
            m = send(patron, a.smtp, ["--smtp-url", f"smtp://127.0.0.1:{sink.port}", "--mail-from", "crm@example.com"],
                     os.path.join(WORK, f"outbox-{engine}-smtp"))
            got, ids = sink.count()
            sink.stop()
            assert got == ids >= m["sent"], (got, ids, m)
            m["accepted_at_server"] = got
            m["messages_per_second"] = round(got / m["seconds"], 1)
            floor = smtp_floor(1200)
            rnd = {"smtp": m, "smtp_floor_messages_per_second": floor}
            print(f"{engine} smtp round {n + 1}: {json.dumps(rnd)}", flush=True)
            rounds.append(rnd)
        r["smtp_rounds"] = rounds
        r["smtp_messages_per_second"] = median([x["smtp"]["messages_per_second"] for x in rounds])
        r["smtp_peak_rss_mb"] = max(x["smtp"]["peak_rss_mb"] for x in rounds)
        r["smtp_floor_messages_per_second"] = median([x["smtp_floor_messages_per_second"] for x in rounds])
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--engines", default="sqlite,postgres")
    ap.add_argument("--send", type=int, default=0, metavar="SECONDS",
                    help="also send through the file adapter (one `jobs run-once` a round, stopped after SECONDS)")
    ap.add_argument("--smtp", type=int, default=0, metavar="SECONDS", help="also send e-mail to a local SMTP server")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--before", metavar="BINARY", help="an older patron to compare the file adapter's sending with")
    ap.add_argument("--before-send", type=int, default=30, metavar="SECONDS")
    a = ap.parse_args()
    patron = RELEASE if os.path.exists(RELEASE) else DEBUG
    if not os.path.exists(patron):
        sys.exit("build first: cargo build --release -p patron")
    if a.smtp and not os.path.exists(SMTP_VENV):
        sys.exit("python3 -m venv target/smtp-venv && target/smtp-venv/bin/pip install aiosmtpd==1.4.6")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    t = time.perf_counter()
    sh([patron, "generate", "--customers", str(a.customers), "--seed", "1", "--out", WORK])
    print(f"generated in {time.perf_counter() - t:.0f} s", flush=True)
    env = dict(os.environ, PATRON_LOG="warn")
    results = []
    for e in a.engines.split(","):
        r = run_engine(e, patron, os.path.join(WORK, "customers.csv"), a, env)
        print(json.dumps(r, ensure_ascii=False), flush=True)
        results.append(r)
    out = {"benchmark": "campaign", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
           "binary": "release" if patron == RELEASE else "debug (dependencies SQLite/sqlx at opt-level 2)",
           "before_binary": a.before, "rounds": a.rounds,
           "targets": {"launch_seconds_sqlite_1m": 30, "file_adapter_messages_per_second": 5000}, "results": results}
    with open(os.path.join(ROOT, "bench", "results", "campaign.json"), "w") as f:
        json.dump(out, f, indent=2, ensure_ascii=False)
    print("\n| engine | customers | outbox rows | launch s | customers/s | launch RSS MB | file: sent | s | messages/s "
          "| floor lines/s | before messages/s | send RSS MB | SMTP messages/s | SMTP floor | SMTP RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    # Whole numbers as such, others to one decimal (a median of two rounds is a float).
    g = lambda r, k: (f"{r[k]:,.0f}" if float(r[k]).is_integer() or r[k] >= 100 else f"{r[k]:,.1f}") \
        if isinstance(r.get(k), (int, float)) else "–"  # noqa: E731
    for r in results:
        print(f"| {r['engine']} | {r['customers']:,} | {r['outbox_rows']:,} | {r['launch_seconds']} | {r['launch_customers_per_second']:,} | "
              f"{r['launch_peak_rss_mb']} | {g(r, 'file_sent')} | {g(r, 'file_seconds')} | {g(r, 'file_messages_per_second')} | "
              f"{g(r, 'file_floor_lines_per_second')} | {g(r, 'before_messages_per_second')} | {g(r, 'file_peak_rss_mb')} | "
              f"{g(r, 'smtp_messages_per_second')} | {g(r, 'smtp_floor_messages_per_second')} | {g(r, 'smtp_peak_rss_mb')} |")


if __name__ == "__main__":
    main()
