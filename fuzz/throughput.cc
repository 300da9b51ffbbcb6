// Executions per second of the graph replay harness on random inputs of typical
// fuzzer lengths (no libFuzzer, no sanitizers): `bazel run -c opt
// //fuzz:throughput -- [seconds]`.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "fuzz/graph_replay_harness.h"

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 5.0;
  std::mt19937_64 rng(1);
  int64_t runs = 0, findings = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    std::vector<uint8_t> input(5 + rng() % 120);
    for (uint8_t& b : input) b = static_cast<uint8_t>(rng());
    findings += !normgraph::fuzz::RunGraphReplayInput(
                     input, normgraph::fuzz::FuzzMode::kDefault)
                     .ok();
    ++runs;
    elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
  }
  std::printf(
      "%lld executions in %.1f s: %.0f exec/s (one core), %lld findings\n",
      static_cast<long long>(runs), elapsed, runs / elapsed,
      static_cast<long long>(findings));
  return findings == 0 ? 0 : 1;
}
