#!/usr/bin/env python3
"""Continuous fuzzing on one machine: the campaign runner for normgraph's libFuzzer targets.

    bazel run //tools:fuzz_campaign -- [--targets=all|NAME[,NAME]] [--time=SECONDS] [--fork=N]
        [--mode=default|SELF-TEST-MODE] [--accept-known-crashes]
        [--progress=SECONDS] [--no-build] [--bin-dir=DIR] [--out=DIR] [--json=PATH]

It first builds the targets with --config=fuzz (libFuzzer + ASan + UBSan; --no-build uses binaries
already built there, or in --bin-dir) and refuses any binary that is not a libFuzzer binary (the
plain g++ builds only replay files). Then, within --time seconds for the whole run (building is not
counted), it fuzzes each target in turn with -fork=N workers and -ignore_crashes=1, so a crash in
one worker is recorded and the campaign goes on; merges and minimizes each corpus; and reproduces
every crash once, deduplicated by the top of its stack.

Each mode has its own output folder, so self-test findings never mix with real ones:
fuzz/out/NAME (default mode) or fuzz/out/MODE/NAME (corpus/, crashes/, known_crashes.json,
last_run.log). A progress line prints every --progress seconds with the executions and the crash
files written so far. The summary is printed and written as JSON (OUT/campaign-TIMESTAMP.json, or
--json) with the start and end times, the commit, the flags, the mode and every target's figures.

Exit status:
  0  every target fuzzed, no crash (or only known crashes, with --accept-known-crashes)
  1  a crash: new ones (NEW CRASH) or ones a previous run found (KNOWN CRASH)
  2  bad input: a flag, a missing binary, a binary that is not a libFuzzer binary
  3  the campaign could not fuzz: the build failed, libFuzzer failed, or nothing was executed
"""
import argparse
import datetime
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

def fuzz_targets(ws):
    """The cc_fuzz_test targets of fuzz/BUILD.bazel (a fixed list if it cannot be read)."""
    try:
        text = open(os.path.join(ws, "fuzz", "BUILD.bazel")).read()
        names = re.findall(r'cc_fuzz_test\(\s*name\s*=\s*"([A-Za-z0-9_]+)"', text)
        if names:
            return names
    except OSError:
        pass
    return ["graph_replay_fuzzer", "safetensors_fuzzer", "cpu_kernel_fuzzer"]


TARGETS = fuzz_targets(os.environ.get("BUILD_WORKSPACE_DIRECTORY") or os.getcwd())
# NORMGRAPH_FUZZ_MODE values (fuzz/graph_replay_harness.h): the default and the self-test modes, each
# of which puts back a bug the oracle must find.
MODES = ["default", "unchecked-legacy", "no-freshness", "realloc-rms-norm", "skip-refresh-50th",
         "realloc-40th-load", "corrupt-load"]
MAX_TIME = 7 * 24 * 3600
MAX_FORK = 256
ARTIFACT_PREFIXES = ("crash-", "leak-", "timeout-", "oom-")

# libFuzzer's status lines. In fork mode the parent prints "#N: cov: ..." with the total of all
# workers; in-process it prints "#N\tNEW cov: ...". Workers' own lines (which fork mode copies into
# the parent's output after a crash) have no colon after the count and are not totals.
FORK_STATS = re.compile(r"^#(\d+): cov: (\d+) ft: (\d+) corp: (\d+).*?exec/s:? (\d+)"
                        r"(?:.*?oom/timeout/crash: (\d+)/(\d+)/(\d+))?")
INPROCESS_STATS = re.compile(r"^#(\d+)\s+\S+\s+cov: (\d+) ft: (\d+) corp: (\d+)\S*"
                             r".*?exec/s:? (\d+)")
FINAL_EXECS = re.compile(r"stat::number_of_executed_units: (\d+)")
FRAME = re.compile(r"^\s*#\d+ 0x[0-9a-f]+ in (\S+)")

EXIT_OK, EXIT_CRASH, EXIT_BAD_INPUT, EXIT_NOT_FUZZED = 0, 1, 2, 3


class BadInput(Exception):
    """Bad input: exit 2."""


class NotFuzzed(Exception):
    """The campaign could not fuzz: exit 3."""


def log(msg=""):
    print(msg, flush=True)


def workspace():
    return os.environ.get("BUILD_WORKSPACE_DIRECTORY") or os.getcwd()


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def git_commit(ws):
    try:
        head = subprocess.run(["git", "-C", ws, "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return "unknown (not a git checkout)"
        dirty = subprocess.run(["git", "-C", ws, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git not available)"


# --- flags ------------------------------------------------------------------------------------

def int_in(lo, hi, what):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer; {what}")
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{v} is out of range; {what}")
        return v
    return parse


def parse_targets(text):
    if text == "all":
        return list(TARGETS)
    names = [t for t in text.split(",") if t]
    bad = [t for t in names if t not in TARGETS]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"unknown target {', '.join(bad) or repr(text)}; valid: all, {', '.join(TARGETS)}")
    return list(dict.fromkeys(names))


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="fuzz_campaign", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", type=parse_targets, default=list(TARGETS),
                    help=f"all (default) or a comma-separated list of: {', '.join(TARGETS)}")
    ap.add_argument("--time", type=int_in(1, MAX_TIME, f"expected 1 to {MAX_TIME} seconds"),
                    default=600,
                    help="seconds for the whole run, shared by the targets: fuzzing, merging and "
                         "reproducing crashes (building comes first and is not counted); "
                         "default 600")
    ap.add_argument("--fork", type=int_in(1, MAX_FORK, f"expected 1 to {MAX_FORK} workers"),
                    default=os.cpu_count() or 1,
                    help="libFuzzer worker processes per target (default: all cores)")
    ap.add_argument("--progress", type=int_in(0, MAX_TIME, "expected 0 (off) or seconds"),
                    default=30, help="seconds between progress lines; 0 turns them off (default 30)")
    ap.add_argument("--mode", choices=MODES, default=None,
                    help="NORMGRAPH_FUZZ_MODE for the targets: default, or a self-test mode that "
                         "plants a bug the fuzzer must find (findings kept in fuzz/out/MODE/)")
    ap.add_argument("--accept-known-crashes", action="store_true",
                    help="exit 0 when every crash is one a previous run already recorded")
    ap.add_argument("--no-build", action="store_true",
                    help="use binaries already built with --config=fuzz")
    ap.add_argument("--bin-dir", help="where the libFuzzer binaries are (implies --no-build)")
    ap.add_argument("--out", help="output folder (default: WORKSPACE/fuzz/out)")
    ap.add_argument("--build-flag", action="append", default=[], metavar="FLAG",
                    help="an extra flag for `bazel build` (repeatable), e.g. --build-flag=--jobs=2")
    ap.add_argument("--json", help="where to write the JSON summary "
                                   "(default: OUT[/MODE]/campaign-TIMESTAMP.json)")
    args = ap.parse_args(argv)
    env_mode = os.environ.get("NORMGRAPH_FUZZ_MODE") or None
    if env_mode is not None and env_mode not in MODES[1:]:
        ap.error(f"NORMGRAPH_FUZZ_MODE={env_mode} is not a mode; valid: {', '.join(MODES[1:])}")
    if args.mode is None:
        args.mode = env_mode or "default"
    elif env_mode is not None and env_mode != args.mode:
        ap.error(f"--mode={args.mode} conflicts with NORMGRAPH_FUZZ_MODE={env_mode}")
    if args.bin_dir:
        args.no_build = True
    return args


# --- binaries ---------------------------------------------------------------------------------

def build(targets, ws, flags):
    # The binaries and their .options files (libFuzzer flags from cc_fuzz_test's `options`).
    cmd = (["bazel", "build", "--config=fuzz"] + flags +
           [f"//fuzz:{t}{suffix}" for t in targets for suffix in ("", "_options")])
    log("building: " + " ".join(cmd))
    try:
        if subprocess.run(cmd, cwd=ws).returncode != 0:
            raise NotFuzzed("the build failed (see above)")
    except FileNotFoundError:
        raise BadInput("bazel is not installed (tools/setup.sh installs it), or use --bin-dir")
    return fuzz_bin_dir(ws)


def fuzz_bin_dir(ws):
    """Where --config=fuzz puts the fuzz binaries. bazel-bin points at the last build's
    configuration (after `bazel test //...`, the plain g++ one), so ask bazel."""
    try:
        out = subprocess.run(["bazel", "info", "--config=fuzz", "bazel-bin"], cwd=ws,
                             capture_output=True, text=True, timeout=600)
        if out.returncode == 0 and out.stdout.strip():
            return os.path.join(out.stdout.strip(), "fuzz")
    except (OSError, subprocess.TimeoutExpired):
        pass
    return os.path.join(ws, "bazel-bin", "fuzz")


def target_options(binary):
    """libFuzzer flags from the target's NAME.options file next to the binary (cc_fuzz_test writes
    its `options` there, e.g. max_len), as OSS-Fuzz reads them; -max_len=4096 without one."""
    flags = []
    try:
        for line in open(binary + ".options"):
            key, eq, value = line.partition("=")
            key, value = key.strip(), value.strip()
            if eq and key and not key.startswith(("[", "#")) and key != "dict":
                flags.append(f"-{key}={value}")
    except OSError:
        pass
    return flags or ["-max_len=4096"]


def check_libfuzzer(name, binary):
    """Refuses a missing binary or one that is not a libFuzzer binary."""
    how = f"build it with: bazel build --config=fuzz //fuzz:{name}"
    if not os.path.exists(binary):
        raise BadInput(f"{name}: no binary at {binary}; {how} (or pass --bin-dir)")
    if not os.access(binary, os.X_OK) or os.path.isdir(binary):
        raise BadInput(f"{name}: {binary} is not an executable file")
    try:
        p = subprocess.run([binary, "-help=1"], capture_output=True, text=True, timeout=60,
                           errors="replace")
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BadInput(f"{name}: cannot run {binary}: {e}")
    text = p.stdout + p.stderr
    if p.returncode != 0 or "Usage:" not in text or "max_total_time" not in text:
        raise BadInput(f"{name}: {binary} is not a libFuzzer binary (the plain build only replays "
                       f"files); {how}")


# --- fuzzing ----------------------------------------------------------------------------------

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


def artifacts(crashes_dir, since):
    """Crash, leak, timeout and OOM files written since `since` (a time): new files, and files
    libFuzzer wrote again because it found the same input again (it names them by content)."""
    out = []
    try:
        for f in os.listdir(crashes_dir):
            if f.startswith(ARTIFACT_PREFIXES):
                try:
                    if os.path.getmtime(os.path.join(crashes_dir, f)) >= since:
                        out.append(f)
                except OSError:
                    pass
    except OSError:
        pass
    return sorted(out)


def kill_group(proc, grace):
    """SIGINT to the fuzzer's process group (libFuzzer then prints its final stats and stops its
    workers), SIGKILL after `grace` seconds."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            pass


def run_bounded(cmd, timeout, env=None):
    """Runs cmd in its own process group; kills the group at the timeout. Returns
    (returncode or None if killed, output)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", env=env, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=max(timeout, 0.1))
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        kill_group(proc, 2)
        out, _ = proc.communicate()
        return None, out


def fuzz_target(name, binary, args, ws, root, deadline, targets_left):
    corpus, crashes = os.path.join(root, "corpus"), os.path.join(root, "crashes")
    os.makedirs(corpus, exist_ok=True)
    os.makedirs(crashes, exist_ok=True)
    seeds = os.path.join(ws, "fuzz", "corpus", name)
    for seed in glob.glob(os.path.join(seeds, "*")):
        dst = os.path.join(corpus, os.path.basename(seed))
        if not os.path.exists(dst):
            shutil.copy(seed, dst)
    known_path = os.path.join(root, "known_crashes.json")
    known = {}
    if os.path.exists(known_path):
        try:
            known = json.load(open(known_path))
        except ValueError:
            log(f"[{name}] warning: {known_path} is not valid JSON; starting a new one")
    corpus_before = len(os.listdir(corpus))

    # This target's share of what is left; a fifth of it (at least 3 s, at most 60 s) is kept for
    # merging the corpus and reproducing crashes.
    share = max(1.0, (deadline - time.time()) / targets_left)
    reserve = min(60.0, max(3.0, share / 5)) if share > 6 else share / 3
    fuzz_seconds = max(1, int(share - reserve))

    env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "detect_leaks=1"))
    if args.mode != "default":
        env["NORMGRAPH_FUZZ_MODE"] = args.mode
    else:
        env.pop("NORMGRAPH_FUZZ_MODE", None)
    flags = [f"-fork={args.fork}", "-ignore_crashes=1", "-ignore_ooms=1", "-ignore_timeouts=1",
             f"-max_total_time={fuzz_seconds}", f"-artifact_prefix={crashes}/",
             "-print_final_stats=1", "-rss_limit_mb=4096", "-timeout=30"]
    flags += target_options(binary)
    dictionary = os.path.join(ws, "fuzz", name + ".dict")
    if os.path.exists(dictionary):
        flags.append(f"-dict={dictionary}")
    cmd = [binary] + flags + [corpus] + ([seeds] if os.path.isdir(seeds) else [])
    log(f"[{name}] fuzzing for {fuzz_seconds} s with {args.fork} "
        f"worker{'s' if args.fork > 1 else ''} (mode {args.mode}); output in {root}")
    log(f"[{name}] " + " ".join(cmd))
    start = time.time()
    since = start - 1  # file times may be rounded down
    last = {"execs": 0, "cov": 0, "ft": 0, "corp": corpus_before, "exec_s": 0}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", env=env, start_new_session=True)
    stop = threading.Event()
    stopped = threading.Event()  # the watchdog stopped it: its exit code means nothing

    def crash_count():
        return len(artifacts(crashes, since))

    def progress():
        while not stop.wait(args.progress):
            elapsed = time.time() - start
            log(f"[{name}] {elapsed:5.0f} s of {fuzz_seconds} s  execs {last['execs']}  "
                f"exec/s {round(last['execs'] / elapsed) if elapsed > 0 else 0}  "
                f"cov {last['cov']}  ft {last['ft']}  corpus {last['corp']}  "
                f"crashes {crash_count()}")

    def watchdog():
        # libFuzzer's fork mode lets running jobs finish after -max_total_time: stop it a little
        # after its time is up.
        if not stop.wait(fuzz_seconds + min(5.0, reserve / 3)):
            log(f"[{name}] still running after {fuzz_seconds} s: stopping it")
            stopped.set()
            kill_group(proc, max(1.0, min(5.0, reserve / 3)))

    threads = [threading.Thread(target=watchdog, daemon=True)]
    if args.progress > 0:
        threads.append(threading.Thread(target=progress, daemon=True))
    for t in threads:
        t.start()
    final_execs = 0
    with open(os.path.join(root, "last_run.log"), "w") as raw:
        for line in proc.stdout:
            raw.write(line)
            m = FORK_STATS.search(line) or INPROCESS_STATS.search(line)
            if m:
                last.update(execs=max(last["execs"], int(m.group(1))), cov=int(m.group(2)),
                            ft=int(m.group(3)), corp=int(m.group(4)), exec_s=int(m.group(5)))
            f = FINAL_EXECS.search(line)
            if f:
                final_execs = max(final_execs, int(f.group(1)))
    proc.wait()
    stop.set()
    elapsed = time.time() - start
    execs = max(last["execs"], final_execs)
    new_files = artifacts(crashes, since)

    # Merge and minimize the corpus, in what is left of the share.
    merge = "skipped"
    target_deadline = start + share
    merge_time = target_deadline - time.time() - min(30.0, reserve / 2) * bool(new_files)
    if merge_time >= 2:
        merged = corpus + ".merged"
        shutil.rmtree(merged, ignore_errors=True)
        os.makedirs(merged)
        rc, _ = run_bounded([binary, "-merge=1", f"-artifact_prefix={crashes}/", merged, corpus],
                            merge_time, env)
        if rc == 0 and os.listdir(merged):
            shutil.rmtree(corpus)
            os.rename(merged, corpus)
            merge = "done"
        else:
            shutil.rmtree(merged, ignore_errors=True)
            merge = "skipped: out of time" if rc is None else f"failed (exit {rc})"
    else:
        merge = "skipped: out of time"

    # Reproduce each new crash once (the merge may have written some too); deduplicate by stack.
    new_files = artifacts(crashes, since)
    unique = {}
    for f in new_files:
        path = os.path.join(crashes, f)
        mode_env = f"NORMGRAPH_FUZZ_MODE={args.mode} " if args.mode != "default" else ""
        left = deadline - time.time()
        if left < 1:
            # Out of time: every such file goes into one entry; each file's content is remembered,
            # so a later run knows it.
            file_key = "file-" + hashlib.sha1(open(path, "rb").read()).hexdigest()[:12]
            entry = unique.setdefault("unreproduced", {
                "key": "unreproduced", "file": path, "reproduces": None, "stack": [], "files": 0,
                "known": True, "first_line": "crash files not reproduced: out of time",
                "repro": mode_env + binary + " " + path})
            entry["files"] += 1
            if file_key not in known:
                entry["known"] = False
                known[file_key] = {"file": path, "stack": [], "repro": entry["repro"],
                                   "first_line": entry["first_line"], "first_seen": now_iso()}
            continue
        renv = dict(env, ASAN_OPTIONS="symbolize=1:detect_leaks=1",
                    UBSAN_OPTIONS="print_stacktrace=1")
        rc, out = run_bounded([binary, path], min(120.0, left), renv)
        key, frames = stack_key(out)
        entry = {"file": path, "reproduces": rc not in (0, None), "stack": frames,
                 "repro": mode_env + binary + " " + path,
                 "first_line": next((l for l in out.splitlines()
                                     if "oracle:" in l or "ERROR" in l), "")}
        if key in unique:
            unique[key]["files"] += 1
            continue
        entry["key"] = key
        entry["files"] = 1
        entry["known"] = key in known
        if not entry["known"]:
            known[key] = {k: entry[k] for k in ("file", "stack", "repro", "first_line")}
            known[key]["first_seen"] = now_iso()
        unique[key] = entry
    with open(known_path + ".tmp", "w") as f:
        json.dump(known, f, indent=1)
    os.replace(known_path + ".tmp", known_path)

    return {
        "target": name, "binary": binary, "output": root, "seconds": round(elapsed, 1),
        "fuzz_seconds_planned": fuzz_seconds, "fork": args.fork, "execs": execs,
        "exec_per_s": round(execs / elapsed) if elapsed > 0 else 0,
        "exec_per_s_per_worker": round(execs / elapsed / args.fork) if elapsed > 0 else 0,
        "coverage": last["cov"], "features": last["ft"], "corpus_before": corpus_before,
        "corpus_after": len(os.listdir(corpus)), "merge": merge, "crash_files": len(new_files),
        "unique_crashes": list(unique.values()),
        "new_unique_crashes": [c for c in unique.values() if not c["known"]],
        "known_unique_crashes": [c for c in unique.values() if c["known"]],
        "libfuzzer_exit_code": proc.returncode, "stopped_at_time_limit": stopped.is_set(),
        "log": os.path.join(root, "last_run.log"),
    }


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    ws = workspace()
    out_root = os.path.abspath(args.out or os.path.join(ws, "fuzz", "out"))
    mode_root = out_root if args.mode == "default" else os.path.join(out_root, args.mode)
    started = now_iso()
    t0 = time.time()
    summary = {
        "started": started, "finished": None, "commit": git_commit(ws), "mode": args.mode,
        "argv": sys.argv[1:] if argv is None else argv,
        "flags": {k: v for k, v in vars(args).items()}, "budget_seconds": args.time,
        "host": {"name": socket.gethostname(), "cpus": os.cpu_count()}, "targets": [],
    }
    code, verdict = EXIT_OK, ""
    try:
        if args.no_build:
            bin_dir = args.bin_dir or fuzz_bin_dir(ws)
        else:
            bin_dir = build(args.targets, ws, args.build_flag)
        binaries = {t: os.path.join(bin_dir, t) for t in args.targets}
        for t in args.targets:
            check_libfuzzer(t, binaries[t])
        # The budget starts once the binaries are there.
        start = time.time()
        deadline = start + args.time
        log(f"campaign: {', '.join(args.targets)}; {args.time} s in all for fuzzing, merging and "
            f"reproducing; mode {args.mode}; output in {mode_root}")
        for i, t in enumerate(args.targets):
            root = os.path.join(mode_root, t)
            summary["targets"].append(
                fuzz_target(t, binaries[t], args, ws, root, deadline, len(args.targets) - i))
        summary["run_seconds"] = round(time.time() - start, 1)
        failed = [r for r in summary["targets"] if r["execs"] == 0 and not r["crash_files"]]
        if failed:
            raise NotFuzzed("nothing was executed by " + ", ".join(r["target"] for r in failed) +
                            " (libFuzzer exit " +
                            ", ".join(str(r["libfuzzer_exit_code"]) for r in failed) +
                            "; see " + ", ".join(r["log"] for r in failed) + ")")
        # 72: libFuzzer interrupted (the watchdog); 77 and others come with crash files.
        broken = [r for r in summary["targets"]
                  if r["libfuzzer_exit_code"] not in (0, 72) and not r["stopped_at_time_limit"]
                  and not r["crash_files"]]
        if broken:
            raise NotFuzzed("libFuzzer failed for " + ", ".join(
                f"{r['target']} (exit {r['libfuzzer_exit_code']}; see {r['log']})" for r in broken))
    except BadInput as e:
        code, verdict = EXIT_BAD_INPUT, f"bad input: {e}"
    except NotFuzzed as e:
        code, verdict = EXIT_NOT_FUZZED, f"the campaign did not fuzz: {e}"

    results = summary["targets"]
    new_total = sum(len(r["new_unique_crashes"]) for r in results)
    known_total = sum(len(r["known_unique_crashes"]) for r in results)
    if results:
        log("\n=== campaign summary")
    for r in results:
        log(f"{r['target']}: {r['seconds']} s x {r['fork']} worker{'s' if r['fork'] > 1 else ''}, "
            f"{r['execs']} execs ({r['exec_per_s']} exec/s, {r['exec_per_s_per_worker']} per "
            f"worker), cov {r['coverage']}, ft {r['features']}, corpus {r['corpus_before']} -> "
            f"{r['corpus_after']} (merge {r['merge']}), crash files {r['crash_files']}, unique "
            f"crashes {len(r['new_unique_crashes'])} new + {len(r['known_unique_crashes'])} known")
        for c in r["unique_crashes"]:
            log(f"  {'KNOWN' if c['known'] else 'NEW'} CRASH: {c['first_line']}\n"
                f"    stack: {' <- '.join(c['stack']) or '(not reproduced)'}\n"
                f"    files: {c['files']}; reproduce: {c['repro']}")
    if code == EXIT_OK:
        if new_total or (known_total and not args.accept_known_crashes):
            code = EXIT_CRASH
            verdict = (f"{new_total} new and {known_total} known unique crash"
                       f"{'es' if new_total + known_total != 1 else ''}")
            if known_total and not new_total:
                verdict += " (--accept-known-crashes exits 0 on known ones)"
        elif known_total:
            verdict = f"no new crash; {known_total} known (accepted)"
        else:
            verdict = "no crash"
    summary.update(finished=now_iso(), wall_seconds=round(time.time() - t0, 1),
                   new_unique_crashes=new_total, known_unique_crashes=known_total,
                   exit_code=code, verdict=verdict)
    path = args.json or os.path.join(
        mode_root, time.strftime("campaign-%Y%m%d-%H%M%S.json", time.gmtime(t0)))
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w") as f:
            json.dump(summary, f, indent=1)
        log(f"summary written to {path}")
    except OSError as e:
        log(f"fuzz_campaign: cannot write the summary to {path}: {e}")
        code = code or EXIT_NOT_FUZZED
    log(f"fuzz_campaign: {verdict} (exit {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
