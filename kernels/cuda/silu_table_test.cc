// The bf16 silu table (silu_table.h) against numerics::Silu over every bf16
// value: which values it holds (the window [2^-24, 2^8) of both signs, and
// nothing else), where, and with which bits.

#include "kernels/cuda/silu_table.h"

#include <cmath>
#include <cstdint>

#include "core/float_bits.h"
#include "gtest/gtest.h"
#include "kernels/norm_numerics.h"

namespace normgraph {
namespace {

const uint32_t kTable[] = {
#include "kernels/cuda/silu_bf16_table.inl"
};
static_assert(sizeof kTable == silu_table::kBytes);

float Bf16(uint32_t bits) { return FloatFromBits(bits << 16); }

TEST(SiluTableTest, HoldsExactlyTheWindowOfBothSigns) {
  bool seen[silu_table::kEntries] = {};
  int held = 0;
  for (uint32_t bits = 0; bits < 0x10000u; ++bits) {
    const float g = Bf16(bits);
    const float magnitude = std::fabs(g);
    const bool in_window = magnitude >= 0x1p-24f && magnitude < 256.0f;
    const uint32_t index = silu_table::IndexOfBf16(bits);
    ASSERT_EQ(index < silu_table::kEntries, in_window)
        << "bf16 0x" << std::hex << bits << " = " << g;
    if (index == silu_table::kEntries) continue;
    ASSERT_FALSE(seen[index]) << "two values at entry " << index;
    seen[index] = true;
    ++held;
    EXPECT_EQ(silu_table::Bf16OfIndex(index), bits);
    EXPECT_EQ(kTable[index], FloatBits(numerics::Silu(g)))
        << "silu(" << g << ") at entry " << index;
  }
  EXPECT_EQ(held, static_cast<int>(silu_table::kEntries));
}

TEST(SiluTableTest, EdgesOfTheWindow) {
  EXPECT_EQ(silu_table::IndexOfBf16(0x0000u), silu_table::kEntries);  // +0
  EXPECT_EQ(silu_table::IndexOfBf16(0x8000u), silu_table::kEntries);  // -0
  EXPECT_EQ(silu_table::IndexOfBf16(0x7F80u), silu_table::kEntries);  // inf
  EXPECT_EQ(silu_table::IndexOfBf16(0x7FC0u), silu_table::kEntries);  // NaN
  EXPECT_EQ(silu_table::IndexOfBf16(0x4380u), silu_table::kEntries);  // 256
  EXPECT_EQ(silu_table::IndexOfBf16(0x337Fu), silu_table::kEntries);  // < 2^-24
  EXPECT_EQ(silu_table::IndexOfBf16(0x3380u), 0u);                    // 2^-24
  EXPECT_EQ(silu_table::IndexOfBf16(0xB380u), 0x1000u);               // -2^-24
  EXPECT_EQ(silu_table::IndexOfBf16(0x437Fu), 0x0FFFu);  // 255 (largest)
  EXPECT_EQ(Bf16(0x437Fu), 255.0f);
}

}  // namespace
}  // namespace normgraph
