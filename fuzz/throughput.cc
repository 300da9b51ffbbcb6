// Executions per second of the graph replay harness, in-process, on one core
// (no libFuzzer, no sanitizers unless the build adds them):
//   bazel run -c opt //fuzz:throughput -- [seconds] [corpus_dir | random]
// With a corpus directory, its files are run round-robin (as libFuzzer runs a
// corpus); `random` (the default) runs random byte strings of 5-125 bytes.
// NORMGRAPH_FUZZ_MODE applies as in the fuzzer.

#include <dirent.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "fuzz/graph_replay_harness.h"

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 5.0;
  const std::string source = argc > 2 ? argv[2] : "random";
  const normgraph::fuzz::FuzzMode mode = normgraph::fuzz::FuzzModeFromEnv();
  std::vector<std::vector<uint8_t>> corpus;
  if (source != "random") {
    DIR* dir = opendir(source.c_str());
    if (dir == nullptr) {
      std::fprintf(stderr, "cannot open %s\n", source.c_str());
      return 2;
    }
    std::vector<std::string> names;
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] != '.') names.push_back(source + "/" + e->d_name);
    }
    closedir(dir);
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) {
      std::ifstream in(n, std::ios::binary);
      corpus.emplace_back(std::istreambuf_iterator<char>(in),
                          std::istreambuf_iterator<char>());
    }
    if (corpus.empty()) {
      std::fprintf(stderr, "%s is empty\n", source.c_str());
      return 2;
    }
  }
  std::mt19937_64 rng(1);
  int64_t runs = 0, findings = 0;
  size_t bytes = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    std::vector<uint8_t> input;
    if (corpus.empty()) {
      input.resize(5 + rng() % 120);
      for (uint8_t& b : input) b = static_cast<uint8_t>(rng());
    } else {
      input = corpus[runs % corpus.size()];
    }
    bytes += input.size();
    const absl::Status s = normgraph::fuzz::RunGraphReplayInput(input, mode);
    if (!s.ok()) {
      if (findings == 0) {
        std::fprintf(stderr, "first finding: %s\n", s.ToString().c_str());
      }
      ++findings;
    }
    ++runs;
    elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
  }
  std::printf(
      "%s: %lld executions in %.1f s: %.0f exec/s (one core), mean input %.0f "
      "bytes, %lld findings\n",
      source.c_str(), static_cast<long long>(runs), elapsed, runs / elapsed,
      static_cast<double>(bytes) / runs, static_cast<long long>(findings));
  return findings == 0 ? 0 : 1;
}
