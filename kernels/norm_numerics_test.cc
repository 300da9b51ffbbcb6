// The shared numerics (kernels/norm_numerics.h) against independent oracles:
// the pairwise order against a recursive definition of the balanced tree, the
// factor against a long-double value on hard row families, and exp / silu
// against the math library in double.

#include "kernels/norm_numerics.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/rms_norm.h"
#include "kernels/float_neighbours_testing.h"

namespace normgraph {
namespace {

// The balanced pairwise tree over v[begin, begin + size), size a power of two,
// leaves past `n` zero: the definition, written as a recursion.
double TreeSum(const std::vector<double>& v, size_t begin, size_t size) {
  if (size == 1) return begin < v.size() ? v[begin] : 0.0;
  const size_t half = size / 2;
  return TreeSum(v, begin, half) + TreeSum(v, begin + half, half);
}

TEST(PairwiseAccumulatorTest, FollowsTheBalancedTreeBitForBit) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> mantissa(1.0, 2.0);
  std::uniform_int_distribution<int> exponent(-60, 60);
  for (size_t n = 1; n <= 1100; n += (n < 70 ? 1 : 37)) {
    std::vector<double> v(n);
    for (double& d : v) d = std::ldexp(mantissa(rng), exponent(rng));
    numerics::PairwiseAccumulator<> acc;
    for (double d : v) acc.Add(d);
    size_t size = 1;
    while (size < n) size *= 2;
    // Bitwise: the same tree, not merely a close value.
    EXPECT_EQ(acc.Total(), TreeSum(v, 0, size)) << "n = " << n;
  }
}

// Chunks of 8 then a tree over chunks is the tree over elements.
TEST(PairwiseAccumulatorTest, ChunkedRowEqualsElementTree) {
  std::mt19937 rng(11);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  for (int64_t n : {1, 5, 8, 9, 63, 64, 65, 1000, 4096, 12289}) {
    std::vector<float> row(n);
    for (float& f : row) f = dist(rng);
    std::vector<double> squares(n);
    for (int64_t j = 0; j < n; ++j) squares[j] = numerics::Square(row[j]);
    size_t size = 1;
    while (size < squares.size()) size *= 2;
    const float want = numerics::InvRms(TreeSum(squares, 0, size), n, 1e-6f);
    EXPECT_EQ(InvRms(row.data(), n, 1e-6f), want) << "n = " << n;
  }
}

// The exact factor in long double (exact squares, compensated sum), 0 where
// the exact sum of squares rounds to +inf in float32 (as float32 accumulation
// gives it, and Hugging Face's factor then is: SumAsFloat32Accumulates).
double ExactInvRms(const std::vector<float>& v, float eps) {
  long double sum = 0, compensation = 0;
  for (float f : v) {
    const long double sq = static_cast<long double>(f) * f;
    const long double t = sum + sq;
    compensation += std::fabs(sum) >= sq ? (sum - t) + sq : (sq - t) + sum;
    sum = t;
  }
  if (std::isinf(static_cast<float>(sum + compensation))) return 0.0;
  const long double mean = (sum + compensation) / v.size();
  return static_cast<double>(1.0L / std::sqrt(mean + eps));
}

int64_t UlpDistanceF32(float a, float b) {
  auto ordered = [](float f) -> int64_t {
    const int64_t bits = FloatBits(f);
    return bits & 0x80000000 ? -(bits & 0x7FFFFFFF) : bits;
  };
  return std::llabs(ordered(a) - ordered(b));
}

// Within one float32 ulp of the exact factor on every row family (in practice
// the correctly rounded value): the accuracy target of the shared order.
TEST(InvRmsTest, WithinOneUlpOfExactOnHardRowFamilies) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> exponent(-30.0f, 30.0f);
  int64_t rows = 0, correctly_rounded = 0;
  for (int64_t n :
       {1, 2, 7, 8, 9, 100, 1536, 2304, 4096, 5120, 12288, 16384, 16385}) {
    for (int family = 0; family < 7; ++family) {
      std::vector<float> v(n);
      for (int64_t j = 0; j < n; ++j) {
        switch (family) {
          case 0:  // random
            v[j] = normal(rng);
            break;
          case 1:  // all equal (a long sequential float32 sum drifts here)
            v[j] = 0.1f;
            break;
          case 2:  // all equal, large
            v[j] = 3.3e3f;
            break;
          case 3:  // wide dynamic range
            v[j] = normal(rng) * std::exp2(exponent(rng));
            break;
          case 4:  // huge magnitudes (squares overflow float32: factor 0)
            v[j] = normal(rng) * 1e30f;
            break;
          case 5:  // tiny magnitudes (squares underflow float32; eps dominates)
            v[j] = normal(rng) * 1e-25f;
            break;
          case 6:  // one large value among small ones
            v[j] = j == n / 2 ? 1e4f : normal(rng) * 1e-3f;
            break;
        }
      }
      for (float eps : {1e-6f, 0.0f}) {
        if (eps == 0.0f && family == 5) continue;  // r ~ 1e25: no eps, fine too
        const float ours = InvRms(v.data(), n, eps);
        const float exact = static_cast<float>(ExactInvRms(v, eps));
        const int64_t d = UlpDistanceF32(ours, exact);
        EXPECT_LE(d, 1) << "family " << family << " n " << n << " eps " << eps
                        << ": ours " << ours << " exact " << exact;
        correctly_rounded += d == 0;
        ++rows;
      }
    }
  }
  // Printed for the record; the bound above is what is asserted.
  std::printf("%lld/%lld factors correctly rounded\n",
              static_cast<long long>(correctly_rounded),
              static_cast<long long>(rows));
}

// InvRms multiplies by 2^-k instead of dividing when n = 2^k: the definition
// (a division) must give the same bits for every sum, including sums whose
// mean is subnormal, zero, huge, infinite or NaN.
TEST(InvRmsTest, PowerOfTwoLengthsEqualTheDivision) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> mantissa(1.0, 2.0);
  std::uniform_int_distribution<int> exponent(-1074, 1023);
  std::vector<double> sums = {0.0,      4.9406564584124654e-324,
                              1e-310,   1.7976931348623157e308,
                              INFINITY, NAN};
  for (int i = 0; i < 20000; ++i) {
    sums.push_back(std::ldexp(mantissa(rng), exponent(rng)));
  }
  for (const float eps : {0.0f, 1e-6f, 1e-5f}) {
    for (int k = 0; k <= 62; ++k) {
      const int64_t n = int64_t{1} << k;
      for (const double sum : sums) {
        const double mean =
            numerics::SumAsFloat32Accumulates(sum) / static_cast<double>(n);
        const float want = static_cast<float>(
            1.0 / std::sqrt(mean + static_cast<double>(eps)));
        const float got = numerics::InvRms(sum, n, eps);
        ASSERT_TRUE(std::memcmp(&got, &want, sizeof got) == 0 ||
                    (std::isnan(got) && std::isnan(want)))
            << "sum " << sum << " n 2^" << k << " eps " << eps << ": " << got
            << " vs " << want;
      }
    }
  }
}

// SumAsFloat32Accumulates makes a sum +inf exactly where float32 rounds it to
// +inf (rounding to nearest even: from halfway between FLT_MAX and 2^128),
// and leaves every other sum (NaN too) as it is; a row of bf16 values whose
// float32 squares overflow, or whose squares add past FLT_MAX, then gets the
// factor 0, and its outputs are zeros signed as x times the weight, as in
// Hugging Face's float32 arithmetic.
TEST(InvRmsTest, SumsThatOverflowFloat32GiveFactorZero) {
  const double threshold = numerics::kFloat32OverflowSum;
  const double below = std::nextafter(threshold, 0.0);
  EXPECT_TRUE(std::isinf(static_cast<float>(threshold)));
  EXPECT_FALSE(std::isinf(static_cast<float>(below)));
  EXPECT_EQ(numerics::SumAsFloat32Accumulates(below), below);
  EXPECT_EQ(numerics::SumAsFloat32Accumulates(3.4028234663852886e38),
            3.4028234663852886e38);  // FLT_MAX
  EXPECT_TRUE(std::isinf(numerics::SumAsFloat32Accumulates(threshold)));
  EXPECT_TRUE(std::isinf(numerics::SumAsFloat32Accumulates(1e300)));
  EXPECT_TRUE(std::isinf(numerics::SumAsFloat32Accumulates(INFINITY)));
  EXPECT_TRUE(std::isnan(numerics::SumAsFloat32Accumulates(NAN)));
  EXPECT_EQ(numerics::SumAsFloat32Accumulates(0.0), 0.0);
  auto agrees = [](double sum) {
    return std::isinf(numerics::SumAsFloat32Accumulates(sum)) ==
           std::isinf(static_cast<float>(sum));
  };
  double up = threshold, down = threshold;
  for (int k = 0; k < 64; ++k) {
    EXPECT_TRUE(agrees(up) && agrees(down)) << up << " " << down;
    up = std::nextafter(up, INFINITY);
    down = std::nextafter(down, 0.0);
  }
  std::mt19937_64 rng(17);
  std::uniform_real_distribution<double> relative(-1e-6, 1e-6);
  for (int i = 0; i < 100000; ++i) {
    const double sum = threshold * (1.0 + relative(rng));
    ASSERT_TRUE(agrees(sum)) << sum;
  }
  EXPECT_EQ(numerics::InvRms(threshold, 4096, 1e-6f), 0.0f);
  EXPECT_GT(numerics::InvRms(below, 4096, 1e-6f), 0.0f);
  // Rows: 2^64 squared is 2^128 (one element); 4096 elements of 2^60 add up
  // to 2^132; 4096 of 2^57 to 2^126 (finite: the exact factor).
  for (const float big : {0x1p64f, 0x1p60f, 0x1p57f}) {
    const int64_t n = big == 0x1p64f ? 1 : 4096;
    const std::vector<float> row(n, big);
    const float r = InvRms(row.data(), n, 1e-6f);
    if (big == 0x1p57f) {
      EXPECT_EQ(r, 0x1p-57f);
    } else {
      EXPECT_EQ(r, 0.0f) << big;
    }
  }
}

// What the GPU's rsqrt shortcut relies on: where RoundsLikeNeighbours says
// yes, every float64 within kRoundingGuardUlps of y rounds to y's float32.
TEST(RoundsLikeNeighboursTest, YesMeansEveryNeighbourRoundsTheSame) {
  std::mt19937_64 rng(13);
  std::uniform_real_distribution<double> mantissa(1.0, 2.0);
  std::uniform_int_distribution<int> exponent(-160, 160);
  std::uniform_int_distribution<uint32_t> float_bits(0x00800000u, 0x7F7FFFFFu);
  std::uniform_int_distribution<int> offset(-3 * numerics::kRoundingGuardUlps,
                                            3 * numerics::kRoundingGuardUlps);
  constexpr int kGuard = numerics::kRoundingGuardUlps;
  int64_t yes = 0, no = 0;
  for (int i = 0; i < 200000; ++i) {
    // Half spread over magnitudes, half within a few guards of a midpoint.
    const double y =
        i % 2 == 0 ? std::ldexp(mantissa(rng), exponent(rng))
                   : MovedUlps(MidpointAbove(FloatFromBits(float_bits(rng))),
                               offset(rng));
    if (!numerics::RoundsLikeNeighbours(y)) {
      ++no;
      continue;
    }
    ++yes;
    const float f = static_cast<float>(y);
    for (const int k : {-kGuard, -kGuard / 2, -1, 1, kGuard / 2, kGuard}) {
      const double d = MovedUlps(y, k);
      ASSERT_EQ(FloatBits(static_cast<float>(d)), FloatBits(f))
          << "y " << y << " moved " << k << " ulps rounds differently";
    }
  }
  // Both answers occur (the midpoint half makes the no's).
  EXPECT_GT(yes, 100000);
  EXPECT_GT(no, 10000);
}

TEST(RoundsLikeNeighboursTest, NoNearMidpointsAndOutsideTheNormalRange) {
  for (const float f :
       {1.0f, 3.0f, 1.17549435e-38f, 1.5e-30f, 7.0e30f, 3.4028232e38f}) {
    const double midpoint = MidpointAbove(f);
    for (const int k : {-numerics::kRoundingGuardUlps, -1, 0, 1,
                        numerics::kRoundingGuardUlps}) {
      EXPECT_FALSE(numerics::RoundsLikeNeighbours(MovedUlps(midpoint, k)))
          << "midpoint above " << f << " moved " << k;
    }
    // Float32 values themselves are safe, and just past the guard too.
    EXPECT_TRUE(numerics::RoundsLikeNeighbours(static_cast<double>(f))) << f;
    EXPECT_TRUE(numerics::RoundsLikeNeighbours(
        MovedUlps(midpoint, numerics::kRoundingGuardUlps + 1)))
        << f;
  }
  for (const double y :
       {0.0, -0.0, -1.0, 1e-40, 0x1p-127, 0x1p128, 1e300,
        static_cast<double>(INFINITY), static_cast<double>(NAN)}) {
    EXPECT_FALSE(numerics::RoundsLikeNeighbours(y)) << y;
  }
  EXPECT_TRUE(numerics::RoundsLikeNeighbours(0x1p-126));
  EXPECT_TRUE(numerics::RoundsLikeNeighbours(0x1p127));
}

TEST(MeanOfSquaresTest, EqualsTheDivisionForEveryLength) {
  std::mt19937_64 rng(17);
  std::uniform_real_distribution<double> mantissa(1.0, 2.0);
  std::uniform_int_distribution<int> exponent(-1000, 1000);
  for (int i = 0; i < 20000; ++i) {
    const double sum = std::ldexp(mantissa(rng), exponent(rng));
    for (const int64_t n : {int64_t{1}, int64_t{3}, int64_t{1536},
                            int64_t{2048}, int64_t{2304}, int64_t{1} << 40}) {
      EXPECT_EQ(numerics::MeanOfSquares(sum, n), sum / static_cast<double>(n));
    }
  }
}

// Within 1 ulp of float(exp(double(x))) for every float32 x (an exhaustive
// check, run once when the fused form was introduced); here a stride through
// the range and random arguments.
TEST(ExpF32Test, WithinOneUlpOfTheMathLibrary) {
  int64_t worst = 0;
  auto check = [&](float x) {
    const double want = std::exp(static_cast<double>(x));
    const float got = numerics::ExpF32(x);
    if (want > 3.4028234663852886e38) {
      EXPECT_TRUE(std::isinf(got)) << x;
      return;
    }
    const float want_f = static_cast<float>(want);
    // Below the normal range a float has fewer bits; compare in absolute
    // terms there.
    if (want < 1.1754943508222875e-38) {
      EXPECT_NEAR(got, want_f, 3e-45) << x;
      return;
    }
    const int64_t d = UlpDistanceF32(got, want_f);
    worst = std::max(worst, d);
    EXPECT_LE(d, 1) << "x = " << x;
  };
  for (float x = -104.0f; x <= 89.0f; x += 0.0137f) check(x);
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-20.0f, 20.0f);
  for (int i = 0; i < 200000; ++i) check(u(rng));
  EXPECT_EQ(numerics::ExpF32(0.0f), 1.0f);
  EXPECT_TRUE(std::isnan(numerics::ExpF32(std::nanf(""))));
  EXPECT_EQ(numerics::ExpF32(-200.0f), 0.0f);
  std::printf("ExpF32: worst %lld ulp\n", static_cast<long long>(worst));
}

TEST(SiluTest, MatchesDoublePrecisionWithinThreeUlps) {
  for (float g = -88.0f; g <= 90.0f; g += 0.00731f) {
    const double want = g / (1.0 + std::exp(-static_cast<double>(g)));
    const float got = numerics::Silu(g);
    EXPECT_LE(UlpDistanceF32(got, static_cast<float>(want)), 3) << g;
  }
  // Past -88.72, exp(-g) overflows float32 and the float32 formula gives -0,
  // as torch's float32 silu does.
  EXPECT_EQ(FloatBits(numerics::Silu(-89.0f)), 0x80000000u);
}

// The GPU's branch-free silu takes its denominator from
// SiluDenominatorAboveOverflow and selects g <= -88.72283935546875 (and NaN)
// itself; kernels/cuda:silu_test checks the whole silu for every float32 on
// the GPU. Here, without a GPU: the denominator equals 1 + ExpF32(-g) bit for
// bit on a stride through all floats and on every float near the places
// where it is most fragile: the overflow threshold and g = -87.33 (n = 126:
// the exponent field near its top), the switch at g = 64, and around 0.
TEST(SiluDenominatorTest, EqualsOnePlusExpF32AboveTheOverflowThreshold) {
  const float threshold = -88.72283935546875f;
  int64_t checked = 0;
  auto check = [&](float g) {
    if (std::isnan(g) || !(g > threshold)) return;
    ++checked;
    const float want = 1.0f + numerics::ExpF32(-g);
    const float got = numerics::SiluDenominatorAboveOverflow(g);
    ASSERT_EQ(FloatBits(got), FloatBits(want))
        << "g = " << g << " (0x" << std::hex << FloatBits(g) << ")";
  };
  for (uint64_t u = 0; u <= 0xFFFFFFFFull; u += 4099) {
    check(FloatFromBits(static_cast<uint32_t>(u)));
  }
  // Every float within 2^17 ulps of each of those places (both signs
  // around 0).
  for (const float centre :
       {threshold, -87.33f, 64.0f, 0x1p-60f, -0x1p-60f, 0.0f, -0.0f}) {
    const uint32_t bits = FloatBits(centre);
    for (uint32_t k = 0; k < (1u << 17); ++k) {
      check(FloatFromBits(bits + k));
      if (bits >= k) check(FloatFromBits(bits - k));
    }
  }
  EXPECT_GT(checked, 1500000);
  // At the threshold itself ExpF32's main path overflows; the shortcut's
  // doubling overflows with it.
  EXPECT_TRUE(std::isinf(numerics::SiluDenominatorAboveOverflow(threshold)));
  EXPECT_TRUE(std::isinf(1.0f + numerics::ExpF32(-threshold)));
}

TEST(EncodeOutputTest, EveryNanBecomesOneCanonicalNan) {
  const float nans[] = {FloatFromBits(0x7FC00000u), FloatFromBits(0xFFC00000u),
                        FloatFromBits(0x7F800001u), FloatFromBits(0xFFFFFFFFu)};
  for (float nan : nans) {
    EXPECT_EQ(numerics::EncodeOutput<DType::kF32>(nan), 0x7FC00000u);
    EXPECT_EQ(numerics::EncodeOutput<DType::kBF16>(nan), 0x7FC0u);
    EXPECT_EQ(numerics::EncodeOutput<DType::kF16>(nan), 0x7E00u);
  }
  EXPECT_EQ(numerics::EncodeOutput<DType::kBF16>(1.0f), 0x3F80u);
}

}  // namespace
}  // namespace normgraph
