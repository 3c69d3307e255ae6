#!/usr/bin/env python3
"""Fuzzing with cargo fuzz (libFuzzer, nightly), not in CI: each target in fuzz/ runs for SECONDS
(default 600) from the committed seed corpus (fuzz/corpus/TARGET), one after another. A crash
leaves its input under fuzz/artifacts/TARGET/; turn it into a regression test, fix it, and run
again. Writes bench/results/fuzz.json (runs, executions per second, corpus size, crashes per
target) and prints the README table.

The targets: `import` (the importer on arbitrary bytes: every kind, CSV and JSON lines, UTF-8 and
GB18030), `filter_rule` (the segment language: refused with a message, or its SQL runs without a
database error), `survey_answer` (arbitrary JSON answers to a survey with every question type),
`template` (message templates: the lint never panics, a template it passes renders, within the
render's fuel).
The oracle besides "no panic": client input never becomes a server-side error (StoreError::Internal
or ::Database, which the API answers with 5xx).

Usage: bench/fuzz/run.py [--seconds 600] [--targets import,filter_rule,survey_answer,template]
Needs: rustup toolchain nightly, cargo install cargo-fuzz.
"""
import argparse, json, os, re, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from machine import machine  # noqa: E402  (bench/machine.py)
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FUZZ = os.path.join(ROOT, "fuzz")
TARGETS = ["import", "filter_rule", "survey_answer", "template"]


def run(target, seconds):
    corpus = os.path.join(FUZZ, "corpus", target)
    work = os.path.join(ROOT, "target", "fuzz-corpus", target)
    os.makedirs(work, exist_ok=True)
    artifacts = os.path.join(FUZZ, "artifacts", target)
    os.makedirs(artifacts, exist_ok=True)
    before = set(os.listdir(artifacts))
    started = time.time()
    # The working corpus grows under target/; the committed seeds are read, never written.
    p = subprocess.run(
        ["cargo", "+nightly", "fuzz", "run", "--sanitizer", "none", target, work, corpus, "--", f"-max_total_time={seconds}", "-print_final_stats=1",
         "-rss_limit_mb=4096", "-timeout=20"],
        cwd=FUZZ, capture_output=True, text=True)
    took = time.time() - started
    log = p.stdout + p.stderr
    with open(os.path.join(ROOT, "target", f"fuzz-{target}.log"), "w") as f:
        f.write(log)
    stat = lambda name: int(m.group(1)) if (m := re.search(rf"stat::{name}:\s+(\d+)", log)) else None
    crashes = sorted(set(os.listdir(artifacts)) - before)
    runs = stat("number_of_executed_units")
    return {"target": target, "seconds": round(took), "runs": runs,
            "execs_per_sec": round(runs / seconds) if runs else None,
            "corpus": len(os.listdir(work)), "crashes": len(crashes), "crash_files": crashes,
            "exit": p.returncode}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--targets", default=",".join(TARGETS))
    a = ap.parse_args()
    rows = [run(t, a.seconds) for t in a.targets.split(",")]
    out = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seconds_per_target": a.seconds,
           "machine": machine(rustc=subprocess.run(["rustc", "+nightly", "--version"], capture_output=True, text=True).stdout.strip()),
           "targets": rows}
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "fuzz.json"), "w") as f:
        json.dump(out, f, indent=2)
    print("| target | time | executions | per second | corpus | crashes |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| `{r['target']}` | {r['seconds']} s | {r['runs'] or '?':,} | {r['execs_per_sec'] or '?'} | {r['corpus']} | {r['crashes']} |"
              if isinstance(r['runs'], int) else
              f"| `{r['target']}` | {r['seconds']} s | ? | ? | {r['corpus']} | {r['crashes']} |")
    sys.exit(1 if any(r["crashes"] for r in rows) else 0)


if __name__ == "__main__":
    main()
