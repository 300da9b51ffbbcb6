// Properties of the CPU reference kernels, checked against a float64 model of
// each formula. Exact parity with Hugging Face is tested separately, against
// transformers' own outputs (testdata/hf_golden).

#include "kernels/cpu/rms_norm.h"

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/dtype.h"
#include "gtest/gtest.h"

namespace normgraph {
namespace {

// A row-major buffer of one dtype, deliberately placed at an odd byte offset so
// the kernels see unaligned pointers.
class Buffer {
 public:
  Buffer(DType dtype, int64_t n)
      : dtype_(dtype), n_(n), bytes_(n * DTypeSize(dtype) + 1) {}
  void* data() { return bytes_.data() + 1; }
  float Get(int64_t i) const {
    return LoadAsFloat(bytes_.data() + 1, dtype_, i);
  }
  void Set(int64_t i, float v) {
    StoreFromFloat(bytes_.data() + 1, dtype_, i, v);
  }
  void Poison() {
    std::memset(bytes_.data() + 1, 0xFF, n_ * DTypeSize(dtype_));
  }
  DType dtype() const { return dtype_; }

 private:
  DType dtype_;
  int64_t n_;
  std::vector<unsigned char> bytes_;
};

void FillRandom(Buffer& b, int64_t n, std::mt19937& rng, float scale,
                float offset = 0.0f) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (int64_t i = 0; i < n; ++i) b.Set(i, offset + scale * dist(rng));
}

// Distance in units in the last place of `dtype` between two finite values of
// that dtype.
int64_t UlpDistance(DType dtype, float a, float b) {
  auto ordered = [dtype](float f) -> int64_t {
    int64_t bits;
    if (dtype == DType::kF32) {
      bits = FloatBits(f);
      return bits & 0x80000000 ? -(bits & 0x7FFFFFFF) : bits;
    }
    bits = dtype == DType::kBF16 ? FloatToBf16Bits(f) : FloatToF16Bits(f);
    return bits & 0x8000 ? -(bits & 0x7FFF) : bits;
  };
  return std::llabs(ordered(a) - ordered(b));
}

struct Case {
  DType x_dtype;
  DType w_dtype;
  int64_t cols;
};

class RmsNormPropertyTest : public ::testing::TestWithParam<Case> {};

// The HF-order output is within one ulp of the output computed with a float64
// factor for 16-bit outputs (the factor's float32 error can move a rounding
// boundary by at most one place); for f32 outputs the float32 factor's own
// few-ulp error shows through, bounded here by 4 ulps.
TEST_P(RmsNormPropertyTest, HfOrderMatchesFloat64ModelWithinOneUlp) {
  const Case c = GetParam();
  const int64_t rows = 5;
  std::mt19937 rng(
      static_cast<unsigned>(c.cols * 31 + static_cast<int>(c.x_dtype)));
  Buffer x(c.x_dtype, rows * c.cols), w(c.w_dtype, c.cols),
      out(c.x_dtype, rows * c.cols);
  FillRandom(x, rows * c.cols, rng, 2.0f);
  FillRandom(w, c.cols, rng, 0.3f, 1.0f);
  out.Poison();
  RmsNormParams p;
  p.x = x.data();
  p.weight = w.data();
  p.out = out.data();
  p.rows = rows;
  p.cols = p.x_stride = p.out_stride = c.cols;
  p.x_dtype = p.out_dtype = c.x_dtype;
  p.weight_dtype = c.w_dtype;
  ASSERT_TRUE(ValidateRmsNormParams(p).ok());
  RmsNormCpu(p);
  for (int64_t i = 0; i < rows; ++i) {
    double sumsq = 0;
    for (int64_t j = 0; j < c.cols; ++j)
      sumsq += double(x.Get(i * c.cols + j)) * x.Get(i * c.cols + j);
    const double r = 1.0 / std::sqrt(sumsq / c.cols + 1e-6);
    for (int64_t j = 0; j < c.cols; ++j) {
      const float normed =
          RoundTo(c.x_dtype, static_cast<float>(x.Get(i * c.cols + j) * r));
      const float want = RoundTo(c.x_dtype, w.Get(j) * normed);
      const float got = out.Get(i * c.cols + j);
      ASSERT_FALSE(std::isnan(got)) << "unwritten element " << i << "," << j;
      ASSERT_LE(UlpDistance(c.x_dtype, got, want),
                c.x_dtype == DType::kF32 ? 4 : 1)
          << i << "," << j;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, RmsNormPropertyTest,
    ::testing::Values(Case{DType::kBF16, DType::kBF16, 1},
                      Case{DType::kBF16, DType::kBF16, 7},
                      Case{DType::kBF16, DType::kBF16, 1000},
                      Case{DType::kBF16, DType::kBF16, 2304},
                      Case{DType::kF16, DType::kF16, 33},
                      Case{DType::kF16, DType::kF16, 4096},
                      Case{DType::kF32, DType::kF32, 129},
                      Case{DType::kF32, DType::kF32, 3584}));

RmsNormParams Contiguous(Buffer& x, Buffer& w, Buffer& out, int64_t rows,
                         int64_t cols) {
  RmsNormParams p;
  p.x = x.data();
  p.weight = w.data();
  p.out = out.data();
  p.rows = rows;
  p.cols = p.x_stride = p.out_stride = cols;
  p.x_dtype = x.dtype();
  p.weight_dtype = w.dtype();
  p.out_dtype = out.dtype();
  return p;
}

// A gated norm in place on the left half of a fused buffer whose right half
// is the gate (and one writing the right half from the left): the same
// outputs as on separate buffers, and the other half untouched. Every CPU
// path (the vector paths' tails are masked: no byte past a row is written).
TEST(RmsNormTest, ColumnSlicesOfOneBufferComputeAsSeparateBuffers) {
  const int64_t rows = 5;
  for (int64_t cols : {8, 61, 4096}) {
    SCOPED_TRACE(cols);
    std::mt19937 rng(static_cast<unsigned>(cols));
    std::normal_distribution<float> normal;
    Buffer fused(DType::kBF16, rows * 2 * cols), w(DType::kBF16, cols);
    for (int64_t i = 0; i < rows * 2 * cols; ++i) fused.Set(i, normal(rng));
    for (int64_t j = 0; j < cols; ++j) w.Set(j, 1.0f + 0.1f * normal(rng));
    Buffer x(DType::kBF16, rows * cols), gate(DType::kBF16, rows * cols),
        out(DType::kBF16, rows * cols);
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j) {
        x.Set(i * cols + j, fused.Get(i * 2 * cols + j));
        gate.Set(i * cols + j, fused.Get(i * 2 * cols + cols + j));
      }
    }
    RmsNormParams separate = Contiguous(x, w, out, rows, cols);
    separate.gate = gate.data();
    separate.gate_stride = cols;
    separate.order = RoundingOrder::kHuggingFace;
    RmsNormCpu(separate);
    RmsNormParams in_place = separate;
    in_place.x = in_place.out = fused.data();
    in_place.gate = static_cast<char*>(fused.data()) + 2 * cols;
    in_place.x_stride = in_place.out_stride = in_place.gate_stride = 2 * cols;
    ASSERT_TRUE(ValidateRmsNormParams(in_place).ok())
        << ValidateRmsNormParams(in_place);
    RmsNormCpu(in_place);
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j) {
        ASSERT_EQ(fused.Get(i * 2 * cols + j), out.Get(i * cols + j))
            << i << ", " << j;
        ASSERT_EQ(fused.Get(i * 2 * cols + cols + j), gate.Get(i * cols + j));
      }
    }
  }
}

TEST(RmsNormTest, ResidualIsWrittenBackAsRoundedSum) {
  const int64_t rows = 3, cols = 77;
  std::mt19937 rng(3);
  Buffer x(DType::kBF16, rows * cols), res(DType::kBF16, rows * cols),
      w(DType::kBF16, cols), out(DType::kBF16, rows * cols),
      before(DType::kBF16, rows * cols);
  FillRandom(x, rows * cols, rng, 1.0f);
  FillRandom(res, rows * cols, rng, 4.0f);
  FillRandom(w, cols, rng, 0.2f, 1.0f);
  std::memcpy(before.data(), res.data(), rows * cols * 2);
  RmsNormParams p = Contiguous(x, w, out, rows, cols);
  p.residual = res.data();
  p.residual_stride = cols;
  RmsNormCpu(p);
  for (int64_t i = 0; i < rows * cols; ++i) {
    ASSERT_EQ(res.Get(i), RoundTo(DType::kBF16, x.Get(i) + before.Get(i))) << i;
  }
  // The fused form equals the plain norm of the written-back residual (HF
  // order).
  Buffer out2(DType::kBF16, rows * cols);
  RmsNormParams plain = Contiguous(res, w, out2, rows, cols);
  RmsNormCpu(plain);
  EXPECT_EQ(std::memcmp(out.data(), out2.data(), rows * cols * 2), 0);
}

TEST(RmsNormTest, StridedRowsMatchContiguousRows) {
  const int64_t rows = 4, cols = 45, stride = 64;
  std::mt19937 rng(5);
  Buffer xs(DType::kF16, rows * stride), x(DType::kF16, rows * cols),
      w(DType::kF16, cols), outs(DType::kF16, rows * stride),
      out(DType::kF16, rows * cols);
  FillRandom(xs, rows * stride, rng, 3.0f);
  FillRandom(w, cols, rng, 0.5f, 1.0f);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      x.Set(i * cols + j, xs.Get(i * stride + j));
  outs.Poison();
  RmsNormParams ps = Contiguous(xs, w, outs, rows, cols);
  ps.x_stride = ps.out_stride = stride;
  RmsNormCpu(ps);
  RmsNormCpu(Contiguous(x, w, out, rows, cols));
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < stride; ++j) {
      if (j < cols) {
        ASSERT_EQ(FloatBits(outs.Get(i * stride + j)),
                  FloatBits(out.Get(i * cols + j)));
      } else {
        ASSERT_TRUE(std::isnan(outs.Get(i * stride + j)))
            << "wrote past the row";
      }
    }
  }
}

TEST(RmsNormTest, ScaleFormMultipliesByOnePlusWeightInFloat32) {
  const int64_t cols = 19;
  Buffer x(DType::kBF16, cols), scale(DType::kF32, cols),
      out(DType::kBF16, cols);
  std::mt19937 rng(9);
  FillRandom(x, cols, rng, 1.0f);
  FillRandom(scale, cols, rng, 0.1f, 1.0f);
  RmsNormParams p = Contiguous(x, scale, out, 1, cols);
  p.weight_kind = NormWeight::kScale;
  RmsNormCpu(p);
  std::vector<float> v(cols);
  for (int64_t j = 0; j < cols; ++j) v[j] = x.Get(j);
  const float r = InvRms(v.data(), cols, p.eps);
  for (int64_t j = 0; j < cols; ++j) {
    ASSERT_EQ(out.Get(j), RoundTo(DType::kBF16, (x.Get(j) * r) * scale.Get(j)))
        << j;
  }
}

TEST(RmsNormTest, ZeroRowGivesZeros) {
  Buffer x(DType::kBF16, 8), w(DType::kBF16, 8), out(DType::kBF16, 8);
  for (int j = 0; j < 8; ++j) {
    x.Set(j, 0.0f);
    w.Set(j, 1.5f);
  }
  out.Poison();
  RmsNormCpu(Contiguous(x, w, out, 1, 8));
  for (int j = 0; j < 8; ++j) EXPECT_EQ(out.Get(j), 0.0f);
}

TEST(RmsNormTest, EngineOrderDiffersFromHfOrderOnBf16) {
  const int64_t rows = 64, cols = 512;
  std::mt19937 rng(13);
  Buffer x(DType::kBF16, rows * cols), w(DType::kBF16, cols),
      hf(DType::kBF16, rows * cols), engine(DType::kBF16, rows * cols);
  FillRandom(x, rows * cols, rng, 1.0f);
  FillRandom(w, cols, rng, 0.3f, 1.0f);
  RmsNormCpu(Contiguous(x, w, hf, rows, cols));
  RmsNormParams pe = Contiguous(x, w, engine, rows, cols);
  pe.order = RoundingOrder::kEngine;
  RmsNormCpu(pe);
  int64_t differ = 0;
  for (int64_t i = 0; i < rows * cols; ++i) {
    ASSERT_LE(UlpDistance(DType::kBF16, hf.Get(i), engine.Get(i)), 1);
    differ += hf.Get(i) != engine.Get(i);
  }
  // docs/numerics.md: the two orders move 18% to 35% of bf16 outputs by an ulp.
  EXPECT_GT(differ, rows * cols / 10);
}

TEST(RmsNormTest, DeterministicAcrossRuns) {
  const int64_t rows = 16, cols = 2560;
  std::mt19937 rng(17);
  Buffer x(DType::kBF16, rows * cols), w(DType::kBF16, cols),
      a(DType::kBF16, rows * cols), b(DType::kBF16, rows * cols),
      gate(DType::kBF16, rows * cols);
  FillRandom(x, rows * cols, rng, 1.0f);
  FillRandom(gate, rows * cols, rng, 3.0f);
  FillRandom(w, cols, rng, 0.3f, 1.0f);
  RmsNormParams pa = Contiguous(x, w, a, rows, cols);
  pa.gate = gate.data();
  pa.gate_stride = cols;
  RmsNormParams pb = pa;
  pb.out = b.data();
  RmsNormCpu(pa);
  RmsNormCpu(pb);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), rows * cols * 2), 0);
}

TEST(RmsNormTest, ValidationRejectsBadParams) {
  Buffer x(DType::kBF16, 8), w(DType::kBF16, 8), out(DType::kBF16, 8);
  RmsNormParams p = Contiguous(x, w, out, 1, 8);
  EXPECT_TRUE(ValidateRmsNormParams(p).ok());
  RmsNormParams q = p;
  q.x_stride = 7;
  EXPECT_FALSE(ValidateRmsNormParams(q).ok());
  q = p;
  q.weight_kind = NormWeight::kScale;  // scale must be f32
  EXPECT_FALSE(ValidateRmsNormParams(q).ok());
  q = p;
  q.out_dtype = DType::kF16;  // neither the activation nor the promoted dtype
  EXPECT_FALSE(ValidateRmsNormParams(q).ok());
  q = p;
  q.cols = 0;
  EXPECT_FALSE(ValidateRmsNormParams(q).ok());
  q = p;
  q.eps = NAN;
  EXPECT_FALSE(ValidateRmsNormParams(q).ok());
  // Rows past 2^32 elements (the GPU's streaming sum holds 2^35), checked
  // before any pointer is looked at.
  q = p;
  q.cols = (int64_t{1} << 32) + 8;
  q.rows = 1;
  q.x_stride = q.out_stride = q.cols;
  EXPECT_NE(std::string(ValidateRmsNormParams(q).message()).find("too long"),
            std::string::npos);
}

// Written operands may alias another operand only element for element: that
// is safe for every backend's visiting order; anything else is refused.
TEST(RmsNormTest, ValidationAllowsInPlaceButNotPartialOverlap) {
  Buffer x(DType::kBF16, 64), w(DType::kBF16, 8), out(DType::kBF16, 64);
  RmsNormParams p = Contiguous(x, w, out, 8, 8);
  RmsNormParams in_place = p;
  in_place.out = x.data();
  EXPECT_TRUE(ValidateRmsNormParams(in_place).ok());
  RmsNormParams shifted = p;
  shifted.out = static_cast<char*>(x.data()) + 2;  // one element along
  absl::Status s = ValidateRmsNormParams(shifted);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("out partially overlaps x"), std::string::npos)
      << s;
  RmsNormParams over_weight = p;
  over_weight.out = w.data();
  over_weight.rows = 1;
  EXPECT_NE(ValidateRmsNormParams(over_weight)
                .message()
                .find("out overlaps the weight"),
            std::string::npos);
  RmsNormParams residual_is_x = p;
  residual_is_x.residual = x.data();  // x + x, written back in place: allowed
  residual_is_x.residual_stride = 8;
  EXPECT_TRUE(ValidateRmsNormParams(residual_is_x).ok());
  // The gate may not share memory with the residual, not even element for
  // element: the residual is written before the gate is read on the CPU and
  // after it on CUDA.
  Buffer residual(DType::kBF16, 64);
  RmsNormParams gated = p;
  gated.residual = residual.data();
  gated.residual_stride = 8;
  gated.gate = residual.data();
  gated.gate_stride = 8;
  s = ValidateRmsNormParams(gated);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("gate shares memory with the residual"),
            std::string::npos)
      << s;
  // Column slices of one buffer [rows, 2 x 8] share no byte, though their
  // spans interleave: x in the left half written in place, the gate (or the
  // output) in the right half. One element more of width and they would.
  Buffer fused(DType::kBF16, 128);
  RmsNormParams halves = p;
  halves.x = halves.out = fused.data();
  halves.x_stride = halves.out_stride = 16;
  halves.gate = static_cast<char*>(fused.data()) + 16;
  halves.gate_stride = 16;
  EXPECT_TRUE(ValidateRmsNormParams(halves).ok())
      << ValidateRmsNormParams(halves);
  RmsNormParams out_right = p;
  out_right.x = fused.data();
  out_right.out = static_cast<char*>(fused.data()) + 16;
  out_right.x_stride = out_right.out_stride = 16;
  EXPECT_TRUE(ValidateRmsNormParams(out_right).ok());
  RmsNormParams one_more = halves;
  one_more.gate = static_cast<char*>(fused.data()) + 14;  // column 7 too
  EXPECT_NE(ValidateRmsNormParams(one_more).message().find(
                "out partially overlaps gate"),
            std::string::npos);
  RmsNormParams next_row = out_right;  // row r's output over row r + 1's x
  next_row.out = static_cast<char*>(fused.data()) + 32;
  next_row.rows = 3;
  EXPECT_FALSE(ValidateRmsNormParams(next_row).ok());
  // One row in place: its strides are never used, so they need not agree.
  RmsNormParams one_row = in_place;
  one_row.rows = 1;
  one_row.out_stride = 16;
  EXPECT_TRUE(ValidateRmsNormParams(one_row).ok());
  one_row.rows = 2;
  EXPECT_FALSE(ValidateRmsNormParams(one_row).ok());
  // No rows: nothing is read, whatever the sizes say (and the CPU kernel
  // sizes nothing from them).
  RmsNormParams none = p;
  none.rows = 0;
  none.cols = none.x_stride = none.out_stride = int64_t{1} << 40;
  ASSERT_TRUE(ValidateRmsNormParams(none).ok());
  RmsNormCpu(none);
  none.cols = none.x_stride = none.out_stride = int64_t{1} << 60;
  EXPECT_FALSE(ValidateRmsNormParams(none).ok());
  CopyParams c{x.data(), static_cast<char*>(x.data()) + 4, 16};
  EXPECT_FALSE(ValidateCopyParams(c).ok());
  c.dst = const_cast<void*>(c.src);
  EXPECT_TRUE(ValidateCopyParams(c).ok());
}

// inf + -inf in the residual add is a NaN whose sign differs between x86 and
// CUDA; what is written back is the one canonical NaN on every backend.
TEST(RmsNormTest, ResidualNanIsCanonical) {
  Buffer x(DType::kF16, 4), res(DType::kF16, 4), w(DType::kF16, 4),
      out(DType::kF16, 4);
  for (int j = 0; j < 4; ++j) {
    x.Set(j, j == 1 ? INFINITY : 1.0f);
    res.Set(j, j == 1 ? -INFINITY : 2.0f);
    w.Set(j, 1.0f);
  }
  RmsNormParams p = Contiguous(x, w, out, 1, 4);
  p.residual = res.data();
  p.residual_stride = 4;
  RmsNormCpu(p);
  uint16_t bits;
  std::memcpy(&bits, static_cast<char*>(res.data()) + 2, 2);
  EXPECT_EQ(bits, 0x7E00);
  for (int j = 0; j < 4; ++j) {
    std::memcpy(&bits, static_cast<char*>(out.data()) + 2 * j, 2);
    EXPECT_EQ(bits, 0x7E00) << "a NaN in the row makes every output NaN";
  }
}

// In place (out == x) gives the same bits as out of place.
TEST(RmsNormTest, InPlaceEqualsOutOfPlace) {
  const int64_t rows = 5, cols = 300;
  std::mt19937 rng(23);
  Buffer x(DType::kBF16, rows * cols), w(DType::kBF16, cols),
      out(DType::kBF16, rows * cols);
  FillRandom(x, rows * cols, rng, 2.0f);
  FillRandom(w, cols, rng, 0.3f, 1.0f);
  RmsNormCpu(Contiguous(x, w, out, rows, cols));
  RmsNormParams p = Contiguous(x, w, out, rows, cols);
  p.out = x.data();
  RmsNormCpu(p);
  EXPECT_EQ(std::memcmp(x.data(), out.data(), rows * cols * 2), 0);
}

// --- Every vectorized path against the scalar definition, bit for bit -------

// Raw bits of one 16-bit value of a family: 0 normal, 1 wide dynamic range
// (blocks whose sums are not provably exact), 2 raw bit patterns (subnormals,
// infinities, NaNs), 3 tiny (bf16 squares below float32's range), 4 huge (bf16
// squares past it), 5 mostly zeros.
uint16_t RawValue(std::mt19937& rng, DType dtype, int family) {
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int> bits(0, 0xFFFF);
  const auto encode = [dtype](float f) {
    return dtype == DType::kBF16 ? FloatToBf16Bits(f) : FloatToF16Bits(f);
  };
  switch (family) {
    case 0:
      return encode(normal(rng));
    case 1:
      return encode(std::ldexp(normal(rng), bits(rng) % 40 - 24));
    case 2:
      return static_cast<uint16_t>(bits(rng));
    case 3:
      return encode(std::ldexp(normal(rng), -60 - bits(rng) % 70));
    case 4:
      return encode(std::ldexp(normal(rng), bits(rng) % 8 == 0 ? 70 : 0));
    default:
      return bits(rng) % 16 == 0 ? encode(normal(rng)) : 0;
  }
}

struct PathCase {
  DType dtype;
  bool residual;
  bool hf;
  bool scale;
  bool gated;
};

std::string PathCaseName(const PathCase& c) {
  return std::string(DTypeName(c.dtype)) + (c.residual ? " residual" : "") +
         (c.hf ? " hf" : " engine") + (c.scale ? " scale" : "") +
         (c.gated ? " gated" : "");
}

enum class Alias { kNone, kOutIsX, kResidualIsX };

// Runs `path` and the scalar definition on the same random rows (unaligned,
// strided, each run on its own copies of every buffer, aliased alike) and
// compares every buffer bit for bit. Returns false if the path does not run
// here.
bool PathMatchesScalar(CpuPath path, const PathCase& c, int64_t rows,
                       int64_t cols, int family, unsigned seed,
                       Alias alias = Alias::kNone) {
  std::mt19937 rng(seed);
  const int64_t stride = cols + seed % 3;
  const int64_t n = rows * stride;
  // One byte of offset: 16-bit elements at odd addresses.
  auto raw = [&](int64_t count, int fam) {
    std::vector<uint8_t> b(2 * count + 1);
    for (int64_t i = 0; i < count; ++i) {
      const uint16_t v = RawValue(rng, c.dtype, fam);
      std::memcpy(b.data() + 1 + 2 * i, &v, 2);
    }
    return b;
  };
  std::vector<uint8_t> x = raw(n, family), gate = raw(n, family),
                       res = raw(n, family), w = raw(cols, family == 2 ? 2 : 0);
  std::vector<uint8_t> scale(4 * cols + 1);
  for (int64_t j = 0; j < cols; ++j) {
    const float f = 1.0f + 0.1f * std::normal_distribution<float>()(rng);
    std::memcpy(scale.data() + 1 + 4 * j, &f, 4);
  }
  struct Run {
    std::vector<uint8_t> x, res, out;
  };
  Run a{x, res, std::vector<uint8_t>(2 * n + 1, 0xAB)}, b = a;
  RmsNormParams p;
  p.weight = c.scale ? scale.data() + 1 : w.data() + 1;
  p.gate = c.gated ? gate.data() + 1 : nullptr;
  p.rows = rows;
  p.cols = cols;
  p.x_stride = p.out_stride = p.gate_stride = p.residual_stride = stride;
  p.x_dtype = p.out_dtype = c.dtype;
  p.weight_dtype = c.scale ? DType::kF32 : c.dtype;
  p.weight_kind = c.scale ? NormWeight::kScale : NormWeight::kMultiply;
  p.order = c.hf ? RoundingOrder::kHuggingFace : RoundingOrder::kEngine;
  const auto params = [&](Run& r) {
    RmsNormParams q = p;
    q.x = r.x.data() + 1;
    q.out = alias == Alias::kOutIsX ? r.x.data() + 1 : r.out.data() + 1;
    q.residual = !c.residual                    ? nullptr
                 : alias == Alias::kResidualIsX ? r.x.data() + 1
                                                : r.res.data() + 1;
    return q;
  };
  const RmsNormParams pa = params(a);
  const absl::Status valid = ValidateRmsNormParams(pa);
  EXPECT_TRUE(valid.ok()) << valid;
  if (!RmsNormCpuOnPath(path, pa)) return false;
  RmsNormCpuScalar(params(b));
  for (const auto& [name, got, want] :
       {std::tuple("x", &a.x, &b.x), std::tuple("residual", &a.res, &b.res),
        std::tuple("output", &a.out, &b.out)}) {
    for (int64_t i = 0; i < 2 * n + 1; ++i) {
      if ((*got)[i] != (*want)[i]) {
        ADD_FAILURE() << PathCaseName(c) << ", " << rows << " x " << cols
                      << ", family " << family << ", seed " << seed
                      << ", alias " << static_cast<int>(alias) << ": " << name
                      << " byte " << i - 1 << " (element "
                      << (i - 1) / 2 % stride << " of row "
                      << (i - 1) / 2 / stride << ")";
        return true;
      }
    }
  }
  return true;
}

std::vector<PathCase> AllPathCases() {
  std::vector<PathCase> cases;
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    for (bool residual : {false, true}) {
      for (bool hf : {true, false}) {
        for (int weight = 0; weight < 3; ++weight) {  // multiply, scale, gated
          cases.push_back({dtype, residual, hf, weight == 1, weight == 2});
        }
      }
    }
  }
  return cases;
}

class CpuPathTest : public ::testing::TestWithParam<CpuPath> {};

TEST_P(CpuPathTest, MatchesScalarBitForBit) {
  const CpuPath path = GetParam();
  int ran = 0;
  unsigned seed = 1;
  for (const PathCase& c : AllPathCases()) {
    for (int64_t cols :
         {1, 7, 8, 15, 16, 17, 63, 64, 65, 100, 511, 512, 513, 1000, 4096}) {
      for (int family = 0; family < 6; ++family) {
        ran += PathMatchesScalar(path, c, cols < 512 ? 3 : 2, cols, family,
                                 seed++);
      }
    }
  }
  if (ran == 0) GTEST_SKIP() << "this CPU does not have the path";
}

// Long rows of one family each, many seeds: the blocks that are and are not
// exactly summable, in every position.
TEST_P(CpuPathTest, MatchesScalarOnManyRows) {
  const CpuPath path = GetParam();
  int ran = 0;
  for (unsigned seed = 0; seed < 40; ++seed) {
    const std::vector<PathCase> cases = AllPathCases();
    const PathCase& c = cases[seed % cases.size()];
    ran +=
        PathMatchesScalar(path, c, 4, 2048 + 37 * seed, seed % 6, 1000 + seed);
  }
  if (ran == 0) GTEST_SKIP() << "this CPU does not have the path";
}

// In place: out == x, and (with a residual) residual == x.
TEST_P(CpuPathTest, MatchesScalarInPlace) {
  const CpuPath path = GetParam();
  int ran = 0;
  unsigned seed = 5000;
  for (const PathCase& c : AllPathCases()) {
    for (const Alias alias : {Alias::kOutIsX, Alias::kResidualIsX}) {
      if (alias == Alias::kResidualIsX && !c.residual) continue;
      for (int64_t cols : {17, 64, 100, 513}) {
        for (int family : {0, 2}) {
          ran += PathMatchesScalar(path, c, 3, cols, family, seed++, alias);
        }
      }
    }
  }
  if (ran == 0) GTEST_SKIP() << "this CPU does not have the path";
}

INSTANTIATE_TEST_SUITE_P(Paths, CpuPathTest,
                         ::testing::Values(CpuPath::kAvx512, CpuPath::kAvx2),
                         [](const ::testing::TestParamInfo<CpuPath>& info) {
                           return info.param == CpuPath::kAvx512 ? "Avx512"
                                                                 : "Avx2";
                         });

}  // namespace
}  // namespace normgraph
