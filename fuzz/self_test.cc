// Proves the graph replay oracle can fail. Inputs are random byte strings from
// a fixed seed (the same generator for every mode): in the self-test modes the
// harness must report a finding within a bounded number of inputs; in the
// default mode it must report none.

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "absl/strings/match.h"
#include "fuzz/graph_replay_harness.h"
#include "gtest/gtest.h"

namespace normgraph::fuzz {
namespace {

// Inputs until the first finding (or `budget` + 1 if none), from seed `seed`.
int InputsToFirstFinding(FuzzMode mode, uint64_t seed, int budget,
                         std::string* finding) {
  std::mt19937_64 rng(seed);
  for (int i = 1; i <= budget; ++i) {
    std::vector<uint8_t> input(5 + rng() % 80);
    for (uint8_t& b : input) b = static_cast<uint8_t>(rng());
    absl::Status s = RunGraphReplayInput(input, mode);
    if (!s.ok()) {
      *finding = std::string(s.message());
      return i;
    }
  }
  return budget + 1;
}

constexpr int kBudget = 2000;

void ExpectFoundQuickly(FuzzMode mode, absl::string_view what) {
  std::vector<int> runs;
  for (uint64_t seed = 1; seed <= 9; ++seed) {
    std::string finding;
    const int n = InputsToFirstFinding(mode, seed, kBudget, &finding);
    ASSERT_LE(n, kBudget) << "seed " << seed << ": not found in " << kBudget
                          << " inputs";
    EXPECT_TRUE(absl::StrContains(finding, what)) << finding;
    runs.push_back(n);
  }
  std::sort(runs.begin(), runs.end());
  std::cout << "inputs to the first finding over 9 seeds: median " << runs[4]
            << ", max " << runs.back() << "\n";
}

TEST(SelfTest, UncheckedPolicyWithThePreFixLoaderIsFound) {
  ExpectFoundQuickly(FuzzMode::kUncheckedLegacy, "silent mismatch");
}

TEST(SelfTest, StaleDerivedBufferIsFoundWhenFreshnessIsNotChecked) {
  ExpectFoundQuickly(FuzzMode::kNoFreshness, "silent mismatch");
}

TEST(SelfTest, DefaultModeFindsNothingOnTheSameInputs) {
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    std::string finding;
    EXPECT_EQ(InputsToFirstFinding(FuzzMode::kDefault, seed, 600, &finding),
              601)
        << finding;
  }
}

}  // namespace
}  // namespace normgraph::fuzz
