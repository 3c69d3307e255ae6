"""The machine a benchmark ran on, for its JSON and the README's table, and where the repository,
the results and patron's binary are (shared by bench/*/run.py)."""
import os
import platform

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")


def patron_binary():
    """target/release/patron when built, else target/debug/patron."""
    release, debug = (os.path.join(ROOT, "target", b, "patron") for b in ("release", "debug"))
    return release if os.path.exists(release) else debug


def machine(**extra):
    """CPU model, cores, memory, OS and the load at the end of the run, plus `extra` (tool versions)."""
    cpu = ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except Exception:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    osname = platform.platform()
    try:
        osname = next(l.split("=", 1)[1].strip().strip('"') for l in open("/etc/os-release") if l.startswith("PRETTY_NAME=")) \
            + f" ({platform.release()})"
    except Exception:
        pass
    out = {"cpu": cpu, "cores": os.cpu_count(), "nproc": len(os.sched_getaffinity(0)), "memory_gib": round(mem, 1),
           "os": osname, "load_avg_at_end": [round(x, 2) for x in os.getloadavg()]}
    out.update(extra)
    return out
