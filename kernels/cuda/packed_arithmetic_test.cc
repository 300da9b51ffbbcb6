// The packed 16-bit additions and multiplications of the CUDA kernels give the
// shared numerics' float32-then-round results for every pair of bf16 and of
// f16 values (packed_arithmetic_check.h). Runs on a GPU host (tagged gpu).

#include <cstdio>

#include "gtest/gtest.h"
#include "kernels/cuda/packed_arithmetic_check.h"

namespace normgraph {
namespace {

TEST(PackedArithmeticTest, EveryPairMatchesFloat32ThenRound) {
  for (const DType dtype : {DType::kBF16, DType::kF16}) {
    const absl::StatusOr<PackedArithmeticMismatches> m =
        CountPackedArithmeticMismatches(dtype);
    ASSERT_TRUE(m.ok()) << m.status();
    std::printf("%s: %lld pairs, both halves each\n", DTypeName(dtype).data(),
                static_cast<long long>(m->pairs));
    EXPECT_EQ(m->pairs, int64_t{1} << 32);
    EXPECT_EQ(m->add, 0) << DTypeName(dtype) << " sum differs for pair 0x"
                         << std::hex << m->example_add;
    EXPECT_EQ(m->mul, 0) << DTypeName(dtype) << " product differs for pair 0x"
                         << std::hex << m->example_mul;
  }
}

}  // namespace
}  // namespace normgraph
