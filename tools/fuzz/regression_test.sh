#!/usr/bin/env bash
# Runs a fuzz target binary over its checked-in corpus: usage: regression_test.sh BINARY FILE...
set -euo pipefail
bin="$1"
shift
[[ $# -gt 0 ]] || { echo "no corpus files" >&2; exit 1; }
"$bin" "$@"
