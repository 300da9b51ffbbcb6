// Proves the graph replay oracle can fail. Inputs are random byte strings from
// a fixed seed (the same generator for every mode): in each self-test mode (a
// bug put back, graph_replay_harness.h) the harness must report a finding
// within a bounded number of inputs, naming the tensors involved, and the
// finding must reproduce from the input alone (every input builds its own
// model: nothing carries over, so counter-based bugs that fire on the Nth load
// reproduce too). In the default mode it must report none.

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "fuzz/graph_replay_harness.h"
#include "gtest/gtest.h"

namespace normgraph::fuzz {
namespace {

std::vector<uint8_t> RandomInput(std::mt19937_64& rng) {
  std::vector<uint8_t> input(5 + rng() % 80);
  for (uint8_t& b : input) b = static_cast<uint8_t>(rng());
  return input;
}

// A finding without what differs from run to run (storage ids, addresses).
std::string Normalized(absl::string_view finding) {
  static const std::regex ids("#[0-9]+|@?0x[0-9a-f]+");
  return std::regex_replace(std::string(finding), ids, "#");
}

// Inputs until the first finding (or `budget` + 1 if none), from seed `seed`.
int InputsToFirstFinding(FuzzMode mode, uint64_t seed, int budget,
                         std::string* finding,
                         std::vector<uint8_t>* input = nullptr) {
  std::mt19937_64 rng(seed);
  for (int i = 1; i <= budget; ++i) {
    std::vector<uint8_t> in = RandomInput(rng);
    absl::Status s = RunGraphReplayInput(in, mode);
    if (!s.ok()) {
      *finding = std::string(s.message());
      if (input != nullptr) *input = in;
      return i;
    }
  }
  return budget + 1;
}

constexpr int kBudget = 2000;

struct Expectation {
  FuzzMode mode;
  const char* kind;    // what the finding says
  const char* tensor;  // a tensor name the finding must contain
};

void ExpectFoundQuickly(const Expectation& e, int seeds = 9) {
  std::vector<int> runs;
  for (uint64_t seed = 1; seed <= static_cast<uint64_t>(seeds); ++seed) {
    std::string finding;
    std::vector<uint8_t> input;
    const int n = InputsToFirstFinding(e.mode, seed, kBudget, &finding, &input);
    ASSERT_LE(n, kBudget) << FuzzModeName(e.mode) << " seed " << seed
                          << ": not found in " << kBudget << " inputs";
    EXPECT_TRUE(absl::StrContains(finding, e.kind)) << finding;
    EXPECT_TRUE(absl::StrContains(finding, e.tensor)) << finding;
    // The input alone reproduces it, twice, with the same words.
    for (int again = 0; again < 2; ++again) {
      absl::Status s = RunGraphReplayInput(input, e.mode);
      ASSERT_FALSE(s.ok()) << FuzzModeName(e.mode) << " seed " << seed
                           << ": the finding did not reproduce: " << finding;
      EXPECT_EQ(Normalized(s.message()), Normalized(finding));
    }
    // The same input finds nothing without the bug.
    if (e.mode != FuzzMode::kUncheckedLegacy &&
        e.mode != FuzzMode::kNoFreshness) {
      const absl::Status clean = RunGraphReplayInput(input, FuzzMode::kDefault);
      EXPECT_TRUE(clean.ok()) << clean;
    }
    runs.push_back(n);
  }
  std::sort(runs.begin(), runs.end());
  std::cout << FuzzModeName(e.mode) << ": inputs to the first finding over "
            << seeds << " seeds: median " << runs[runs.size() / 2] << ", max "
            << runs.back() << "\n";
}

TEST(SelfTest, UncheckedPolicyWithThePreFixLoaderIsFound) {
  ExpectFoundQuickly(
      {FuzzMode::kUncheckedLegacy, "silent mismatch", "expected violations {"});
}

TEST(SelfTest, StaleDerivedBufferIsFoundWhenFreshnessIsNotChecked) {
  ExpectFoundQuickly(
      {FuzzMode::kNoFreshness, "silent mismatch", "gemma_weight"});
}

TEST(SelfTest, ReallocatingRmsNormLoaderIsFound) {
  ExpectFoundQuickly(
      {FuzzMode::kReallocRmsNorm, "tensor moved by", ".weight from"});
}

TEST(SelfTest, RefreshSkippedOnThe50thLoadIsFound) {
  ExpectFoundQuickly(
      {FuzzMode::kSkipRefreshNth, "wrong value after load #", "gemma_weight["});
}

TEST(SelfTest, ReallocationOnThe40thLoadIsFound) {
  ExpectFoundQuickly(
      {FuzzMode::kReallocNth, "tensor moved by load #", ".weight from"});
}

TEST(SelfTest, LoaderBugThatWouldCorruptAShadowModelEquallyIsFound) {
  ExpectFoundQuickly({FuzzMode::kCorruptLoad, "wrong value after", ".weight["});
}

// Nothing carries over from one input to the next: every input's verdict
// (OK, or its finding with storage ids and addresses aside) is the same
// whether the inputs before it ran in one order or the reverse, in the default
// mode and in the modes whose bugs count loads.
TEST(SelfTest, VerdictsDoNotDependOnTheInputsRunBefore) {
  for (FuzzMode mode : {FuzzMode::kDefault, FuzzMode::kSkipRefreshNth,
                        FuzzMode::kReallocNth, FuzzMode::kCorruptLoad}) {
    std::mt19937_64 rng(7);
    std::vector<std::vector<uint8_t>> inputs;
    for (int i = 0; i < 60; ++i) inputs.push_back(RandomInput(rng));
    std::vector<std::string> forward(inputs.size()), backward(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      forward[i] = Normalized(RunGraphReplayInput(inputs[i], mode).ToString());
    }
    for (size_t i = inputs.size(); i-- > 0;) {
      backward[i] = Normalized(RunGraphReplayInput(inputs[i], mode).ToString());
    }
    int findings = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      EXPECT_EQ(forward[i], backward[i])
          << FuzzModeName(mode) << " input " << i;
      findings += forward[i] != "OK";
    }
    // The bug modes find something here, so findings are compared too.
    if (mode != FuzzMode::kDefault) {
      EXPECT_GT(findings, 0) << FuzzModeName(mode);
    }
  }
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
