// The gated kernels' branch-free silu gives numerics::Silu's bits: against the
// IEEE division on the GPU for every float32 input, and against the CPU's
// numerics::Silu for a stride through all of them plus the special values.
// Runs on a GPU host (tagged gpu).

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <vector>

#include "core/float_bits.h"
#include "gtest/gtest.h"
#include "kernels/cuda/silu_check.h"
#include "kernels/norm_numerics.h"

namespace normgraph {
namespace {

TEST(SiluWithoutBranchesTest, EveryFloatMatchesTheIeeeDivision) {
  const absl::StatusOr<SiluMismatches> m = CountSiluMismatches();
  ASSERT_TRUE(m.ok()) << m.status();
  std::printf("%lld inputs, %lld mismatches\n",
              static_cast<long long>(m->inputs),
              static_cast<long long>(m->mismatches));
  EXPECT_EQ(m->inputs, int64_t{1} << 32);
  EXPECT_EQ(m->mismatches, 0)
      << "first at input bits 0x" << std::hex << m->first;
}

TEST(SiluWithoutBranchesTest, MatchesTheCpuSilu) {
  std::vector<float> inputs;
  // Every 251st bit pattern (a prime stride: every exponent, both signs, many
  // mantissas), then the values where the GPU path switches (its selects, its
  // scaling at 2^64, the denominator's shortcuts) and tiny and subnormal g.
  for (uint64_t u = 0; u <= 0xFFFFFFFFull; u += 251) {
    inputs.push_back(FloatFromBits(static_cast<uint32_t>(u)));
  }
  const float inf = std::numeric_limits<float>::infinity();
  for (const float g : {0.0f,
                        -0.0f,
                        inf,
                        -inf,
                        std::nanf(""),
                        0x1p-60f,
                        -0x1p-60f,
                        0x1.fffffep-61f,
                        0x1p-149f,
                        -0x1p-149f,
                        44.3614f,
                        -44.3614f,
                        -88.7228f,
                        -88.7229f,
                        -103.972f,
                        -104.0f,
                        88.7228f,
                        0x1p64f,
                        -0x1p64f,
                        std::numeric_limits<float>::max(),
                        -std::numeric_limits<float>::max()}) {
    inputs.push_back(g);
  }
  const absl::StatusOr<std::vector<uint32_t>> got =
      EvaluateSiluWithoutBranches(inputs);
  ASSERT_TRUE(got.ok()) << got.status();
  int64_t mismatches = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const float want = numerics::Silu(inputs[i]);
    const float gpu = FloatFromBits((*got)[i]);
    if (FloatBits(want) != (*got)[i] &&
        !(std::isnan(want) && std::isnan(gpu))) {
      if (++mismatches <= 5) {
        ADD_FAILURE() << "silu(" << inputs[i] << " = 0x" << std::hex
                      << FloatBits(inputs[i]) << "): GPU 0x" << (*got)[i]
                      << ", CPU 0x" << FloatBits(want);
      }
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << inputs.size();
}

}  // namespace
}  // namespace normgraph
