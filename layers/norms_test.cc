// The norm modules, on every backend (core/testing/backends.h): each test runs
// on the CPU and, in the `_cuda` build, on cuda:0 with the module's weights,
// inputs and outputs in device memory. Device results are read back through
// ToHost / ToFloats / BitwiseEqual, and wherever a forward pass runs on the
// device its output must equal the CPU reference kernel's bit for bit.

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/cpu_stream.h"
#include "core/tensor.h"
#include "core/tensor_util.h"
#include "core/testing/backends.h"
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

// A new tensor from `allocator` (any device) holding a golden tensor, viewed
// with `shape`.
Tensor FromEntry(const TensorEntry& e, Shape shape, Allocator& allocator) {
  Tensor t = *Tensor::Empty(allocator, shape, *e.dtype);
  HostView v = e.view();
  v.shape = shape;
  EXPECT_TRUE(CopyInto(v, t).ok());
  return t;
}

// Compares a module's output (on any device) with HF's: the module runs our
// own per-row factor, so (as in testdata/hf_golden) elements may differ by an
// ulp where torch's factor differs from ours.
void ExpectCloseToHf(const Tensor& device_out, const TensorEntry& hf,
                     const std::string& what) {
  absl::StatusOr<Tensor> host = ToHost(device_out);
  ASSERT_TRUE(host.ok()) << what << ": " << host.status();
  const Tensor& ours = *host;
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

// `ours` (any device) must hold exactly the bytes of `reference` (the CPU
// reference kernel's result); on a mismatch, names the first elements that
// differ.
void ExpectBitwiseEqualToCpu(const Tensor& ours, const Tensor& reference,
                             const std::string& what) {
  if (BitwiseEqual(ours, reference)) return;
  ASSERT_EQ(ours.dtype(), reference.dtype()) << what;
  ASSERT_EQ(ours.shape(), reference.shape()) << what;
  absl::StatusOr<Tensor> a = ToHost(ours);
  absl::StatusOr<Tensor> b = ToHost(reference);
  ASSERT_TRUE(a.ok() && b.ok()) << what << ": cannot read back";
  const size_t size = DTypeSize(a->dtype());
  int64_t differing = 0;
  std::string first;
  for (int64_t i = 0; i < a->numel(); ++i) {
    if (std::memcmp(static_cast<char*>(a->data()) + i * size,
                    static_cast<char*>(b->data()) + i * size, size) == 0) {
      continue;
    }
    if (++differing <= 5) {
      absl::StrAppend(&first, " [", i, "] ",
                      LoadAsFloat(a->data(), a->dtype(), i), " vs ",
                      LoadAsFloat(b->data(), b->dtype(), i), ";");
    }
  }
  ADD_FAILURE() << what << ": " << differing << " of " << a->numel()
                << " elements differ from the CPU reference:" << first;
}

class NormModulesGoldenTest : public BackendTest {
 protected:
  // Runs every module on the device under test against one golden file; the
  // same modules on the CPU (the reference kernel) must give the same bits.
  void ExpectModulesMatchHuggingFace(const std::string& golden);
};

void NormModulesGoldenTest::ExpectModulesMatchHuggingFace(
    const std::string& golden) {
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(
      absl::StrCat("testdata/hf_golden/", golden, ".safetensors"));
  ASSERT_TRUE(file.ok()) << file.status();
  CpuStream cpu_stream;  // runs the CPU reference
  for (int64_t hidden : {7, 128, 1536, 4096}) {
    auto get = [&](absl::string_view n) -> const TensorEntry& {
      return *file->Find(absl::StrCat("h", hidden, ".", n));
    };
    const TensorEntry& xe = get("x");
    const int64_t rows = xe.shape[0];
    const DType act = *xe.dtype, wdt = *get("w_rms").dtype;
    NormOptions options;
    options.weight_dtype = wdt;
    options.allocator = &allocator();
    NormOptions cpu_options = options;
    cpu_options.allocator = &CpuAllocator();
    Tensor x = FromEntry(xe, {rows, hidden}, allocator());
    Tensor gate = FromEntry(get("gate"), {rows, hidden}, allocator());
    Tensor cpu_x = FromEntry(xe, {rows, hidden}, CpuAllocator());
    Tensor cpu_gate = FromEntry(get("gate"), {rows, hidden}, CpuAllocator());
    auto cpu_empty = [&](DType dtype) {
      Tensor t = *Tensor::Empty(CpuAllocator(), {rows, hidden}, dtype);
      EXPECT_TRUE(Poison(t).ok());
      return t;
    };
    const std::string h = absl::StrCat("h", hidden);

    auto rms = *RmsNorm::Create("rms", hidden, options);
    auto cpu_rms = *RmsNorm::Create("rms", hidden, cpu_options);
    ASSERT_TRUE(rms->weight().Load(get("w_rms").view()).ok());
    ASSERT_TRUE(cpu_rms->weight().Load(get("w_rms").view()).ok());
    Tensor out = Empty({rows, hidden}, rms->OutputDType(act));
    ASSERT_TRUE(Poison(out).ok());
    ASSERT_TRUE(rms->Forward(stream(), x, out).ok());
    ExpectCloseToHf(out, get("out.rms"), absl::StrCat(h, " rms"));
    Tensor cpu_out = cpu_empty(cpu_rms->OutputDType(act));
    ASSERT_TRUE(cpu_rms->Forward(cpu_stream, cpu_x, cpu_out).ok());
    ExpectBitwiseEqualToCpu(out, cpu_out, absl::StrCat(h, " rms"));

    auto zc = *ZeroCenteredRmsNorm::Create("zc", hidden, options);
    auto cpu_zc = *ZeroCenteredRmsNorm::Create("zc", hidden, cpu_options);
    ASSERT_TRUE(zc->weight().Load(get("w_zc").view()).ok());
    ASSERT_TRUE(cpu_zc->weight().Load(get("w_zc").view()).ok());
    // The derived f32 1 + w is the same on every device.
    EXPECT_TRUE(BitwiseEqual(zc->gemma_weight().tensor(),
                             cpu_zc->gemma_weight().tensor()))
        << h;
    Tensor zc_out = Empty({rows, hidden}, act);
    ASSERT_TRUE(Poison(zc_out).ok());
    ASSERT_TRUE(zc->Forward(stream(), x, zc_out).ok());
    ExpectCloseToHf(zc_out, get("out.zc"), absl::StrCat(h, " zc"));
    Tensor cpu_zc_out = cpu_empty(act);
    ASSERT_TRUE(cpu_zc->Forward(cpu_stream, cpu_x, cpu_zc_out).ok());
    ExpectBitwiseEqualToCpu(zc_out, cpu_zc_out, absl::StrCat(h, " zc"));

    auto gated = *GatedRmsNorm::Create("gated", hidden, options);
    auto cpu_gated = *GatedRmsNorm::Create("gated", hidden, cpu_options);
    ASSERT_TRUE(gated->weight().Load(get("w_rms").view()).ok());
    ASSERT_TRUE(cpu_gated->weight().Load(get("w_rms").view()).ok());
    Tensor gated_out = Empty({rows, hidden}, act);
    ASSERT_TRUE(Poison(gated_out).ok());
    ASSERT_TRUE(gated->Forward(stream(), x, gate, gated_out).ok());
    ExpectCloseToHf(gated_out, get("out.gated"), absl::StrCat(h, " gated"));
    Tensor cpu_gated_out = cpu_empty(act);
    ASSERT_TRUE(
        cpu_gated->Forward(cpu_stream, cpu_x, cpu_gate, cpu_gated_out).ok());
    ExpectBitwiseEqualToCpu(gated_out, cpu_gated_out,
                            absl::StrCat(h, " gated"));

    // Fused residual add: the residual is updated in place to HF's x +
    // residual, bit for bit.
    Tensor residual = FromEntry(get("residual"), {rows, hidden}, allocator());
    Tensor fused_out = Empty({rows, hidden}, act);
    ASSERT_TRUE(Poison(fused_out).ok());
    ASSERT_TRUE(zc->ForwardAdd(stream(), x, residual, fused_out).ok());
    absl::StatusOr<Tensor> host_residual = ToHost(residual);
    ASSERT_TRUE(host_residual.ok()) << host_residual.status();
    ASSERT_EQ(static_cast<size_t>(host_residual->numel()) * DTypeSize(act),
              get("sum").bytes);
    EXPECT_EQ(
        std::memcmp(host_residual->data(), get("sum").data, get("sum").bytes),
        0);
    ExpectCloseToHf(fused_out, get("out.zc_sum"), absl::StrCat(h, " zc_sum"));
    Tensor cpu_residual =
        FromEntry(get("residual"), {rows, hidden}, CpuAllocator());
    Tensor cpu_fused_out = cpu_empty(act);
    ASSERT_TRUE(
        cpu_zc->ForwardAdd(cpu_stream, cpu_x, cpu_residual, cpu_fused_out)
            .ok());
    ExpectBitwiseEqualToCpu(residual, cpu_residual,
                            absl::StrCat(h, " zc_sum residual"));
    ExpectBitwiseEqualToCpu(fused_out, cpu_fused_out,
                            absl::StrCat(h, " zc_sum"));
  }
}

TEST_P(NormModulesGoldenTest, ModulesMatchHuggingFaceBf16WeightsBf16) {
  ExpectModulesMatchHuggingFace("golden_bf16_wbf16");
}

TEST_P(NormModulesGoldenTest, ModulesMatchHuggingFaceF16WeightsF16) {
  ExpectModulesMatchHuggingFace("golden_f16_wf16");
}

TEST_P(NormModulesGoldenTest, ModulesMatchHuggingFaceBf16WeightsF32) {
  ExpectModulesMatchHuggingFace("golden_bf16_wf32");
}

NG_INSTANTIATE_BACKEND_TEST(NormModulesGoldenTest);

class NormModulesTest : public BackendTest {
 protected:
  // Options whose weights live on the device under test.
  NormOptions Options() {
    NormOptions options;
    options.allocator = &allocator();
    return options;
  }
};

using ZeroCenteredRmsNormTest = NormModulesTest;

TEST_P(ZeroCenteredRmsNormTest, LoaderWritesWeightAndGemmaWeightInPlace) {
  auto m = *ZeroCenteredRmsNorm::Create("input_layernorm", 5, Options());
  // Both the weight and the derived buffer live on the device under test.
  EXPECT_EQ(m->weight().tensor().storage()->device(), device());
  EXPECT_EQ(m->gemma_weight().tensor().storage()->device(), device());
  // At init: weight zeros, gemma_weight ones, fresh.
  ASSERT_EQ(ToFloats(m->weight().tensor()).size(), 5u);
  for (float v : ToFloats(m->weight().tensor())) EXPECT_EQ(v, 0.0f);
  ASSERT_EQ(ToFloats(m->gemma_weight().tensor()).size(), 5u);
  for (float v : ToFloats(m->gemma_weight().tensor())) EXPECT_EQ(v, 1.0f);
  EXPECT_FALSE(m->gemma_weight().IsStale());
  const TensorIdentity weight_id = m->weight().tensor().Identity();
  const TensorIdentity gemma_id = m->gemma_weight().tensor().Identity();
  const uint64_t weight_version =
      m->weight().tensor().storage()->write_version();

  Tensor src = *Tensor::Empty(CpuAllocator(), {5}, DType::kF32);  // host
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
  ASSERT_EQ(w.size(), 5u);
  ASSERT_EQ(g.size(), 5u);
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
  // Refreshed in place, too.
  EXPECT_EQ(m->gemma_weight().tensor().Identity(), gemma_id);
}

// 1 + w is computed over the weight's elements in order: a weight rebound to
// a strided view (one column of a packed buffer) is refused, naming the
// module, and gemma_weight keeps its values and stays stale.
TEST_P(ZeroCenteredRmsNormTest, StridedWeightIsRefusedNotMisread) {
  auto m = *ZeroCenteredRmsNorm::Create("input_layernorm", 4, Options());
  const std::vector<float> before = ToFloats(m->gemma_weight().tensor());
  Tensor packed = FromFloats({4, 2}, DType::kBF16,
                             {0.5f, 100, 0.25f, 100, -0.5f, 100, 0.125f, 100});
  m->weight().slot().Rebind(*Tensor::FromStorage(
      packed.storage(), packed.offset_bytes(), {4}, {2}, DType::kBF16));
  EXPECT_TRUE(m->gemma_weight().IsStale());
  absl::Status s = m->gemma_weight().Refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("input_layernorm"));
  EXPECT_THAT(s.message(), HasSubstr("not contiguous"));
  EXPECT_EQ(ToFloats(m->gemma_weight().tensor()), before);
  EXPECT_TRUE(m->gemma_weight().IsStale());
}

// An offloaded weight (its slot bound to no tensor) or gemma_weight: the
// refresh says which has no tensor, leaves the buffer as it was, and stays
// stale (hidden 1 included, where the layout checks alone would pass).
TEST_P(ZeroCenteredRmsNormTest, UnboundWeightOrBufferIsAClearError) {
  for (int64_t hidden : {1, 4}) {
    SCOPED_TRACE(hidden);
    auto m = *ZeroCenteredRmsNorm::Create("input_layernorm", hidden, Options());
    const Tensor weight = m->weight().tensor();
    const std::vector<float> before = ToFloats(m->gemma_weight().tensor());
    m->weight().slot().Rebind(Tensor());
    EXPECT_TRUE(m->gemma_weight().IsStale());
    absl::Status s = m->gemma_weight().Refresh();
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_THAT(s.message(),
                HasSubstr("input_layernorm: weight has no tensor"));
    EXPECT_EQ(ToFloats(m->gemma_weight().tensor()), before);
    EXPECT_TRUE(m->gemma_weight().IsStale());

    m->weight().slot().Rebind(weight);
    const Tensor buffer = m->gemma_weight().tensor();
    m->gemma_weight().Rebind(Tensor());
    s = m->gemma_weight().Refresh();
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_THAT(s.message(), HasSubstr("gemma_weight has no tensor"));
    m->gemma_weight().Rebind(buffer);
    EXPECT_TRUE(m->gemma_weight().Refresh().ok());
    EXPECT_FALSE(m->gemma_weight().IsStale());
  }
}

NG_INSTANTIATE_BACKEND_TEST(ZeroCenteredRmsNormTest);

using LegacyZeroCenteredRmsNormTest = NormModulesTest;

TEST_P(LegacyZeroCenteredRmsNormTest, LoaderReallyMovesItsBuffer) {
  auto m = *LegacyZeroCenteredRmsNorm::Create("input_layernorm", 4, Options());
  const TensorIdentity before = m->gemma_weight().tensor().Identity();
  Tensor src = *Tensor::Empty(CpuAllocator(), {4}, DType::kBF16);  // host
  ASSERT_TRUE(Fill(src, 0.5f).ok());
  ASSERT_TRUE(m->weight().Load(ViewOf(src)).ok());
  const TensorIdentity after = m->gemma_weight().tensor().Identity();
  EXPECT_NE(after.storage_id, before.storage_id);
  EXPECT_NE(after.address, before.address);
  EXPECT_TRUE(StorageIsLive(before.storage_id))
      << "the old storage stays alive";
  // The new buffer comes from the module's allocator: the same device.
  EXPECT_EQ(m->gemma_weight().tensor().storage()->device(), device());
  EXPECT_EQ(m->gemma_weight().rebind_count(), 1);
  EXPECT_THAT(m->gemma_weight().last_rebind().file(),
              HasSubstr("legacy_zero_centered_rms_norm.cc"));
  // Its values are right; only the address moved (eager runs stay correct: that
  // is why the bug hid).
  const std::vector<float> g = ToFloats(m->gemma_weight().tensor());
  ASSERT_EQ(g.size(), 4u);
  for (float v : g) EXPECT_EQ(v, 1.5f);
  EXPECT_FALSE(m->gemma_weight().IsStale());
}

NG_INSTANTIATE_BACKEND_TEST(LegacyZeroCenteredRmsNormTest);

TEST_P(NormModulesTest, PerHeadNormEqualsNormOfFlattenedRows) {
  auto q_norm = *ZeroCenteredRmsNorm::Create("q_norm", 16, Options());
  Tensor w = *Tensor::Empty(CpuAllocator(), {16}, DType::kBF16);  // host
  ASSERT_TRUE(FillNormal(w, 3, 0.0f, 0.3f).ok());
  ASSERT_TRUE(q_norm->weight().Load(ViewOf(w)).ok());
  Tensor q = Random({3, 4, 16}, DType::kBF16, 4, 0.0f, 2.0f);
  Tensor per_head = Empty({3, 4, 16}, DType::kBF16);
  Tensor flat = Empty({12, 16}, DType::kBF16);
  ASSERT_TRUE(q_norm->Forward(stream(), q, per_head).ok());
  ASSERT_TRUE(q_norm->Forward(stream(), *q.Reshape({12, 16}), flat).ok());
  EXPECT_TRUE(BitwiseEqual(*per_head.Reshape({12, 16}), flat));
  // Each head is normalised on its own: scaling one head leaves the others'
  // outputs unchanged. (The edit is made on a host copy, then copied in.)
  Tensor q2_host = *ToHost(q);
  for (int j = 0; j < 16; ++j)
    StoreFromFloat(q2_host.data(), DType::kBF16, 16 + j, 100.0f);
  Tensor q2 = Empty({3, 4, 16}, DType::kBF16);
  ASSERT_TRUE(CopyInto(ViewOf(q2_host), q2).ok());
  Tensor per_head2 = Empty({3, 4, 16}, DType::kBF16);
  ASSERT_TRUE(q_norm->Forward(stream(), q2, per_head2).ok());
  const Tensor a = *ToHost(per_head), b = *ToHost(per_head2);
  EXPECT_EQ(std::memcmp(a.data(), b.data(), 32), 0);
  EXPECT_NE(std::memcmp(a.data(), b.data(), 64), 0);

  // The CPU reference kernel gives the same bits.
  auto cpu_norm = *ZeroCenteredRmsNorm::Create("q_norm", 16);
  ASSERT_TRUE(cpu_norm->weight().Load(ViewOf(w)).ok());
  CpuStream cpu_stream;
  Tensor cpu_q = *ToHost(q);
  Tensor cpu_out = *Tensor::Empty(CpuAllocator(), {3, 4, 16}, DType::kBF16);
  ASSERT_TRUE(cpu_norm->Forward(cpu_stream, cpu_q, cpu_out).ok());
  ExpectBitwiseEqualToCpu(per_head, cpu_out, "per head");
  ASSERT_TRUE(cpu_norm->Forward(cpu_stream, q2_host, cpu_out).ok());
  ExpectBitwiseEqualToCpu(per_head2, cpu_out, "per head, one head scaled");
}

TEST_P(NormModulesTest, ErrorsNameTheModuleAndTheTensor) {
  auto m = *RmsNorm::Create("post_attention_layernorm", 8, Options());
  Tensor x = Empty({2, 8}, DType::kBF16);
  Tensor bad_shape = Empty({2, 7}, DType::kBF16);
  Tensor bad_dtype = Empty({2, 8}, DType::kF16);
  absl::Status s = m->Forward(stream(), x, bad_shape);
  EXPECT_THAT(s.message(),
              HasSubstr("post_attention_layernorm: output has shape [2, 7]"));
  s = m->Forward(stream(), x, bad_dtype);
  EXPECT_THAT(
      s.message(),
      HasSubstr("post_attention_layernorm: output is f16, expected bf16"));
  s = m->Forward(stream(), bad_shape, x);
  EXPECT_THAT(
      s.message(),
      HasSubstr("input has shape [2, 7]; its last dimension must be 8"));
  Tensor f16_residual = Empty({2, 8}, DType::kF16);
  s = m->ForwardAdd(stream(), x, f16_residual, x);
  EXPECT_THAT(s.message(), HasSubstr("residual is f16, the input bf16"));
  EXPECT_FALSE(RmsNorm::Create("bad", 0, Options()).ok());
  // Columns of a wider tensor are not evenly strided rows of their own.
  Tensor wide = Empty({2, 3, 8}, DType::kBF16);
  Tensor cols = *wide.Narrow(1, 0, 2);
  Tensor out = Empty({2, 2, 8}, DType::kBF16);
  s = m->Forward(stream(), cols, out);
  EXPECT_THAT(s.message(),
              HasSubstr("does not collapse into evenly strided rows"));
  if (on_cuda()) {
    // Tensors of another device are refused by the launcher, which names both
    // devices: a host input to the device module, and the device module on a
    // CPU stream.
    Tensor host_x = *Tensor::Empty(CpuAllocator(), {2, 8}, DType::kBF16);
    ASSERT_TRUE(Fill(host_x, 1.0f).ok());
    s = m->Forward(stream(), host_x, x);
    EXPECT_THAT(s.message(), HasSubstr("post_attention_layernorm: "));
    EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("is on cpu, the stream on ",
                                                    device().ToString())));
    CpuStream cpu_stream;
    Tensor host_out = *Tensor::Empty(CpuAllocator(), {2, 8}, DType::kBF16);
    s = m->Forward(cpu_stream, host_x, host_out);
    EXPECT_THAT(s.message(),
                HasSubstr(absl::StrCat("is on ", device().ToString(),
                                       ", the stream on cpu")));
    EXPECT_EQ(cpu_stream.eager_launches(), 0);
  }
  // A weight rebound to a strided view would be read wrongly by the kernel:
  // refused.
  Tensor wide_w = Empty({8, 2}, DType::kBF16);
  m->weight().slot().Rebind(*wide_w.Narrow(1, 0, 1));  // [8, 1], strides [2, 1]
  s = m->Forward(stream(), x, x);
  EXPECT_THAT(s.message(),
              HasSubstr("the weight must be a non-empty contiguous tensor"));
  // None of the refused calls launched anything.
  EXPECT_EQ(stream().eager_launches(), 0);
}

// Leading dimensions collapse into rows; one of size 1 adds none, so its
// stride is never used.
TEST_P(NormModulesTest, SizeOneDimensionsAddNoRows) {
  auto m = *RmsNorm::Create("post_attention_layernorm", 8, Options());
  // A dimension of size 1 adds no rows, whatever its stride: one column of a
  // [2, 3, 8] tensor, [2, 1, 8] with strides [24, 8, 1], is 2 rows 24 apart,
  // normed like the same rows copied out.
  Tensor wide_x = Random({2, 3, 8}, DType::kBF16, 21);
  Tensor column = *wide_x.Narrow(1, 1, 1);
  Tensor column_out = Empty({2, 1, 8}, DType::kBF16);
  ASSERT_TRUE(m->Forward(stream(), column, column_out).ok());
  const std::vector<float> all = ToFloats(wide_x);  // [2, 3, 8]
  std::vector<float> rows(all.begin() + 8, all.begin() + 16);
  rows.insert(rows.end(), all.begin() + 32, all.begin() + 40);
  Tensor packed = FromFloats({2, 1, 8}, DType::kBF16, rows);
  Tensor packed_out = Empty({2, 1, 8}, DType::kBF16);
  ASSERT_TRUE(m->Forward(stream(), packed, packed_out).ok());
  EXPECT_TRUE(BitwiseEqual(column_out, packed_out));
}

TEST_P(NormModulesTest, EngineOrderRmsNormWritesTheActivationDtype) {
  NormOptions options = Options();
  options.weight_dtype = DType::kF32;
  auto hf = *RmsNorm::Create("n", 8, options);
  EXPECT_EQ(hf->OutputDType(DType::kBF16),
            DType::kF32);  // HF: f32 weight * bf16 -> f32
  options.order = RoundingOrder::kEngine;
  auto engine = *RmsNorm::Create("n", 8, options);
  EXPECT_EQ(engine->OutputDType(DType::kBF16), DType::kBF16);
  // And the kernels write exactly those dtypes, on every device.
  Tensor x = Random({3, 8}, DType::kBF16, 11);
  Tensor hf_out = Empty({3, 8}, DType::kF32);
  Tensor engine_out = Empty({3, 8}, DType::kBF16);
  ASSERT_TRUE(hf->Forward(stream(), x, hf_out).ok());
  ASSERT_TRUE(engine->Forward(stream(), x, engine_out).ok());
  EXPECT_FALSE(engine->Forward(stream(), x, hf_out).ok());
  CpuStream cpu_stream;
  NormOptions cpu_options = options;
  cpu_options.allocator = &CpuAllocator();
  auto cpu_engine = *RmsNorm::Create("n", 8, cpu_options);
  cpu_options.order = RoundingOrder::kHuggingFace;
  auto cpu_hf = *RmsNorm::Create("n", 8, cpu_options);
  Tensor cpu_x = *ToHost(x);
  Tensor cpu_hf_out = *Tensor::Empty(CpuAllocator(), {3, 8}, DType::kF32);
  Tensor cpu_engine_out = *Tensor::Empty(CpuAllocator(), {3, 8}, DType::kBF16);
  ASSERT_TRUE(cpu_hf->Forward(cpu_stream, cpu_x, cpu_hf_out).ok());
  ASSERT_TRUE(cpu_engine->Forward(cpu_stream, cpu_x, cpu_engine_out).ok());
  ExpectBitwiseEqualToCpu(hf_out, cpu_hf_out, "hf order");
  ExpectBitwiseEqualToCpu(engine_out, cpu_engine_out, "engine order");
}

NG_INSTANTIATE_BACKEND_TEST(NormModulesTest);

}  // namespace
}  // namespace normgraph
