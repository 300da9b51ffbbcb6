#!/usr/bin/env python3
"""Continuous fuzzing on one machine: the campaign runner for normgraph's libFuzzer targets.

    bazel run //tools:fuzz_campaign -- [--targets=all|NAME[,NAME]] [--fork=N] [--time=SECONDS]
                                       [--no-build] [--json=PATH]

For each target (in turn): builds it with --config=fuzz (libFuzzer + ASan + UBSan), fuzzes for
--time seconds with -fork=N workers (default: all cores) and -ignore_crashes=1, so a crash in one
worker is recorded and the campaign goes on. The corpus persists in fuzz/out/NAME/corpus (seeded from
fuzz/corpus/NAME) and is merged and minimized at the end; crashes land in fuzz/out/NAME/crashes, each
reproduced once, deduplicated by the top of its stack, and reported with a one-line reproduce
command. A progress line prints every --progress seconds; the summary is printed as text and written
as JSON (fuzz/out/campaign-TIMESTAMP.json, or --json). Exit status 1 if any new crash was found.
"""
import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

TARGETS = ["graph_replay_fuzzer", "safetensors_fuzzer"]
STATS = re.compile(r"#(\d+):?\s.*?cov: (\d+) ft: (\d+) corp: (\d+).*?exec/s:? (\d+)"
                   r"(?:.*?oom/timeout/crash: (\d+)/(\d+)/(\d+))?")
FRAME = re.compile(r"^\s*#\d+ 0x[0-9a-f]+ in (\S+)")


def workspace():
    return os.environ.get("BUILD_WORKSPACE_DIRECTORY") or os.getcwd()


def log(msg):
    print(msg, flush=True)


def build(targets, ws):
    cmd = ["bazel", "build", "--config=fuzz"] + ["//fuzz:" + t for t in targets]
    log("building: " + " ".join(cmd))
    subprocess.run(cmd, cwd=ws, check=True)
    out = subprocess.run(["bazel", "info", "--config=fuzz", "bazel-bin"], cwd=ws, check=True,
                         capture_output=True, text=True).stdout.strip()
    return {t: os.path.join(out, "fuzz", t) for t in targets}


def stack_key(output):
    """Dedup key: the first three frames of the crash stack that are not sanitizer or libc
    internals, plus, for oracle findings (which all abort from the fuzz target's entry point), the
    kind of finding with names and numbers stripped."""
    frames = []
    for line in output.splitlines():
        m = FRAME.match(line)
        if not m:
            continue
        fn = m.group(1)
        if any(fn.startswith(p) for p in ("__sanitizer", "__asan", "__ubsan", "fuzzer::", "abort",
                                         "raise", "__GI_", "__pthread", "pthread_kill", "gsignal")):
            continue
        frames.append(fn)
        if len(frames) == 3:
            break
    finding = next((l for l in output.splitlines() if "oracle:" in l), "")
    if finding:
        kind = finding.split("oracle:", 1)[1].split("[", 1)[0]
        kind = re.sub(r"\S*[._]\S*|\d+", "X", kind).strip()  # drop tensor names and numbers
        frames.append("oracle: " + kind)
    if not frames:
        first = next((l for l in output.splitlines() if "ERROR" in l), "unknown")
        frames = [re.sub(r"0x[0-9a-f]+|#\d+|\d+", "N", first)[:200]]
    return hashlib.sha1("|".join(frames).encode()).hexdigest()[:12], frames


def reproduce(binary, crash):
    env = dict(os.environ, ASAN_OPTIONS="symbolize=1:detect_leaks=1",
               UBSAN_OPTIONS="print_stacktrace=1")
    p = subprocess.run([binary, crash], capture_output=True, text=True, env=env, timeout=120)
    return p.returncode, p.stdout + p.stderr


def fuzz_target(name, binary, args, ws):
    root = os.path.join(ws, "fuzz", "out", name)
    corpus, crashes = os.path.join(root, "corpus"), os.path.join(root, "crashes")
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(crashes, exist_ok=True)
    for seed in glob.glob(os.path.join(ws, "fuzz", "corpus", name, "*")):
        dst = os.path.join(corpus, os.path.basename(seed))
        if not os.path.exists(dst):
            shutil.copy(seed, dst)
    known_path = os.path.join(root, "known_crashes.json")
    known = json.load(open(known_path)) if os.path.exists(known_path) else {}
    before = set(os.listdir(crashes))
    corpus_before = len(os.listdir(corpus))

    flags = [f"-fork={args.fork}", "-ignore_crashes=1", "-ignore_ooms=1", "-ignore_timeouts=1",
             f"-max_total_time={args.time}", f"-artifact_prefix={crashes}/", "-print_final_stats=1",
             "-rss_limit_mb=4096", "-timeout=30"]
    options = os.path.join(ws, "fuzz", name + ".dict")
    if os.path.exists(options):
        flags.append(f"-dict={options}")
    flags.append("-max_len=" + ("512" if name == "graph_replay_fuzzer" else "4096"))
    cmd = [binary] + flags + [corpus, os.path.join(ws, "fuzz", "corpus", name)]
    log(f"[{name}] " + " ".join(cmd))
    start = time.time()
    last = {"execs": 0, "cov": 0, "ft": 0, "corp": corpus_before, "exec_s": 0, "crash": 0}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", env=dict(os.environ, ASAN_OPTIONS="detect_leaks=1"))
    stop = threading.Event()

    def progress():
        while not stop.wait(args.progress):
            log(f"[{name}] {time.time() - start:6.0f}s  execs {last['execs']}  exec/s {last['exec_s']}"
                f"  cov {last['cov']}  ft {last['ft']}  corpus {last['corp']}  crashes {last['crash']}")

    t = threading.Thread(target=progress, daemon=True)
    t.start()
    with open(os.path.join(root, "last_run.log"), "w") as raw:
        for line in proc.stdout:
            raw.write(line)
            m = STATS.search(line)
            if m:
                last.update(execs=int(m.group(1)), cov=int(m.group(2)), ft=int(m.group(3)),
                            corp=int(m.group(4)), exec_s=int(m.group(5)))
                if m.group(8) is not None:
                    last["crash"] = int(m.group(8))
    proc.wait()
    stop.set()
    elapsed = time.time() - start

    # Merge and minimize the corpus.
    merged = corpus + ".merged"
    shutil.rmtree(merged, ignore_errors=True)
    os.makedirs(merged)
    m = subprocess.run([binary, "-merge=1", f"-artifact_prefix={crashes}/", merged, corpus],
                       capture_output=True, text=True)
    if m.returncode == 0 and os.listdir(merged):
        shutil.rmtree(corpus)
        os.rename(merged, corpus)
    else:
        shutil.rmtree(merged, ignore_errors=True)

    new_crashes = []
    for f in sorted(set(os.listdir(crashes)) - before):
        path = os.path.join(crashes, f)
        rc, out = reproduce(binary, path)
        key, frames = stack_key(out)
        mode = os.environ.get("NORMGRAPH_FUZZ_MODE")
        repro = (f"NORMGRAPH_FUZZ_MODE={mode} " if mode else "") + f"{binary} {path}"
        entry = {"file": path, "reproduces": rc != 0, "stack": frames, "repro": repro,
                 "first_line": next((l for l in out.splitlines() if "oracle:" in l or "ERROR" in l), "")}
        if key not in known:
            known[key] = entry
            new_crashes.append(entry)
    json.dump(known, open(known_path, "w"), indent=1)
    return {
        "target": name, "seconds": round(elapsed), "fork": args.fork, "execs": last["execs"],
        "exec_per_s": round(last["execs"] / elapsed) if elapsed else 0,
        "exec_per_s_per_worker": round(last["execs"] / elapsed / args.fork) if elapsed else 0,
        "coverage": last["cov"], "features": last["ft"], "corpus_before": corpus_before,
        "corpus_after": len(os.listdir(corpus)), "worker_crashes": last["crash"],
        "new_unique_crashes": new_crashes, "exit_code": proc.returncode,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default="all")
    ap.add_argument("--fork", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--time", type=int, default=600, help="seconds per target")
    ap.add_argument("--progress", type=int, default=30, help="seconds between progress lines")
    ap.add_argument("--no-build", action="store_true", help="use already built binaries")
    ap.add_argument("--bin-dir", help="where the fuzz binaries are (with --no-build)")
    ap.add_argument("--json", help="where to write the JSON summary")
    args = ap.parse_args()
    ws = workspace()
    targets = TARGETS if args.targets == "all" else args.targets.split(",")
    for t in targets:
        if t not in TARGETS:
            sys.exit(f"unknown target {t}; known: {', '.join(TARGETS)}")
    if args.no_build:
        bin_dir = args.bin_dir or os.path.join(ws, "bazel-bin", "fuzz")
        binaries = {t: os.path.join(bin_dir, t) for t in targets}
    else:
        binaries = build(targets, ws)
    results = [fuzz_target(t, binaries[t], args, ws) for t in targets]

    log("\n=== campaign summary")
    new_total = 0
    for r in results:
        log(f"{r['target']}: {r['seconds']} s x {r['fork']} workers, {r['execs']} execs "
            f"({r['exec_per_s']} exec/s, {r['exec_per_s_per_worker']} per worker), cov {r['coverage']}, "
            f"ft {r['features']}, corpus {r['corpus_before']} -> {r['corpus_after']}, "
            f"worker crashes {r['worker_crashes']}, new unique crashes {len(r['new_unique_crashes'])}")
        for c in r["new_unique_crashes"]:
            log(f"  NEW CRASH: {c['first_line']}\n    stack: {' <- '.join(c['stack'])}\n"
                f"    reproduce: {c['repro']}")
        new_total += len(r["new_unique_crashes"])
    path = args.json or os.path.join(ws, "fuzz", "out", time.strftime("campaign-%Y%m%d-%H%M%S.json"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    json.dump({"targets": results, "new_unique_crashes": new_total}, open(path, "w"), indent=1)
    log(f"summary written to {path}")
    sys.exit(1 if new_total else 0)


if __name__ == "__main__":
    main()
