#include "fuzz/norm_model.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/rms_norm.h"
#include "kernels/rms_norm_params.h"

namespace normgraph {
namespace fuzz {
namespace {

float F32(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Hand-computed (exact arithmetic, rounded once per float32 step): x = [3,
// 4], eps 0: mean 12.5, r = float(1 / sqrt(12.5)) = 0x3e90d0c3; outputs 2 *
// float(3 r) and 0.5 * float(4 r).
TEST(NormModelTest, AHandComputedF32Row) {
  const float x[] = {3.0f, 4.0f};
  const float w[] = {2.0f, 0.5f};
  RmsNormParams p;
  p.x = x;
  p.weight = w;
  p.rows = 1;
  p.cols = 2;
  p.eps = 0.0f;
  p.x_dtype = p.weight_dtype = p.out_dtype = DType::kF32;
  NormModelOutput model;
  RunNormModel(p, &model);
  ASSERT_EQ(model.out.size(), 8u);
  float out[2];
  std::memcpy(out, model.out.data(), 8);
  EXPECT_EQ(Bits(out[0]), 0x3fd93924u);
  EXPECT_EQ(Bits(out[1]), 0x3f10d0c3u);
}

// bf16 [1, 2, 3] + residual 0.5 each: residual [1.5, 2.5, 3.5] (exact), mean
// 20.75 / 3, eps 1e-6; zero-centred scale [1.5, 1, 0.25]: bf16 outputs
// 0x3f5b, 0x3f73, 0x3eaa.
TEST(NormModelTest, AHandComputedBf16FusedAddRow) {
  const uint16_t x[] = {0x3f80, 0x4000, 0x4040};
  uint16_t residual[] = {0x3f00, 0x3f00, 0x3f00};
  const float scale[] = {1.5f, 1.0f, 0.25f};
  RmsNormParams p;
  p.x = x;
  p.residual = residual;
  p.weight = scale;
  p.weight_kind = NormWeight::kScale;
  p.weight_dtype = DType::kF32;
  p.rows = 1;
  p.cols = 3;
  p.eps = 1e-6f;
  NormModelOutput model;
  RunNormModel(p, &model);
  uint16_t out[3], res[3];
  ASSERT_EQ(model.out.size(), sizeof out);
  ASSERT_EQ(model.residual.size(), sizeof res);
  std::memcpy(out, model.out.data(), sizeof out);
  std::memcpy(res, model.residual.data(), sizeof res);
  EXPECT_EQ(out[0], 0x3f5b);
  EXPECT_EQ(out[1], 0x3f73);
  EXPECT_EQ(out[2], 0x3eaa);
  EXPECT_EQ(res[0], 0x3fc0);  // 1.5
  EXPECT_EQ(res[1], 0x4020);  // 2.5
  EXPECT_EQ(res[2], 0x4060);  // 3.5
  // The model writes nothing through p.
  EXPECT_EQ(residual[0], 0x3f00);
}

// Random element bits of `dtype`: mostly values near 1 of either sign, and,
// with `special`, zeros of both signs, subnormals, huge values (float32
// squares that overflow), infinities and NaNs.
void FillRandom(std::mt19937_64& rng, DType dtype, bool special, int64_t n,
                std::vector<uint8_t>* bytes) {
  const size_t es = DTypeSize(dtype);
  bytes->resize(n * es);
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t r = rng();
    float f = std::ldexp(static_cast<float>(r % 20001) / 10000.0f - 1.0f,
                         static_cast<int>((r >> 20) % 5) - 2);
    if (special && (r >> 32) % 16 == 0) {
      const float kSpecial[] = {0.0f,  -0.0f,     1e-40f,     -3e-39f,
                                6e-8f, 1e30f,     -3e19f,     65504.0f,
                                1e5f,  HUGE_VALF, -HUGE_VALF, std::nanf("")};
      f = kSpecial[(r >> 40) % (sizeof kSpecial / sizeof kSpecial[0])];
    }
    uint32_t bits = Bits(f);
    if (dtype == DType::kBF16) {
      bits >>= 16;  // truncation: any bf16 value will do
    } else if (dtype == DType::kF16) {
      // Any f16 bits: a random pattern instead, half of them near 1.
      bits = (r >> 44) % 2 ? static_cast<uint32_t>(r >> 48)
                           : 0x3800u + static_cast<uint32_t>((r >> 48) % 0x800);
      if (!special && ((bits >> 10) & 0x1F) == 0x1F) bits &= ~0x4000u;
    }
    std::memcpy(bytes->data() + i * es, &bits, es);
  }
}

// The model against the CPU reference kernel (RmsNormCpuScalar), on random
// shapes, strides, dtypes, forms, eps and values: they are written apart and
// must agree (gated outputs within GatedUlpsAllowed).
TEST(NormModelTest, AgreesWithTheReferenceKernel) {
  std::mt19937_64 rng(20261201);
  const DType kDTypes[] = {DType::kF32, DType::kBF16, DType::kF16};
  const float kEps[] = {1e-6f, 1e-5f, 0.25f, 0.0f};
  int run = 0;
  for (int c = 0; c < 20000; ++c) {
    RmsNormParams p;
    p.x_dtype = p.out_dtype = kDTypes[rng() % 3];
    p.weight_kind = rng() % 3 == 0 ? NormWeight::kScale : NormWeight::kMultiply;
    p.weight_dtype =
        p.weight_kind == NormWeight::kScale ? DType::kF32 : kDTypes[rng() % 3];
    p.order = rng() % 2 ? RoundingOrder::kEngine : RoundingOrder::kHuggingFace;
    p.eps = kEps[rng() % 4];
    p.rows = 1 + rng() % 3;
    const int64_t kCols[] = {1, 2, 3, 7, 8, 9, 63, 64, 65, 127, 300, 1031};
    p.cols = c % 5 == 0 ? 1 + rng() % 200 : kCols[rng() % 12];
    const bool special = c % 3 == 0;
    const bool residual = rng() % 2;
    const bool gated = p.weight_kind == NormWeight::kMultiply && rng() % 3 == 0;
    auto stride = [&] { return p.cols + static_cast<int64_t>(rng() % 3); };
    p.x_stride = stride();
    p.out_stride = stride();
    p.residual_stride = stride();
    p.gate_stride = stride();
    std::vector<uint8_t> x, w, g, r, out;
    FillRandom(rng, p.x_dtype, special, p.rows * p.x_stride, &x);
    if (p.weight_kind == NormWeight::kScale) {
      FillRandom(rng, DType::kF32, special, p.cols, &w);
    } else {
      FillRandom(rng, p.weight_dtype, special, p.cols, &w);
    }
    FillRandom(rng, p.x_dtype, special, p.rows * p.gate_stride, &g);
    FillRandom(rng, p.x_dtype, special, p.rows * p.residual_stride, &r);
    out.assign(p.rows * p.out_stride * DTypeSize(p.out_dtype), 0);
    p.x = x.data();
    p.weight = w.data();
    p.gate = gated ? g.data() : nullptr;
    p.residual = residual ? r.data() : nullptr;
    p.out = out.data();
    if (!ValidateRmsNormParams(p).ok()) continue;
    NormModelOutput model;
    RunNormModel(p, &model);
    RmsNormCpuScalar(p);
    ++run;
    ASSERT_EQ(CompareWithNormModel(p, model), "")
        << "case " << c << ": x " << DTypeName(p.x_dtype) << ", weight "
        << DTypeName(p.weight_dtype) << (residual ? ", residual" : "")
        << (gated ? ", gated" : "") << ", cols " << p.cols << ", eps " << p.eps;
  }
  EXPECT_GT(run, 15000);
}

// A kernel output one ulp off, or a residual not written back, is named.
TEST(NormModelTest, NamesTheFirstElementThatDiffers) {
  uint16_t x[] = {0x3f80, 0x4000, 0x4040, 0xbf80};
  uint16_t residual[] = {0x3f00, 0x3f00, 0x3f00, 0x3f00};
  const uint16_t w[] = {0x3f80, 0x3f80, 0x4000, 0x3f00};
  uint16_t out[4];
  RmsNormParams p;
  p.x = x;
  p.residual = residual;
  p.weight = w;
  p.out = out;
  p.rows = 2;
  p.cols = 2;
  p.x_stride = p.residual_stride = p.out_stride = 2;
  NormModelOutput model;
  RunNormModel(p, &model);
  RmsNormCpuScalar(p);
  ASSERT_EQ(CompareWithNormModel(p, model), "");
  out[3] += 1;
  EXPECT_NE(CompareWithNormModel(p, model).find("out[1, 1]"),
            std::string::npos);
  out[3] -= 1;
  residual[2] = 0x3f00;
  EXPECT_NE(CompareWithNormModel(p, model).find("residual[1, 0]"),
            std::string::npos);
}

}  // namespace
}  // namespace fuzz
}  // namespace normgraph
