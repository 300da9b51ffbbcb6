// Conversions are checked against independent oracles: the exact value of every
// bf16 / f16 bit pattern computed in double from the IEEE formula, and
// round-to-nearest-even computed by search over the sorted list of
// representable values. Neither oracle shares code with dtype.cc.

#include "core/dtype.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace normgraph {
namespace {

double F16ValueOracle(uint16_t h) {
  const int sign = h >> 15, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
  double v;
  if (exponent == 31) {
    v = mantissa == 0 ? std::numeric_limits<double>::infinity()
                      : std::numeric_limits<double>::quiet_NaN();
  } else if (exponent == 0) {
    v = std::ldexp(mantissa, -24);
  } else {
    v = std::ldexp(1024 + mantissa, exponent - 25);
  }
  return sign ? -v : v;
}

double Bf16ValueOracle(uint16_t b) {
  const int sign = b >> 15, exponent = (b >> 7) & 0xFF, mantissa = b & 0x7F;
  double v;
  if (exponent == 255) {
    v = mantissa == 0 ? std::numeric_limits<double>::infinity()
                      : std::numeric_limits<double>::quiet_NaN();
  } else if (exponent == 0) {
    v = std::ldexp(mantissa, -133);
  } else {
    v = std::ldexp(128 + mantissa, exponent - 134);
  }
  return sign ? -v : v;
}

// Round-to-nearest-even of a finite non-NaN `d` into the format whose positive
// finite values are the bit patterns 0..max_finite (monotonic in value), by
// binary search. `overflow_at` is the magnitude from which the result is
// infinity (`inf_bits`).
uint16_t NearestEvenOracle(double d, double (*value)(uint16_t),
                           uint16_t max_finite, double overflow_at,
                           uint16_t inf_bits) {
  const uint16_t sign = std::signbit(d) ? 0x8000 : 0;
  const double a = std::fabs(d);
  if (a >= overflow_at) return sign | inf_bits;
  uint32_t lo = 0, hi = max_finite;  // find the largest pattern with value <= a
  while (lo < hi) {
    const uint32_t mid = (lo + hi + 1) / 2;
    if (value(static_cast<uint16_t>(mid)) <= a) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  if (lo == max_finite) return sign | static_cast<uint16_t>(lo);
  const double below = value(static_cast<uint16_t>(lo));
  const double above = value(static_cast<uint16_t>(lo + 1));
  const double d_below = a - below, d_above = above - a;
  uint32_t pick;
  if (d_below < d_above) {
    pick = lo;
  } else if (d_above < d_below) {
    pick = lo + 1;
  } else {
    pick = (lo % 2 == 0) ? lo : lo + 1;  // tie: the even pattern
  }
  return sign | static_cast<uint16_t>(pick);
}

const double kF16OverflowAt = 65520.0;  // midpoint of 65504 and 2^16
const double kBf16Max = Bf16ValueOracle(0x7F7F);
const double kBf16OverflowAt = (kBf16Max + std::ldexp(1.0, 128)) / 2;

uint16_t F16Oracle(float f) {
  return NearestEvenOracle(f, F16ValueOracle, 0x7BFF, kF16OverflowAt, 0x7C00);
}
uint16_t Bf16Oracle(float f) {
  return NearestEvenOracle(f, Bf16ValueOracle, 0x7F7F, kBf16OverflowAt, 0x7F80);
}

TEST(DTypeTest, F16ToFloatIsExactForAllBitPatterns) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    const float f = F16BitsToFloat(static_cast<uint16_t>(h));
    const double want = F16ValueOracle(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << h;
      ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0) << std::hex << h;
      ASSERT_EQ((FloatBits(f) >> 13) & 0x3FF, h & 0x3FF)
          << "payload kept, " << std::hex << h;
    } else {
      ASSERT_EQ(static_cast<double>(f), want) << std::hex << h;
      ASSERT_EQ(std::signbit(f), (h & 0x8000) != 0)
          << std::hex << h;  // -0.0 too
    }
  }
}

TEST(DTypeTest, Bf16ToFloatIsExactForAllBitPatterns) {
  for (uint32_t b = 0; b <= 0xFFFF; ++b) {
    const float f = Bf16BitsToFloat(static_cast<uint16_t>(b));
    const double want = Bf16ValueOracle(static_cast<uint16_t>(b));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(f)) << std::hex << b;
    } else {
      ASSERT_EQ(static_cast<double>(f), want) << std::hex << b;
      ASSERT_EQ(std::signbit(f), (b & 0x8000) != 0) << std::hex << b;
    }
  }
}

TEST(DTypeTest, F16RoundTripsAllBitPatterns) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    const uint16_t back =
        FloatToF16Bits(F16BitsToFloat(static_cast<uint16_t>(h)));
    if (std::isnan(F16ValueOracle(static_cast<uint16_t>(h)))) {
      // PyTorch (c10::Half) turns every NaN into the quiet NaN with the sign
      // kept.
      ASSERT_EQ(back, (h & 0x8000) | 0x7E00) << std::hex << h;
    } else {
      ASSERT_EQ(back, h) << std::hex << h;
    }
  }
}

TEST(DTypeTest, Bf16RoundTripsAllBitPatterns) {
  for (uint32_t b = 0; b <= 0xFFFF; ++b) {
    const uint16_t back =
        FloatToBf16Bits(Bf16BitsToFloat(static_cast<uint16_t>(b)));
    if (std::isnan(Bf16ValueOracle(static_cast<uint16_t>(b)))) {
      ASSERT_EQ(back, 0x7FC0)
          << std::hex << b;  // c10::BFloat16's canonical NaN
    } else {
      ASSERT_EQ(back, b) << std::hex << b;
    }
  }
}

// Floats around every tie point between neighbouring values of the 16-bit
// format: the tie itself (representable in f32 for both formats) and the floats
// just below and above it.
std::vector<float> TieNeighbourhoods(double (*value)(uint16_t),
                                     uint16_t max_finite) {
  std::vector<float> out;
  for (uint32_t p = 0; p < max_finite; ++p) {
    const double mid = (value(static_cast<uint16_t>(p)) +
                        value(static_cast<uint16_t>(p + 1))) /
                       2;
    const float tie = static_cast<float>(mid);
    if (static_cast<double>(tie) != mid)
      continue;  // not representable: no tie in f32
    for (float f :
         {tie, std::nextafter(tie, 0.0f), std::nextafter(tie, INFINITY)}) {
      out.push_back(f);
      out.push_back(-f);
    }
  }
  return out;
}

TEST(DTypeTest, FloatToF16RoundsToNearestEvenAtEveryTie) {
  const std::vector<float> floats = TieNeighbourhoods(F16ValueOracle, 0x7BFF);
  ASSERT_GT(floats.size(), 100000u);
  for (float f : floats) ASSERT_EQ(FloatToF16Bits(f), F16Oracle(f)) << f;
}

TEST(DTypeTest, FloatToBf16RoundsToNearestEvenAtEveryTie) {
  const std::vector<float> floats = TieNeighbourhoods(Bf16ValueOracle, 0x7F7F);
  ASSERT_GT(floats.size(), 100000u);
  for (float f : floats) ASSERT_EQ(FloatToBf16Bits(f), Bf16Oracle(f)) << f;
}

TEST(DTypeTest, FloatToHalfMatchesOracleOnRandomFloats) {
  std::mt19937 rng(7);
  for (int i = 0; i < 2000000; ++i) {
    const float f = FloatFromBits(rng());
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatToF16Bits(f), F16Oracle(f)) << std::hexfloat << f;
    ASSERT_EQ(FloatToBf16Bits(f), Bf16Oracle(f)) << std::hexfloat << f;
  }
}

TEST(DTypeTest, F16BoundaryCases) {
  EXPECT_EQ(FloatToF16Bits(65504.0f), 0x7BFF);  // largest finite
  EXPECT_EQ(FloatToF16Bits(std::nextafter(65520.0f, 0.0f)),
            0x7BFF);                            // just under the tie
  EXPECT_EQ(FloatToF16Bits(65520.0f), 0x7C00);  // tie: rounds to inf (odd)
  EXPECT_EQ(FloatToF16Bits(-1e9f), 0xFC00);
  EXPECT_EQ(FloatToF16Bits(INFINITY), 0x7C00);
  EXPECT_EQ(FloatToF16Bits(std::ldexp(1.0f, -24)),
            0x0001);  // smallest subnormal
  EXPECT_EQ(FloatToF16Bits(std::ldexp(1.0f, -25)),
            0x0000);  // tie with zero: even
  EXPECT_EQ(FloatToF16Bits(std::nextafter(std::ldexp(1.0f, -25), 1.0f)),
            0x0001);
  EXPECT_EQ(FloatToF16Bits(std::ldexp(3.0f, -25)),
            0x0002);  // 1.5 units: tie, to even
  EXPECT_EQ(FloatToF16Bits(std::ldexp(5.0f, -25)),
            0x0002);  // 2.5 units: tie, to even
  EXPECT_EQ(FloatToF16Bits(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(FloatToF16Bits(std::nextafter(std::ldexp(1.0f, -14), 0.0f)),
            0x0400);  // rounds up
  EXPECT_EQ(FloatToF16Bits(-0.0f), 0x8000);
  EXPECT_EQ(FloatToF16Bits(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(FloatToF16Bits(1.0f + std::ldexp(1.0f, -11)),
            0x3C00);  // tie at 1: even
  EXPECT_EQ(FloatToF16Bits(1.0f + std::ldexp(3.0f, -11)),
            0x3C02);  // tie: even (up)
  EXPECT_EQ(FloatToF16Bits(-NAN), 0xFE00);
}

TEST(DTypeTest, Bf16BoundaryCases) {
  EXPECT_EQ(FloatToBf16Bits(std::numeric_limits<float>::max()),
            0x7F80);  // past the last tie
  EXPECT_EQ(FloatToBf16Bits(static_cast<float>(kBf16Max)), 0x7F7F);
  EXPECT_EQ(FloatToBf16Bits(1.0f + std::ldexp(1.0f, -8)),
            0x3F80);  // tie: even (down)
  EXPECT_EQ(FloatToBf16Bits(1.0f + std::ldexp(3.0f, -8)),
            0x3F82);  // tie: even (up)
  EXPECT_EQ(FloatToBf16Bits(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(FloatToBf16Bits(std::ldexp(1.0f, -133)),
            0x0001);  // smallest bf16 subnormal
  EXPECT_EQ(FloatToBf16Bits(-INFINITY), 0xFF80);
  EXPECT_EQ(FloatToBf16Bits(-NAN), 0x7FC0);
}

#ifdef __FLT16_MAX__
// Where the compiler has a native _Float16 (g++ on x86-64), it must agree too.
TEST(DTypeTest, AgreesWithCompilerFloat16) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    _Float16 native;
    const uint16_t bits = static_cast<uint16_t>(h);
    std::memcpy(&native, &bits, 2);
    const float f = static_cast<float>(native);
    if (std::isnan(f)) continue;
    ASSERT_EQ(FloatBits(F16BitsToFloat(bits)), FloatBits(f)) << std::hex << h;
  }
  std::mt19937 rng(11);
  for (int i = 0; i < 1000000; ++i) {
    const float f = FloatFromBits(rng());
    if (std::isnan(f)) continue;
    const _Float16 native = static_cast<_Float16>(f);
    uint16_t bits;
    std::memcpy(&bits, &native, 2);
    ASSERT_EQ(FloatToF16Bits(f), bits) << std::hexfloat << f;
  }
}
#endif

TEST(DTypeTest, LoadStoreUnaligned) {
  alignas(8) unsigned char buffer[16] = {};
  StoreFromFloat(buffer + 1, DType::kF32, 0, 1.5f);
  StoreFromFloat(buffer + 5, DType::kBF16, 1, 3.0f);
  StoreFromFloat(buffer + 11, DType::kF16, 0, -2.0f);
  EXPECT_EQ(LoadAsFloat(buffer + 1, DType::kF32, 0), 1.5f);
  EXPECT_EQ(LoadAsFloat(buffer + 5, DType::kBF16, 1), 3.0f);
  EXPECT_EQ(LoadAsFloat(buffer + 11, DType::kF16, 0), -2.0f);
}

TEST(DTypeTest, PromoteTypesFollowsPyTorch) {
  EXPECT_EQ(PromoteTypes(DType::kBF16, DType::kBF16), DType::kBF16);
  EXPECT_EQ(PromoteTypes(DType::kBF16, DType::kF32), DType::kF32);
  EXPECT_EQ(PromoteTypes(DType::kF16, DType::kBF16), DType::kF32);
  EXPECT_EQ(PromoteTypes(DType::kF16, DType::kF16), DType::kF16);
}

}  // namespace
}  // namespace normgraph
