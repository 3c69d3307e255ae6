#!/usr/bin/env python3
"""Analytics benchmark: `patron analyze` against pandas + lifetimes (bench/analytics/peer.py) on the
same orders file (DESIGN.md §5: 1 M customers / ~9 M orders, ≥ 50× faster, same fitted parameters to
a relative difference < 1e-3; 10 M customers / ~100 M orders end to end, peak memory reported).

Both tools run the whole pipeline on one `customer_id,date,amount` file derived (untimed) from the
generator's orders.csv: completed orders only, `date` = the business day of `ordered_at`, amount in
yuan. as_of = the day after the last order day; time unit days; expected purchases over 365 days;
CLV over 12 months of 30 days at 1 % a month. Each tool runs in its own process under
`/usr/bin/time -v` (peak RSS); wall time is measured around it, per-stage times come from each
tool's params.json `timings_ms`.

Usage (after `cargo build --release -p patron`):
  python3 bench/analytics/run.py                       # 1 M customers: patron vs peer → bench/results/analytics.json
  python3 bench/analytics/run.py --customers 20000     # smoke run
  python3 bench/analytics/run.py --big                 # 10 M customers, patron alone → bench/results/analytics-10m.json
Options: --patron PATH, --workdir DIR (default bench/work/analytics), --seed S, --only patron|peer,
--timeout SECONDS (per tool run), --keep (keep the generated files).
The peer's virtualenv is bench/.venv-analytics (created on first use with the pinned versions below).
"""
import argparse, csv, json, math, os, shutil, statistics, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from machine import machine  # noqa: E402  (bench/machine.py)
from datetime import date, datetime, timedelta, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VENV = os.path.join(ROOT, "bench", ".venv-analytics")
VPY = os.path.join(VENV, "bin", "python")
RESULTS = os.path.join(ROOT, "bench", "results")
# lifetimes 0.11.3 (the last release) works with these; numpy 2 / pandas ≥ 2.2 / scipy ≥ 1.12 are untested by it.
PINS = ["numpy==1.26.4", "pandas==2.1.4", "scipy==1.11.4", "autograd==1.9.1", "dill==0.4.1", "lifetimes==0.11.3"]
PARAMS = [("bgnbd", "r"), ("bgnbd", "alpha"), ("bgnbd", "a"), ("bgnbd", "b"),
          ("gamma_gamma", "p"), ("gamma_gamma", "q"), ("gamma_gamma", "gamma")]
TARGET_SPEEDUP, TARGET_REL = 50.0, 1e-3
# issue 18 §5: `patron validate` (calibration fit + holdout forecast) on the same file within 2× of analyze.
TARGET_VALIDATE_RATIO = 2.0


def sh(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def ensure_venv():
    ok = os.path.exists(VPY) and subprocess.run([VPY, "-c", "import lifetimes, pandas"], capture_output=True).returncode == 0
    if not ok:
        log(f"creating {VENV} ({', '.join(PINS)})")
        sh([sys.executable, "-m", "venv", VENV])
        sh([VPY, "-m", "pip", "install", "-q", *PINS])
    with open(os.path.join(VENV, ".gitignore"), "w") as f:
        f.write("*\n")  # keep the virtualenv out of git, as `python -m venv` does from 3.13 on
    code = "import numpy, pandas, scipy, lifetimes; print(numpy.__version__, pandas.__version__, scipy.__version__, lifetimes.__version__)"
    v = sh([VPY, "-c", code]).stdout.split()
    return {"python": sh([VPY, "-c", "import platform; print(platform.python_version())"]).stdout.strip(),
            "numpy": v[0], "pandas": v[1], "scipy": v[2], "lifetimes": v[3]}


def generate(patron, customers, seed, end, out):
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    sh([patron, "generate", "--customers", str(customers), "--seed", str(seed), "--end", end, "--out", out])
    return time.perf_counter() - t


def derive(orders_csv, out_csv):
    """customer_id,date,amount from the generator's orders.csv: completed orders, business day of
    ordered_at (local time without offset: its first 10 characters). Returns (rows, last day)."""
    rows, last = 0, ""
    with open(orders_csv, newline="", encoding="utf-8") as f, open(out_csv, "w", newline="", encoding="utf-8") as g:
        r = csv.reader(f)
        h = next(r)
        ci, ti, ai, si = h.index("customer_id"), h.index("ordered_at"), h.index("amount"), h.index("status")
        g.write("customer_id,date,amount\n")
        buf = []
        for row in r:
            if row[si] and row[si] != "completed":
                continue
            d = row[ti][:10]
            if d > last:
                last = d
            buf.append(f"{row[ci]},{d},{row[ai]}\n")
            if len(buf) >= 100_000:
                g.writelines(buf)
                rows += len(buf)
                buf.clear()
        g.writelines(buf)
        rows += len(buf)
    return rows, last


def measured(args, timeout, log_path):
    """Runs args under /usr/bin/time -v; returns (wall seconds, peak RSS MiB)."""
    tv = log_path + ".time"
    wrap = ["/usr/bin/time", "-v", "-o", tv] if os.path.exists("/usr/bin/time") else []
    t = time.perf_counter()
    with open(log_path, "w") as lf:
        p = subprocess.run(wrap + args, stdout=lf, stderr=subprocess.STDOUT, timeout=timeout)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(args)}\n--- {log_path}:\n" + open(log_path).read()[-4000:])
    rss = None
    if wrap:
        for l in open(tv):
            if "Maximum resident set size" in l:
                rss = int(l.rsplit(":", 1)[1]) / 1024
    else:  # no GNU time: the largest child so far (each tool is our only child at that point)
        import resource
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, rss


def patron_args(patron, orders, as_of, out, params):
    args = [patron, "analyze", "--orders", orders, "--as-of", as_of, "--out", out, "--params", params]
    helptext = subprocess.run([patron, "analyze", "--help"], capture_output=True, text=True).stdout
    for flag, value in [("--time-unit", "days"), ("--horizon", "365"), ("--clv-months", "12"), ("--discount", "0.01")]:
        if flag in helptext:  # explicit where the CLI has the option (the defaults are the same)
            args += [flag, value]
    return args


def run_patron(patron, orders, as_of, wd, timeout, runs=1, done=0, total=None):
    """Runs patron `runs` times (it is short, so noise from a shared machine matters); returns
    each run's result (see `median_run`)."""
    out, params = os.path.join(wd, "patron-scores.csv"), os.path.join(wd, "patron-params.json")
    args = patron_args(patron, orders, as_of, out, params)
    if done == 0:
        log("patron:", " ".join(args))
    results = []
    for i in range(done, done + runs):
        wall, rss = measured(args, timeout, os.path.join(wd, "patron.log"))
        results.append({"command": args, "wall_s": wall, "peak_rss_mib": rss, "params": json.load(open(params)), "scores": out})
        log(f"  run {i + 1}/{total or runs}: {wall:.2f} s, {rss:,.0f} MiB")
    return results


def run_validate(patron, orders, end, wd, timeout, runs):
    """Times `patron validate --orders` on the same file: calibration up to six months before the
    period's end, holdout to its end (days). Returns the median run, or None when this patron has
    no `validate` command."""
    helptext = subprocess.run([patron, "--help"], capture_output=True, text=True).stdout
    if "validate" not in helptext:
        log("patron has no `validate` command: not measured")
        return None
    e = date.fromisoformat(end)
    month = e.month - 6
    cal = date(e.year + (month - 1) // 12, (month - 1) % 12 + 1, 1) - timedelta(days=1)
    out = os.path.join(wd, "patron-validation.json")
    args = [patron, "validate", "--orders", orders, "--calibration-end", cal.isoformat(), "--holdout-end", end, "--out", out]
    log("patron:", " ".join(args))
    results = []
    for i in range(runs):
        wall, rss = measured(args, timeout, os.path.join(wd, "patron-validate.log"))
        doc = json.load(open(out))
        results.append({"command": args, "wall_s": wall, "peak_rss_mib": rss,
                        "summary": {"customers": doc.get("customers"), "total": doc.get("total"), "errors": doc.get("errors"),
                                    "bgnbd": doc.get("bgnbd")}})
        log(f"  validate run {i + 1}/{runs}: {wall:.2f} s, {rss:,.0f} MiB")
    med = sorted(results, key=lambda r: r["wall_s"])[(len(results) - 1) // 2]
    return {**med, "all_wall_s": [r["wall_s"] for r in results]}


def median_run(results):
    """The run with the median wall time, with all runs' wall times."""
    med = sorted(results, key=lambda r: r["wall_s"])[(len(results) - 1) // 2]
    return {**med, "all_wall_s": [r["wall_s"] for r in results]}


def run_peer(orders, as_of, wd, timeout):
    out, params = os.path.join(wd, "peer-scores.csv"), os.path.join(wd, "peer-params.json")
    args = [VPY, os.path.join(HERE, "peer.py"), "--orders", orders, "--as-of", as_of, "--time-unit", "days",
            "--horizon", "365", "--clv-months", "12", "--discount", "0.01", "--out", out, "--params", params]
    log("peer:", " ".join(args))
    wall, rss = measured(args, timeout, os.path.join(wd, "peer.log"))
    return {"command": args, "wall_s": wall, "peak_rss_mib": rss, "params": json.load(open(params)), "scores": out}


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def pick(header, *names):
    low = {h.lower(): h for h in header}
    for n in names:
        if n in low:
            return low[n]
    return None


def compare_params(pp, qp):
    """Relative differences patron vs peer; γ scaled to the peer's money unit (yuan)."""
    out = {}
    pg, qg = pp.get("gamma_gamma") or {}, qp.get("gamma_gamma") or {}
    gscale, gunit = 1.0, "same as the file (yuan)"
    if pg.get("gamma") and qg.get("gamma"):
        ratio = pg["gamma"] / qg["gamma"]
        if 30 < ratio < 300:
            gscale, gunit = 100.0, "cents (patron) vs yuan (peer): patron γ / 100"
    for model, k in PARAMS:
        a, b = (pp.get(model) or {}).get(k), (qp.get(model) or {}).get(k)
        if a is None or b is None:
            out[k] = {"patron": a, "peer": b, "rel_diff": None}
            continue
        if k == "gamma":
            a = a / gscale
        out[k] = {"patron": a, "peer": b, "rel_diff": rel(a, b)}
    for model in ("bgnbd", "gamma_gamma"):
        a, b = (pp.get(model) or {}).get("log_likelihood"), (qp.get(model) or {}).get("log_likelihood")
        if model == "gamma_gamma" and a is not None and b is not None:
            # the density of m in cents is 1/100 of that in yuan: + n·ln(100) puts a log-likelihood
            # of m in cents in yuan (patron's may be either, whatever unit its γ is given in)
            n = pg.get("customers") or qg.get("customers") or 0
            if abs(a + n * math.log(100) - b) < abs(a - b):
                a = a + n * math.log(100)
                out["gamma_gamma_log_likelihood_note"] = "patron's is for m in cents; shifted by + n·ln(100)"
        out[f"{model}.log_likelihood"] = {"patron": a, "peer": b, "rel_diff": rel(a, b) if a and b else None}
    note = out.pop("gamma_gamma_log_likelihood_note", None)
    return out, gunit + (f"; {note}" if note else "")


def quantiles(v):
    if not v:
        return {"n": 0}
    v = sorted(v)
    q = lambda p: v[min(len(v) - 1, int(p * (len(v) - 1) + 0.5))]
    return {"n": len(v), "median": q(0.5), "p99": q(0.99), "max": v[-1]}


MODEL_COLS = ("p_alive", "expected_purchases", "expected_order_value", "clv")
FLOAT_COLS = MODEL_COLS + ("m", "monetary", "trailing_spend", "loyalty_index")
MONEY_COLS = ("m", "expected_order_value", "clv", "monetary", "trailing_spend")


def compare_scores(patron_csv, peer_csv):
    """Per-customer agreement, joined on customer_id, column by column of the peer's scores.csv
    (the same names as patron's): relative differences for the real-valued columns, the share of
    identical values for the others (numbers compared as numbers)."""
    with open(peer_csv, newline="") as f:
        r = csv.reader(f)
        qh = next(r)
        peer = {row[0]: row for row in r}
    with open(patron_csv, newline="") as f:
        r = csv.reader(f)
        ph = next(r)
        if "customer_id" not in ph:
            return {"error": f"patron's scores.csv has no customer_id column: {ph}"}
        pid = ph.index("customer_id")
        both = [(c, ph.index(c), qh.index(c)) for c in qh[1:] if c in ph]
        pairs = {c: [] for c, _, _ in both if c in FLOAT_COLS}
        agree = {c: [0, 0] for c, _, _ in both if c not in FLOAT_COLS}
        mismatch_examples = {c: [] for c in agree}
        matched = 0
        for row in r:
            q = peer.get(row[pid])
            if q is None:
                continue
            matched += 1
            for c, i, j in both:
                a, b = row[i].strip(), q[j].strip()
                if c in pairs:
                    if a and b:
                        pairs[c].append((float(a), float(b)))
                    continue
                same = a.lower() == b.lower()
                if not same:
                    try:
                        same = math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
                    except ValueError:
                        pass
                agree[c][0] += same
                agree[c][1] += 1
                if not same and len(mismatch_examples[c]) < 5:
                    mismatch_examples[c].append({"customer_id": row[pid], "patron": a, "peer": b})
    res = {"customers_compared": matched, "customers_patron_only_or_peer_only": abs(len(peer) - matched),
           "missing_in_patron": [c for c in qh[1:] if c not in ph],
           "extra_in_patron": [c for c in ph if c not in qh]}
    for c, pr in pairs.items():
        scale = 1.0
        if c in MONEY_COLS:  # cents vs major units, should one side write cents
            ratios = [a / b for a, b in pr[:100000] if a > 0 and b > 0]
            m = statistics.median(ratios) if ratios else 1.0
            scale = 10.0 ** round(math.log10(m)) if m > 0 else 1.0
        d = [abs(a / scale - b) / max(abs(b), 1e-300) for a, b in pr if abs(b) > 1e-9]
        res[c] = {"unit_scale": scale, **quantiles(d)}
    res["agreement"] = {c: (v[0] / v[1] if v[1] else None) for c, v in agree.items()}
    res["mismatch_examples"] = {c: v for c, v in mismatch_examples.items() if v}
    return res


def stage_rows(p_ms, q_ms):
    """Aligns patron's and the peer's stage names (patron's may differ slightly)."""
    alias = {"read": ("read", "parse", "load"), "summaries": ("summaries", "summary", "summarize"),
             "rfm": ("rfm",), "bgnbd": ("bgnbd", "bg_nbd", "fit_bgnbd"),
             "gamma_gamma": ("gamma_gamma", "gg", "fit_gamma_gamma"), "scores": ("scores", "score", "predict", "models"),
             "loyalty": ("loyalty",), "abcd": ("abcd",), "lifecycle": ("lifecycle", "churn"), "write": ("write", "output")}
    rows, used = [], set()
    for stage, names in alias.items():
        pv = next(((n, p_ms[n]) for n in names if n in p_ms), (None, None))
        if pv[0]:
            used.add(pv[0])
        rows.append((stage, pv[1], q_ms.get(stage)))
    for k, v in p_ms.items():
        if k not in used and k != "total":
            rows.append((f"{k} (patron only)", v, None))
    rows.append(("**total (tool's own)**", p_ms.get("total"), q_ms.get("total")))
    return rows


def fmt_ms(v):
    if v is None:
        return "—"
    return f"{v / 1000:,.2f} s" if v >= 1000 else f"{v:,.1f} ms"


def fmt_rel(v):
    return "—" if v is None else f"{v:.1e}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patron", default=os.path.join(ROOT, "target", "release", "patron"))
    ap.add_argument("--generator", help="binary for `generate` (default: --patron)")
    ap.add_argument("--customers", type=int, help="default 1,000,000 (10,000,000 with --big)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--end", default="2026-06-30", help="last day of the generated period (the generator's default); as_of = the day after")
    ap.add_argument("--workdir", default=os.path.join(ROOT, "bench", "work", "analytics"))
    ap.add_argument("--big", action="store_true", help="patron alone at 10 M customers → analytics-10m.json")
    ap.add_argument("--only", choices=["patron", "peer"], help="run one tool (development)")
    ap.add_argument("--patron-runs", type=int, default=5, help="patron runs, half before and half after the peer; the median is reported (default 5)")
    ap.add_argument("--validate-runs", type=int, default=3, help="`patron validate` runs after analyze's; the median is reported (default 3, 0 = skip)")
    ap.add_argument("--timeout", type=float, default=6 * 3600, help="seconds per tool run")
    ap.add_argument("--keep", action="store_true", help="keep the generated files in the workdir")
    a = ap.parse_args()
    customers = a.customers or (10_000_000 if a.big else 1_000_000)
    patron = os.path.abspath(a.patron)
    if not os.path.exists(patron):
        sys.exit(f"no patron binary at {patron}: cargo build --release -p patron (or --patron PATH)")
    wd = os.path.abspath(a.workdir if not a.big else os.path.join(a.workdir, "big"))
    os.makedirs(wd, exist_ok=True)
    # Disk, per customer: the generated files ~1,460 bytes (orders.csv ~1,100), the derived file
    # ~260, the two scores files ~350; with some margin.
    need = customers * 2200
    free = shutil.disk_usage(wd).free
    log(f"workdir {wd}: {free / 2**30:.1f} GiB free, this run needs about {need / 2**30:.1f} GiB")
    if free < need:
        sys.exit(f"not enough disk under {wd}: {free / 2**30:.1f} GiB free, need ~{need / 2**30:.1f} GiB (use --workdir)")
    versions = None if a.big or a.only == "patron" else ensure_venv()

    gen_dir = os.path.join(wd, "gen")
    log(f"generating {customers:,} customers (seed {a.seed}, period ending {a.end}) …")
    gen_s = generate(os.path.abspath(a.generator or patron), customers, a.seed, a.end, gen_dir)
    log(f"generated in {gen_s:.1f} s")
    as_of = (date.fromisoformat(a.end) + timedelta(days=1)).isoformat()
    if not a.keep:
        for fn in ("customers.csv", "contacts.csv", "interactions.csv"):
            try:
                os.remove(os.path.join(gen_dir, fn))
            except FileNotFoundError:
                pass
    data = {"customers": customers, "seed": a.seed, "period_end": a.end, "as_of": as_of, "generate_s": gen_s}
    if a.big:
        # patron reads the generator's orders.csv itself (ordered_at is an alias of date; orders that
        # are not completed are skipped): the whole way from the raw file, streamed once
        orders = os.path.join(gen_dir, "orders.csv")
        data["orders_file"] = "the generator's orders.csv (all 13 columns)"
        data["orders_file_mib"] = round(os.path.getsize(orders) / 2**20, 1)
    else:
        with open(os.path.join(gen_dir, "orders.csv"), "rb") as f:
            generated_orders = sum(1 for _ in f) - 1
        orders = os.path.join(wd, "orders-cda.csv")
        t = time.perf_counter()
        rows, last = derive(os.path.join(gen_dir, "orders.csv"), orders)
        derive_s = time.perf_counter() - t
        if last > a.end:
            sys.exit(f"orders after --end {a.end} (last {last})")
        log(f"{generated_orders:,} orders generated; {rows:,} completed orders to {orders} "
            f"({os.path.getsize(orders) / 2**20:,.0f} MiB, {derive_s:.1f} s); last order day {last}, as_of {as_of}")
        data.update({"generated_orders": generated_orders, "orders": rows, "last_order_day": last,
                     "orders_file": "customer_id,date,amount derived from orders.csv (completed orders, business day)",
                     "orders_file_mib": round(os.path.getsize(orders) / 2**20, 1), "derive_s": derive_s})
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()

    if a.big:
        p = median_run(run_patron(patron, orders, as_of, wd, a.timeout, 1))
        pp = p["params"]
        data.update({"generated_orders": pp.get("rows_read"), "orders": pp.get("orders"),
                     "orders_skipped_not_completed": pp.get("rows_skipped_not_completed"),
                     "customers_in_file": pp.get("customers")})
        out = {"benchmark": "analytics-10m", "date": stamp, "commit": commit, "machine": machine(), "data": data,
               "patron": {"command": " ".join(p["command"]), "wall_s": p["wall_s"], "peak_rss_mib": p["peak_rss_mib"],
                          "timings_ms": p["params"].get("timings_ms"), "bgnbd": p["params"].get("bgnbd"),
                          "gamma_gamma": p["params"].get("gamma_gamma"), "warnings": p["params"].get("warnings")},
               "disk_free_gib_before": round(free / 2**30, 1)}
        os.makedirs(RESULTS, exist_ok=True)
        name = "analytics-10m.json" if customers == 10_000_000 else f"analytics-big-{customers}.json"
        with open(os.path.join(RESULTS, name), "w") as f:
            json.dump(out, f, indent=2, default=str)
        print_big(out)
        cleanup(a, gen_dir, orders, wd)
        return

    # patron's runs are short and a shared machine's speed drifts over minutes: half of them run
    # before the peer and half after, so the median sees the conditions the peer ran in.
    runs, before = a.patron_runs, (a.patron_runs + 1) // 2 if a.only is None else a.patron_runs
    patron_runs = run_patron(patron, orders, as_of, wd, a.timeout, before, 0, runs) if a.only != "peer" else []
    q = run_peer(orders, as_of, wd, a.timeout) if a.only != "patron" else None
    if a.only != "peer" and runs > before:
        patron_runs += run_patron(patron, orders, as_of, wd, a.timeout, runs - before, before, runs)
    p = median_run(patron_runs) if patron_runs else None
    v = run_validate(patron, orders, a.end, wd, a.timeout, a.validate_runs) if a.only != "peer" and a.validate_runs > 0 else None
    out = {"benchmark": "analytics", "date": stamp, "commit": commit, "machine": machine(), "peer_versions": versions,
           "data": data}
    if v:
        out["validate"] = {"command": " ".join(v["command"]), "wall_s": v["wall_s"], "all_wall_s": v["all_wall_s"],
                           "peak_rss_mib": v["peak_rss_mib"], "summary": v["summary"],
                           "ratio_to_analyze": v["wall_s"] / p["wall_s"] if p else None,
                           "target_ratio": TARGET_VALIDATE_RATIO}
    for name, r in (("patron", p), ("peer", q)):
        if r:
            out[name] = {"command": " ".join(r["command"]), "wall_s": r["wall_s"], "all_wall_s": r.get("all_wall_s"),
                         "peak_rss_mib": r["peak_rss_mib"],
                         "timings_ms": r["params"].get("timings_ms"),
                         "bgnbd": r["params"].get("bgnbd"), "gamma_gamma": r["params"].get("gamma_gamma"),
                         "warnings": r["params"].get("warnings")}
    if p and q:
        out["speedup"] = q["wall_s"] / p["wall_s"]
        out["target_speedup"] = TARGET_SPEEDUP
        out["param_diff"], out["gamma_unit"] = compare_params(p["params"], q["params"])
        out["param_target_rel"] = TARGET_REL
        out["scores"] = compare_scores(p["scores"], q["scores"])
        out["stages"] = [{"stage": s, "patron_ms": a_, "peer_ms": b_} for s, a_, b_ in
                         stage_rows(p["params"].get("timings_ms") or {}, q["params"].get("timings_ms") or {})]
    os.makedirs(RESULTS, exist_ok=True)
    name = "analytics.json" if customers == 1_000_000 and not a.only else f"analytics-{customers}{'-' + a.only if a.only else ''}.json"
    with open(os.path.join(RESULTS, name), "w") as f:
        json.dump(out, f, indent=2, default=str)
    log(f"wrote {os.path.join(RESULTS, name)}")
    print_main(out)
    cleanup(a, gen_dir, orders, wd)


def cleanup(a, gen_dir, orders, wd):
    if not a.keep:
        shutil.rmtree(gen_dir, ignore_errors=True)
        for fn in (orders, *(os.path.join(wd, f) for f in ("patron-scores.csv", "peer-scores.csv", "patron-validation.json"))):
            try:
                os.remove(fn)
            except FileNotFoundError:
                pass


def print_main(o):
    d, m = o["data"], o["machine"]
    print("<!-- bench:analytics -->")
    print(f"{d['customers']:,} customers, {d['orders']:,} orders (seed {d['seed']}, as of {d['as_of']}); "
          f"{m['cpu']}, {m['nproc']} cores, {m['memory_gib']} GiB; {m['os']}; {o['date'][:10]}.\n")
    if "patron" in o and "peer" in o:
        print("| stage | patron | pandas + lifetimes | speedup |")
        print("|---|---:|---:|---:|")
        for s in o["stages"]:
            a, b = s["patron_ms"], s["peer_ms"]
            sp = (f"{b / a:,.0f}×" if b / a >= 10 else f"{b / a:.1f}×") if a and b else "—"
            print(f"| {s['stage']} | {fmt_ms(a)} | {fmt_ms(b)} | {sp} |")
        p, q = o["patron"], o["peer"]
        print(f"| **wall time (process)** | **{p['wall_s']:,.2f} s** | **{q['wall_s']:,.1f} s** | "
              f"**{o['speedup']:,.0f}×** (target ≥ {o['target_speedup']:.0f}×) |")
        print(f"| peak RSS | {p['peak_rss_mib']:,.0f} MiB | {q['peak_rss_mib']:,.0f} MiB | |")
        walls = p.get("all_wall_s") or [p["wall_s"]]
        print(f"\npatron's {len(walls)} runs (half before the peer, half after; the median is shown): "
              + ", ".join(f"{w:.2f}" for w in walls) + " s. "
              "patron runs rfm and loyalty alongside the bgnbd and gamma_gamma fits, so those stage times overlap.\n")
        print(f"| parameter | patron | lifetimes | relative difference (target < {o['param_target_rel']:g}) |")
        print("|---|---:|---:|---:|")
        for k, v in o["param_diff"].items():
            ok = "" if v["rel_diff"] is None or k.endswith("log_likelihood") else (" ✓" if v["rel_diff"] < o["param_target_rel"] else " ✗")
            fmtv = lambda x: "—" if x is None else f"{x:.6g}"
            print(f"| {k} | {fmtv(v['patron'])} | {fmtv(v['peer'])} | {fmt_rel(v['rel_diff'])}{ok} |")
        print(f"\nγ unit: {o['gamma_unit']}.")
        s = o["scores"]
        if "error" in s:
            print(f"\nper-customer comparison: {s['error']}")
        else:
            print(f"\nPer-customer agreement over {s['customers_compared']:,} customers, relative difference "
                  f"(money columns in the same unit):\n")
            print("| column | median | p99 | max |")
            print("|---|---:|---:|---:|")
            for k in FLOAT_COLS:
                v = s.get(k, {})
                if v.get("n"):
                    print(f"| {k} | {v['median']:.1e} | {v['p99']:.1e} | {v['max']:.1e} |")
            ag = {k: v for k, v in s["agreement"].items() if v is not None}
            if ag:
                print("\nIdentical in both: " + ", ".join(f"{k} {v:.4%}" for k, v in ag.items()) + ".")
            if s["missing_in_patron"]:
                print(f"Not in patron's scores.csv: {', '.join(s['missing_in_patron'])}.")
    else:
        for name in ("patron", "peer"):
            if name in o:
                r = o[name]
                print(f"{name}: wall {r['wall_s']:.2f} s, peak RSS {r['peak_rss_mib']:,.0f} MiB")
                print("| stage | ms |\n|---|---:|")
                for k, v in sorted((r["timings_ms"] or {}).items(), key=lambda kv: kv[1] if kv[0] != "total" else 1e300):
                    print(f"| {k} | {v:,.1f} |")
    if "validate" in o:
        v = o["validate"]
        ratio = v.get("ratio_to_analyze")
        verdict = "" if ratio is None else (f"; {ratio:.2f}× analyze's wall time (target < {v['target_ratio']:.0f}×)"
                                            + (" ✓" if ratio < v["target_ratio"] else " ✗"))
        print(f"\n`patron validate` (calibration fit + holdout forecast) on the same file: median "
              f"{v['wall_s']:.2f} s of " + ", ".join(f"{w:.2f}" for w in v["all_wall_s"])
              + f" s, peak RSS {v['peak_rss_mib']:,.0f} MiB{verdict}.")
    print("<!-- /bench:analytics -->")


def print_big(o):
    d, m, p = o["data"], o["machine"], o["patron"]
    print("<!-- bench:analytics-10m -->")
    print(f"patron alone, {d['customers']:,} customers, {d['orders']:,} orders ({d['orders_file_mib']:,.0f} MiB CSV); "
          f"{m['cpu']}, {m['nproc']} cores, {m['memory_gib']} GiB; {o['date'][:10]}.\n")
    print("| step | time |\n|---|---:|")
    print(f"| generate ({d['generated_orders']:,} orders, all files) | {d['generate_s']:,.1f} s |")
    order = ["read", "summaries", "rfm", "bgnbd", "gamma_gamma", "scores", "loyalty", "abcd", "lifecycle", "write"]
    tm = p["timings_ms"] or {}
    for k in sorted((k for k in tm if k != "total"), key=lambda k: (order.index(k) if k in order else len(order), k)):
        print(f"| analyze: {k} | {fmt_ms(tm[k])} |")
    print(f"| **analyze wall time** | **{p['wall_s']:,.1f} s** |")
    print(f"| analyze peak RSS | {p['peak_rss_mib']:,.0f} MiB |")
    bg, gg = p.get("bgnbd") or {}, p.get("gamma_gamma") or {}
    if bg:
        print(f"\nBG/NBD r={bg.get('r'):.4g} α={bg.get('alpha'):.4g} a={bg.get('a'):.4g} b={bg.get('b'):.4g} "
              f"(converged {bg.get('converged')}); Gamma-Gamma p={gg.get('p', float('nan')):.4g} "
              f"q={gg.get('q', float('nan')):.4g} γ={gg.get('gamma', float('nan')):.4g}")
    print("<!-- /bench:analytics-10m -->")


if __name__ == "__main__":
    main()
