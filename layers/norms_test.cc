#include <cmath>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "core/cpu_stream.h"
#include "core/tensor.h"
#include "core/tensor_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "layers/gated_rms_norm.h"
#include "layers/legacy_zero_centered_rms_norm.h"
#include "layers/rms_norm.h"
#include "layers/safetensors/reader.h"
#include "layers/zero_centered_rms_norm.h"

namespace normgraph {
namespace {

using safetensors::SafetensorsFile;
using safetensors::TensorEntry;
using ::testing::HasSubstr;

Tensor FromEntry(const TensorEntry& e, Shape shape) {
  Tensor t = *Tensor::Empty(CpuAllocator(), shape, *e.dtype);
  HostView v = e.view();
  v.shape = shape;
  EXPECT_TRUE(CopyInto(v, t).ok());
  return t;
}

// Compares a module's output with HF's: the module runs our own per-row factor,
// so (as in testdata/hf_golden) elements may differ by an ulp where torch's
// factor differs from ours.
void ExpectCloseToHf(const Tensor& ours, const TensorEntry& hf,
                     const std::string& what) {
  ASSERT_EQ(ours.dtype(), *hf.dtype) << what;
  ASSERT_EQ(static_cast<size_t>(ours.numel()) * DTypeSize(ours.dtype()),
            hf.bytes)
      << what;
  int64_t identical = 0;
  for (int64_t i = 0; i < ours.numel(); ++i) {
    const float a = LoadAsFloat(ours.data(), ours.dtype(), i);
    const float b = LoadAsFloat(hf.data, ours.dtype(), i);
    ASSERT_FALSE(std::isnan(a)) << what << " element " << i << " unwritten";
    identical += std::memcmp(static_cast<char*>(ours.data()) +
                                 i * DTypeSize(ours.dtype()),
                             hf.data + i * DTypeSize(ours.dtype()),
                             DTypeSize(ours.dtype())) == 0;
    ASSERT_LE(std::fabs(a - b), std::fabs(b) * 0x1.0p-6f + 1e-30f)
        << what << " element " << i;
  }
  EXPECT_GE(identical * 1000, ours.numel() * 999) << what;
}

class NormModulesGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(NormModulesGoldenTest, ModulesMatchHuggingFace) {
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(
      absl::StrCat("testdata/hf_golden/", GetParam(), ".safetensors"));
  ASSERT_TRUE(file.ok()) << file.status();
  CpuStream stream;
  for (int64_t hidden : {7, 128, 1536, 4096}) {
    auto get = [&](absl::string_view n) -> const TensorEntry& {
      return *file->Find(absl::StrCat("h", hidden, ".", n));
    };
    const TensorEntry& xe = get("x");
    const int64_t rows = xe.shape[0];
    const DType act = *xe.dtype, wdt = *get("w_rms").dtype;
    NormOptions options;
    options.weight_dtype = wdt;
    Tensor x = FromEntry(xe, {rows, hidden});
    Tensor gate = FromEntry(get("gate"), {rows, hidden});

    auto rms = *RmsNorm::Create("rms", hidden, options);
    ASSERT_TRUE(rms->weight().Load(get("w_rms").view()).ok());
    Tensor out =
        *Tensor::Empty(CpuAllocator(), {rows, hidden}, rms->OutputDType(act));
    ASSERT_TRUE(Poison(out).ok());
    ASSERT_TRUE(rms->Forward(stream, x, out).ok());
    ExpectCloseToHf(out, get("out.rms"), absl::StrCat("h", hidden, " rms"));

    auto zc = *ZeroCenteredRmsNorm::Create("zc", hidden, options);
    ASSERT_TRUE(zc->weight().Load(get("w_zc").view()).ok());
    Tensor zc_out = *Tensor::Empty(CpuAllocator(), {rows, hidden}, act);
    ASSERT_TRUE(zc->Forward(stream, x, zc_out).ok());
    ExpectCloseToHf(zc_out, get("out.zc"), absl::StrCat("h", hidden, " zc"));

    auto gated = *GatedRmsNorm::Create("gated", hidden, options);
    ASSERT_TRUE(gated->weight().Load(get("w_rms").view()).ok());
    Tensor gated_out = *Tensor::Empty(CpuAllocator(), {rows, hidden}, act);
    ASSERT_TRUE(gated->Forward(stream, x, gate, gated_out).ok());
    ExpectCloseToHf(gated_out, get("out.gated"),
                    absl::StrCat("h", hidden, " gated"));

    // Fused residual add: the residual is updated in place to HF's x +
    // residual, bit for bit.
    Tensor residual = FromEntry(get("residual"), {rows, hidden});
    Tensor fused_out = *Tensor::Empty(CpuAllocator(), {rows, hidden}, act);
    ASSERT_TRUE(zc->ForwardAdd(stream, x, residual, fused_out).ok());
    EXPECT_EQ(std::memcmp(residual.data(), get("sum").data, get("sum").bytes),
              0);
    ExpectCloseToHf(fused_out, get("out.zc_sum"),
                    absl::StrCat("h", hidden, " zc_sum"));
  }
}

INSTANTIATE_TEST_SUITE_P(Files, NormModulesGoldenTest,
                         ::testing::Values("golden_bf16_wbf16",
                                           "golden_f16_wf16",
                                           "golden_bf16_wf32"));

TEST(ZeroCenteredRmsNormTest, LoaderWritesWeightAndGemmaWeightInPlace) {
  auto m = *ZeroCenteredRmsNorm::Create("input_layernorm", 5);
  // At init: weight zeros, gemma_weight ones, fresh.
  for (float v : ToFloats(m->gemma_weight().tensor())) EXPECT_EQ(v, 1.0f);
  EXPECT_FALSE(m->gemma_weight().IsStale());
  const TensorIdentity weight_id = m->weight().tensor().Identity();
  const TensorIdentity gemma_id = m->gemma_weight().tensor().Identity();
  const uint64_t weight_version =
      m->weight().tensor().storage()->write_version();

  Tensor src = *Tensor::Empty(CpuAllocator(), {5}, DType::kF32);
  const float values[5] = {0.5f, -0.25f, 3.0f, 1e-3f, -1.0f};
  std::memcpy(src.data(), values, sizeof values);
  ASSERT_TRUE(m->weight().Load(ViewOf(src)).ok());

  EXPECT_EQ(m->weight().tensor().Identity(), weight_id)
      << "weight must be written in place";
  EXPECT_EQ(m->gemma_weight().tensor().Identity(), gemma_id)
      << "gemma_weight must stay put";
  EXPECT_GT(m->weight().tensor().storage()->write_version(), weight_version);
  EXPECT_EQ(m->gemma_weight().rebind_count(), 0);
  EXPECT_FALSE(m->gemma_weight().IsStale());
  const std::vector<float> w = ToFloats(m->weight().tensor());
  const std::vector<float> g = ToFloats(m->gemma_weight().tensor());
  for (int j = 0; j < 5; ++j) {
    EXPECT_EQ(w[j], RoundTo(DType::kBF16, values[j]));  // the parameter is bf16
    EXPECT_EQ(g[j], 1.0f + w[j]) << "1 + w is kept in float32";
  }
  // 1 + w in f32 is not the same as rounding it to bf16: 1 + 1e-3 is not a bf16
  // value.
  EXPECT_NE(g[3], RoundTo(DType::kBF16, g[3]));

  // A write to the weight that bypasses the loader leaves gemma_weight stale.
  ASSERT_TRUE(Fill(m->weight().tensor(), 2.0f).ok());
  EXPECT_TRUE(m->gemma_weight().IsStale());
  ASSERT_TRUE(m->gemma_weight().Refresh().ok());
  EXPECT_FALSE(m->gemma_weight().IsStale());
  EXPECT_EQ(ToFloats(m->gemma_weight().tensor())[0], 3.0f);
}

TEST(LegacyZeroCenteredRmsNormTest, LoaderReallyMovesItsBuffer) {
  auto m = *LegacyZeroCenteredRmsNorm::Create("input_layernorm", 4);
  const TensorIdentity before = m->gemma_weight().tensor().Identity();
  Tensor src = *Tensor::Empty(CpuAllocator(), {4}, DType::kBF16);
  ASSERT_TRUE(Fill(src, 0.5f).ok());
  ASSERT_TRUE(m->weight().Load(ViewOf(src)).ok());
  const TensorIdentity after = m->gemma_weight().tensor().Identity();
  EXPECT_NE(after.storage_id, before.storage_id);
  EXPECT_NE(after.address, before.address);
  EXPECT_TRUE(StorageIsLive(before.storage_id))
      << "the old storage stays alive";
  EXPECT_EQ(m->gemma_weight().rebind_count(), 1);
  EXPECT_THAT(m->gemma_weight().last_rebind().file(),
              HasSubstr("legacy_zero_centered_rms_norm.cc"));
  // Its values are right; only the address moved (eager runs stay correct: that
  // is why the bug hid).
  for (float v : ToFloats(m->gemma_weight().tensor())) EXPECT_EQ(v, 1.5f);
  EXPECT_FALSE(m->gemma_weight().IsStale());
}

TEST(NormModulesTest, PerHeadNormEqualsNormOfFlattenedRows) {
  CpuStream stream;
  auto q_norm = *ZeroCenteredRmsNorm::Create("q_norm", 16);
  Tensor w = *Tensor::Empty(CpuAllocator(), {16}, DType::kBF16);
  ASSERT_TRUE(FillNormal(w, 3, 0.0f, 0.3f).ok());
  ASSERT_TRUE(q_norm->weight().Load(ViewOf(w)).ok());
  Tensor q = *Tensor::Empty(CpuAllocator(), {3, 4, 16}, DType::kBF16);
  ASSERT_TRUE(FillNormal(q, 4, 0.0f, 2.0f).ok());
  Tensor per_head = *Tensor::Empty(CpuAllocator(), {3, 4, 16}, DType::kBF16);
  Tensor flat = *Tensor::Empty(CpuAllocator(), {12, 16}, DType::kBF16);
  ASSERT_TRUE(q_norm->Forward(stream, q, per_head).ok());
  ASSERT_TRUE(q_norm->Forward(stream, *q.Reshape({12, 16}), flat).ok());
  EXPECT_TRUE(BitwiseEqual(*per_head.Reshape({12, 16}), flat));
  // Each head is normalised on its own: scaling one head leaves the others'
  // outputs unchanged.
  Tensor q2 = *Clone(q);
  for (int j = 0; j < 16; ++j)
    StoreFromFloat(q2.data(), DType::kBF16, 16 + j, 100.0f);
  Tensor per_head2 = *Tensor::Empty(CpuAllocator(), {3, 4, 16}, DType::kBF16);
  ASSERT_TRUE(q_norm->Forward(stream, q2, per_head2).ok());
  EXPECT_EQ(std::memcmp(per_head.data(), per_head2.data(), 32), 0);
  EXPECT_NE(std::memcmp(per_head.data(), per_head2.data(), 64), 0);
}

TEST(NormModulesTest, ErrorsNameTheModuleAndTheTensor) {
  CpuStream stream;
  auto m = *RmsNorm::Create("post_attention_layernorm", 8);
  Tensor x = *Tensor::Empty(CpuAllocator(), {2, 8}, DType::kBF16);
  Tensor bad_shape = *Tensor::Empty(CpuAllocator(), {2, 7}, DType::kBF16);
  Tensor bad_dtype = *Tensor::Empty(CpuAllocator(), {2, 8}, DType::kF16);
  absl::Status s = m->Forward(stream, x, bad_shape);
  EXPECT_THAT(s.message(),
              HasSubstr("post_attention_layernorm: output has shape [2, 7]"));
  s = m->Forward(stream, x, bad_dtype);
  EXPECT_THAT(
      s.message(),
      HasSubstr("post_attention_layernorm: output is f16, expected bf16"));
  s = m->Forward(stream, bad_shape, x);
  EXPECT_THAT(
      s.message(),
      HasSubstr("input has shape [2, 7]; its last dimension must be 8"));
  Tensor f16_residual = *Tensor::Empty(CpuAllocator(), {2, 8}, DType::kF16);
  s = m->ForwardAdd(stream, x, f16_residual, x);
  EXPECT_THAT(s.message(), HasSubstr("residual is f16, the input bf16"));
  EXPECT_FALSE(RmsNorm::Create("bad", 0).ok());
  // Columns of a wider tensor are not evenly strided rows of their own.
  Tensor wide = *Tensor::Empty(CpuAllocator(), {2, 3, 8}, DType::kBF16);
  Tensor cols = *wide.Narrow(1, 0, 2);
  Tensor out = *Tensor::Empty(CpuAllocator(), {2, 2, 8}, DType::kBF16);
  s = m->Forward(stream, cols, out);
  EXPECT_THAT(s.message(),
              HasSubstr("does not collapse into evenly strided rows"));
  // A weight rebound to a strided view would be read wrongly by the kernel:
  // refused.
  Tensor wide_w = *Tensor::Empty(CpuAllocator(), {8, 2}, DType::kBF16);
  m->weight().slot().Rebind(*wide_w.Narrow(1, 0, 1));  // [8, 1], strides [2, 1]
  s = m->Forward(stream, x, x);
  EXPECT_THAT(s.message(),
              HasSubstr("the weight must be a non-empty contiguous tensor"));
}

TEST(NormModulesTest, EngineOrderRmsNormWritesTheActivationDtype) {
  NormOptions options;
  options.weight_dtype = DType::kF32;
  auto hf = *RmsNorm::Create("n", 8, options);
  EXPECT_EQ(hf->OutputDType(DType::kBF16),
            DType::kF32);  // HF: f32 weight * bf16 -> f32
  options.order = RoundingOrder::kEngine;
  auto engine = *RmsNorm::Create("n", 8, options);
  EXPECT_EQ(engine->OutputDType(DType::kBF16), DType::kBF16);
}

}  // namespace
}  // namespace normgraph
