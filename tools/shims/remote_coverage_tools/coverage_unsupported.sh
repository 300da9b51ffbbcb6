#!/usr/bin/env bash
echo "bazel coverage is not supported in normgraph's offline build (no coverage tools); use gcov/lcov directly" >&2
exit 1
