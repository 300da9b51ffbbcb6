// Executions per second of the graph replay harness, in-process, on one core
// (no libFuzzer, no sanitizers unless the build adds them):
//   bazel run -c opt //fuzz:throughput -- [seconds] [corpus_dir | random]
// With a corpus directory, its files are run round-robin (as libFuzzer runs a
// corpus); `random` (the default) runs random byte strings of 5-125 bytes.
// NORMGRAPH_FUZZ_MODE applies as in the fuzzer.

#include <dirent.h>
#include <time.h>

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
  std::string source = argc > 2 ? argv[2] : "random";
  // `bazel run` starts the tool in its runfiles tree: a relative corpus path
  // means the directory bazel was run from.
  const char* run_dir = std::getenv("BUILD_WORKING_DIRECTORY");
  if (source != "random" && !source.empty() && source[0] != '/' &&
      run_dir != nullptr) {
    source = std::string(run_dir) + "/" + source;
  }
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
  std::vector<std::pair<double, std::vector<uint8_t>>> slowest;
  double total_us = 0, slow_us = 0;
  size_t bytes = 0;
  const auto start = std::chrono::steady_clock::now();
  auto cpu_seconds = [] {
    timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
  };
  const double cpu_start = cpu_seconds();
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
    const auto t0 = std::chrono::steady_clock::now();
    const absl::Status s = normgraph::fuzz::RunGraphReplayInput(input, mode);
    const double us = std::chrono::duration<double, std::micro>(
                          std::chrono::steady_clock::now() - t0)
                          .count();
    total_us += us;
    if (us > 1000) slow_us += us;
    slowest.emplace_back(us, input);
    std::sort(slowest.begin(), slowest.end(),
              [](const auto& a, const auto& b) { return a.first > b.first; });
    if (slowest.size() > 5) slowest.pop_back();
    if (!s.ok()) {
      if (findings == 0) {
        std::fprintf(stderr, "first finding: %s\n", s.ToString().c_str());
        // NORMGRAPH_THROUGHPUT_SAVE=FILE keeps its input, to reproduce it.
        if (const char* save = std::getenv("NORMGRAPH_THROUGHPUT_SAVE")) {
          std::ofstream(save, std::ios::binary)
              .write(reinterpret_cast<const char*>(input.data()),
                     static_cast<std::streamsize>(input.size()));
        }
      }
      ++findings;
    }
    ++runs;
    elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
  }
  const double cpu = cpu_seconds() - cpu_start;
  std::printf(
      "%s: %lld executions in %.1f s: %.0f exec/s wall, %.0f exec/s per "
      "CPU-second (one thread), mean input %.0f bytes, %lld findings\n",
      source.c_str(), static_cast<long long>(runs), elapsed, runs / elapsed,
      runs / cpu, static_cast<double>(bytes) / runs,
      static_cast<long long>(findings));
  std::printf("  %.0f%% of the time in inputs slower than 1 ms; slowest:\n",
              100 * slow_us / total_us);
  for (const auto& [us, input] : slowest) {
    std::printf("  %.0f us:", us);
    for (size_t i = 0; i < input.size() && i < 48; ++i) {
      std::printf(" %02x", input[i]);
    }
    std::printf("%s\n", input.size() > 48 ? " ..." : "");
  }
  return findings == 0 ? 0 : 1;
}
