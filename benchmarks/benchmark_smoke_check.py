"""Checks one benchmark binary's JSON output (benchmark_smoke_test.sh).

    benchmark_smoke_check.py NAME LIST JSON

LIST is the binary's --benchmark_list_tests output. Every listed benchmark must appear in JSON,
have run at least one iteration without an error, and report the counters its family promises
(EXPECTED below, by name prefix). Timings are not checked.
"""

import json
import sys

# Counters each benchmark family reports, by binary and name prefix.
EXPECTED = {
    "cpu_norm_benchmark": {
        "BM_RmsNormCpuBackend/": ["bytes_per_second", "memcpy_bytes_per_second",
                                  "share_of_memcpy"],
        "BM_RmsNormCpu/": ["bytes_per_second", "memcpy_bytes_per_second", "share_of_memcpy"],
        "BM_Memcpy/": ["bytes_per_second"],
    },
    "graph_check_benchmark": {
        "BM_IdentityCheckFast/": ["nodes", "tracked", "fast_checks"],
        "BM_IdentityCheck/": ["nodes", "tracked"],
        "BM_ReplayUnchecked/": ["nodes"],
        "BM_ReplayChecked/": ["nodes", "check_ns_per_replay"],
        "BM_RepairByRebind/": ["nodes", "rebound_args"],
        "BM_RepairByRecapture/": ["nodes", "rebound_args"],
    },
    "weight_load_benchmark": {
        "BM_SafetensorsOpen/": ["items_per_second", "tensors"],
        "BM_LoadCheckpoint/": ["items_per_second", "bytes_per_second", "tensors"],
        "BM_LoadCheckpoint256x4096": ["items_per_second", "bytes_per_second", "tensors"],
    },
}


def main(argv):
    name, list_path, json_path = argv[1:4]
    families = EXPECTED.get(name)
    if families is None:
        sys.exit(f"{name}: no expectations in benchmark_smoke_check.py")
    with open(list_path) as f:
        listed = [line.strip() for line in f if line.strip()]
    with open(json_path) as f:
        report = json.load(f)
    ran = {b["name"]: b for b in report.get("benchmarks", [])}
    problems = []
    for bench in listed:
        # Manual-time benchmarks get "/manual_time" appended to their name in the output.
        entry = ran.get(bench) or ran.get(bench + "/manual_time")
        if entry is None:
            problems.append(f"{bench}: did not run")
            continue
        if entry.get("error_occurred"):
            problems.append(f"{bench}: error: {entry.get('error_message')}")
            continue
        if entry.get("iterations", 0) < 1:
            problems.append(f"{bench}: no iterations")
        prefix = next((p for p in families if bench.startswith(p)), None)
        if prefix is None:
            problems.append(f"{bench}: no expected counters listed for it")
            continue
        for counter in families[prefix]:
            if counter not in entry:
                problems.append(f"{bench}: no counter {counter}")
    if not listed:
        problems.append("no benchmarks listed")
    if problems:
        sys.exit(f"{name}:\n  " + "\n  ".join(problems))
    print(f"{name}: {len(listed)} benchmarks ran and reported their counters")


if __name__ == "__main__":
    main(sys.argv)
