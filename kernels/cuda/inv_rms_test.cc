// The decode kernels' 1 / rms (rsqrt where rounding cannot tell it from the
// exact chain) gives the CPU's exact float64 chain's bits: on means spread
// over every magnitude, on means whose 1 / sqrt sits within a few guards of a
// float32 rounding midpoint (where the shortcut must step aside), and on
// special values. Runs on a GPU host (tagged gpu).

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "core/float_bits.h"
#include "gtest/gtest.h"
#include "kernels/cuda/inv_rms_check.h"
#include "kernels/float_neighbours_testing.h"
#include "kernels/norm_numerics.h"

namespace normgraph {
namespace {

// Means whose 1 / sqrt(mean + eps) lands near the midpoint above a random
// float32 (nudged by up to three guards either way), over 2^-60..2^60.
std::vector<double> MeansNearMidpoints(std::mt19937_64& rng, float eps,
                                       int count) {
  std::uniform_int_distribution<uint32_t> mantissa(0, (1u << 23) - 1);
  std::uniform_int_distribution<int> exponent(-60, 60);
  std::uniform_int_distribution<int> nudge(-3 * numerics::kRoundingGuardUlps,
                                           3 * numerics::kRoundingGuardUlps);
  std::vector<double> means;
  for (int i = 0; i < count; ++i) {
    const float f =
        std::ldexp(FloatFromBits(0x3F800000u | mantissa(rng)), exponent(rng));
    const double midpoint = MidpointAbove(f);
    // 1 / sqrt moves by half as many ulps as its argument, in the other
    // direction: nudging m by 2k ulps moves y by about k.
    const double m = MovedUlps(1.0 / (midpoint * midpoint), 2 * nudge(rng));
    means.push_back(m - static_cast<double>(eps));
  }
  return means;
}

std::vector<double> MeansOverEveryMagnitude(std::mt19937_64& rng, int count) {
  std::uniform_real_distribution<double> mantissa(1.0, 2.0);
  std::uniform_int_distribution<int> exponent(-300, 300);
  std::vector<double> means;
  for (int i = 0; i < count; ++i) {
    means.push_back(std::ldexp(mantissa(rng), exponent(rng)));
  }
  return means;
}

TEST(InvRmsForLatencyTest, SameBitsAsTheExactChain) {
  std::mt19937_64 rng(19);
  for (const float eps : {0.0f, 1e-6f, 1e-5f}) {
    std::vector<double> near = MeansNearMidpoints(rng, eps, 400000);
    std::vector<double> spread = MeansOverEveryMagnitude(rng, 400000);
    std::vector<double> special = {0.0,
                                   -0.0,
                                   4.9406564584124654e-324,
                                   1e-310,
                                   1e-300,
                                   0x1p252,
                                   0x1p-254,
                                   0x1p-256,
                                   1e300,
                                   1.7976931348623157e308,
                                   INFINITY,
                                   -1.0,
                                   NAN};
    for (int k = -40; k <= 40; ++k) special.push_back(std::ldexp(1.0, 2 * k));
    for (const std::vector<double>* means : {&near, &spread, &special}) {
      const absl::StatusOr<std::vector<DeviceInvRms>> got =
          EvaluateInvRmsForLatency(*means, eps);
      ASSERT_TRUE(got.ok()) << got.status();
      ASSERT_EQ(got->size(), means->size());
      int64_t rsqrt = 0, mismatches = 0;
      for (size_t i = 0; i < means->size(); ++i) {
        const float want = numerics::InvRmsOfMean((*means)[i], eps);
        const float have = FloatFromBits((*got)[i].bits);
        rsqrt += (*got)[i].rsqrt;
        const bool same = FloatBits(want) == (*got)[i].bits ||
                          (std::isnan(want) && std::isnan(have));
        if (!same && mismatches++ < 5) {
          ADD_FAILURE() << "mean " << (*means)[i] << " eps " << eps
                        << ": device " << have << " (rsqrt " << (*got)[i].rsqrt
                        << "), exact chain " << want;
        }
      }
      EXPECT_EQ(mismatches, 0);
      std::printf("eps %g: %zu means, rsqrt shortcut taken for %lld\n", eps,
                  means->size(), static_cast<long long>(rsqrt));
      if (means == &near) {
        // Both paths exercised where it matters.
        EXPECT_GT(rsqrt, 0);
        EXPECT_LT(rsqrt, static_cast<int64_t>(near.size()));
      }
      if (means == &spread) {
        // Outside float32's range the exact chain runs; inside, nearly never.
        EXPECT_GT(rsqrt, static_cast<int64_t>(spread.size()) / 3);
      }
    }
  }
}

}  // namespace
}  // namespace normgraph
