#!/usr/bin/env bash
# Runs tools/fuzz_campaign.py from the workspace (bazel run //tools:fuzz_campaign -- ...).
set -euo pipefail
ws="${BUILD_WORKSPACE_DIRECTORY:-$(cd "$(dirname "$0")/.." && pwd)}"
exec python3 "$ws/tools/fuzz_campaign.py" "$@"
