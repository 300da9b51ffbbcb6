// The CUDA kernels against the CPU reference, bit for bit: a sweep over random
// shapes (hidden 1..16384 with odd and non-multiple-of-8 sizes, rows up to
// 4096, row strides, byte offsets that break every alignment), every variant
// (Llama order, zero-centred scale, gated, fused residual add, the gated norm
// with a residual, which the kernels take though no model uses it), both
// rounding orders, every activation / weight / output dtype combination,
// several eps (0 included) and operands in place (out over x, the residual
// or the gate; the residual or the gate over x); rows longer than 16384 (the
// streaming kernel). Also the copy kernel. Runs on a GPU host (tagged gpu).

#include "kernels/cuda/kernels_cuda.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "core/runtime.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "core/tensor_util.h"
#include "gtest/gtest.h"
#include "kernels/cpu/rms_norm.h"
#include "kernels/cuda/row_layout.h"
#include "kernels/kernels.h"
#include "kernels/rms_norm_params.h"

namespace normgraph {
namespace {

struct Case {
  DType x, w, out;
  NormWeight kind;
  RoundingOrder order;
  bool gated, residual;
  int64_t rows, cols;
  int64_t x_stride, out_stride, gate_stride, residual_stride;
  size_t x_off, w_off, out_off, gate_off, residual_off;  // byte offsets
  int family;                                            // input values
  float eps = 1e-6f;
  // Operands sharing memory element for element, as ValidateRmsNormParams
  // allows (in place): AliasOf's names.
  enum class Alias {
    kNone,
    kOutIsX,
    kResidualIsX,
    kOutIsResidual,
    kGateIsX,
    kOutIsGate
  };
  Alias alias = Alias::kNone;
  // The gate holds every 16-bit encoding in turn (scrambled), not `family`.
  bool every_gate_encoding = false;

  std::string ToString() const {
    return absl::StrFormat(
        "x %s w %s out %s %s %s%s%s rows %d cols %d strides x%d o%d g%d r%d "
        "offsets x%d w%d o%d g%d r%d family %d eps %g alias %d",
        DTypeName(x), DTypeName(w), DTypeName(out),
        kind == NormWeight::kScale ? "scale" : "multiply",
        order == RoundingOrder::kHuggingFace ? "hf" : "engine",
        gated ? " gated" : "", residual ? " residual" : "", rows, cols,
        x_stride, out_stride, gate_stride, residual_stride, x_off, w_off,
        out_off, gate_off, residual_off, family, eps, static_cast<int>(alias));
  }
};

// Parameters for planning only (PlanRmsNormCuda, DescribeRmsNormLaunch):
// rows x cols, HF order, every pointer a dummy the planner never follows.
RmsNormParams PlanningParams(int64_t rows, int64_t cols, bool gated,
                             DType x = DType::kBF16, DType w = DType::kBF16,
                             bool residual = false) {
  static char dummy[16];
  RmsNormParams p;
  p.rows = rows;
  p.cols = cols;
  p.x_stride = p.out_stride = p.gate_stride = p.residual_stride = cols;
  p.x_dtype = p.out_dtype = x;
  p.weight_dtype = w;
  p.order = RoundingOrder::kHuggingFace;
  p.x = p.weight = p.out = dummy;
  p.gate = gated ? dummy : nullptr;
  p.residual = residual ? dummy : nullptr;
  return p;
}

// Whether a DescribeRmsNormLaunch text carries `tag` (" wide", " spread",
// " empty-slots", " staged", " pdl").
bool Says(const std::string& launch, const char* tag) {
  return launch.find(tag) != std::string::npos;
}

const int64_t kSpecialCols[] = {
    1,    2,    3,    7,    8,    9,    15,   16,    17,    31,   32,   33,
    63,   64,   65,   127,  128,  129,  255,  256,   257,   1000, 1536, 2304,
    2560, 3584, 4096, 4097, 5120, 8191, 8192, 12288, 16383, 16384};

Case RandomCase(std::mt19937_64& rng) {
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  const DType dtypes[] = {DType::kF32, DType::kBF16, DType::kF16};
  Case c;
  c.x = dtypes[pick(3)];
  c.kind = pick(3) == 0 ? NormWeight::kScale : NormWeight::kMultiply;
  c.gated = c.kind == NormWeight::kMultiply && pick(3) == 0;
  c.residual = pick(2) == 0;  // gated too: the kernels take both
  c.order = pick(2) == 0 ? RoundingOrder::kHuggingFace : RoundingOrder::kEngine;
  c.w = c.kind == NormWeight::kScale ? DType::kF32 : dtypes[pick(3)];
  const DType promoted = PromoteTypes(c.x, c.w);
  c.out = c.gated || pick(2) == 0 ? c.x : promoted;
  c.cols = pick(2) == 0 ? kSpecialCols[pick(sizeof kSpecialCols / 8)]
                        : 1 + static_cast<int64_t>(rng() % 16384);
  const int64_t max_rows = std::max<int64_t>(1, (int64_t{1} << 21) / c.cols);
  c.rows = 1 + static_cast<int64_t>(rng() % std::min<int64_t>(4096, max_rows));
  auto stride = [&] { return c.cols + (pick(3) == 0 ? pick(9) : 0); };
  c.x_stride = stride();
  c.out_stride = stride();
  c.gate_stride = stride();
  c.residual_stride = stride();
  auto offset = [&]() -> size_t { return pick(2) == 0 ? 0 : pick(16); };
  c.x_off = offset();
  c.w_off = offset();
  c.out_off = offset();
  c.gate_off = offset();
  c.residual_off = offset();
  c.family = pick(9);
  // Gemma's and Qwen's 1e-6 mostly, Llama's 1e-5, none (a zero row's factor
  // is then infinite) and a large one.
  const float kEps[] = {1e-6f, 1e-6f, 1e-5f, 0.0f, 0.25f};
  c.eps = kEps[pick(5)];
  return c;
}

// Makes a third of random cases run in place: one operand sharing another's
// memory element for element (same dtype, row stride and offset), where the
// case's variant and dtypes allow it.
void MaybeAlias(Case& c, std::mt19937_64& rng) {
  using Alias = Case::Alias;
  std::vector<Alias> allowed;
  if (c.out == c.x) allowed.push_back(Alias::kOutIsX);
  if (c.residual) allowed.push_back(Alias::kResidualIsX);
  if (c.residual && c.out == c.x) allowed.push_back(Alias::kOutIsResidual);
  if (c.gated) {
    allowed.push_back(Alias::kGateIsX);
    allowed.push_back(Alias::kOutIsGate);
  }
  if (allowed.empty() || rng() % 3 != 0) return;
  c.alias = allowed[rng() % allowed.size()];
  // The aliased operand takes the other's row stride and offset.
  auto same_place = [](int64_t& stride, size_t& off, int64_t other_stride,
                       size_t other_off) {
    stride = other_stride;
    off = other_off;
  };
  switch (c.alias) {
    case Alias::kOutIsX:
      return same_place(c.out_stride, c.out_off, c.x_stride, c.x_off);
    case Alias::kResidualIsX:
      return same_place(c.residual_stride, c.residual_off, c.x_stride, c.x_off);
    case Alias::kOutIsResidual:
      return same_place(c.out_stride, c.out_off, c.residual_stride,
                        c.residual_off);
    case Alias::kGateIsX:
      return same_place(c.gate_stride, c.gate_off, c.x_stride, c.x_off);
    case Alias::kOutIsGate:
      return same_place(c.out_stride, c.out_off, c.gate_stride, c.gate_off);
    case Alias::kNone:
      return;
  }
}

// A row-strided operand: the same bytes on the host (for the CPU reference)
// and on the device (a view at `offset` bytes into its own storage).
struct Operand {
  std::vector<unsigned char> host;  // offset + span bytes
  size_t offset = 0;
  Tensor device;  // the [rows, cols] view with the row stride
  void* host_data() { return host.data() + offset; }
};

float Value(std::mt19937_64& rng, std::normal_distribution<float>& normal,
            int family, int64_t j) {
  switch (family) {
    case 1:
      return 0.1f;  // all equal
    case 2:
      return normal(rng) * std::exp2(static_cast<float>(rng() % 40) - 20.0f);
    case 3:
      return normal(rng) * 1e4f;  // f16 overflows: inf and NaN handling
    case 4:
      return normal(rng) * 1e-6f;  // f16 subnormals
    case 5:
      return j == 3 ? 100.0f : normal(rng) * 1e-2f;
    case 7:  // float32 squares overflow (bf16, f32: factor 0; f16: inf)
      return normal(rng) * 1e30f;
    case 8:  // zeros: with eps 0 the factor is infinite, the outputs NaN
      return 0.0f;
    case 6:  // NaNs, infinities and subnormals among normal values
      if (j % 53 == 11) return std::numeric_limits<float>::quiet_NaN();
      if (j % 61 == 5) return std::numeric_limits<float>::infinity();
      if (j % 67 == 9) return -std::numeric_limits<float>::infinity();
      if (j % 7 == 3) return normal(rng) * 1e-39f;
      return normal(rng);
    default:
      return normal(rng);
  }
}

class CudaKernelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<DeviceRuntime*> runtime = GetRuntime(Device::Cuda(0));
    ASSERT_TRUE(runtime.ok()) << runtime.status();
    runtime_ = *runtime;
    auto stream = runtime_->NewStream();
    ASSERT_TRUE(stream.ok()) << stream.status();
    stream_ = *std::move(stream);
  }

  // Makes an operand of rows x cols (row stride `stride`) at byte `offset`,
  // filled with values of `family` (or poisoned), on host and device alike.
  Operand Make(DType dtype, int64_t rows, int64_t cols, int64_t stride,
               size_t offset, std::mt19937_64& rng, int family, bool poison,
               float mean = 0.0f, float scale = 1.0f) {
    Operand o;
    o.offset = offset;
    const size_t elem = DTypeSize(dtype);
    const size_t span = ((rows - 1) * stride + cols) * elem;
    o.host.assign(offset + span, 0xFF);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    if (!poison) {
      for (int64_t i = 0; i < rows; ++i) {
        for (int64_t j = 0;
             j < stride && i * stride + j < (rows - 1) * stride + cols; ++j) {
          StoreFromFloat(o.host_data(), dtype, i * stride + j,
                         mean + scale * Value(rng, normal, family, j));
        }
      }
    }
    absl::StatusOr<std::shared_ptr<Storage>> storage =
        Storage::Allocate(runtime_->allocator(), offset + span);
    EXPECT_TRUE(storage.ok()) << storage.status();
    absl::StatusOr<Tensor> view =
        Tensor::FromStorage(*storage, offset, {rows, cols}, {stride, 1}, dtype);
    EXPECT_TRUE(view.ok()) << view.status();
    o.device = *view;
    absl::Status copied = runtime_->CopyFromHost((*storage)->data(),
                                                 o.host.data(), offset + span);
    EXPECT_TRUE(copied.ok()) << copied;
    return o;
  }

  // The device operand's bytes, read back.
  std::vector<unsigned char> Read(const Operand& o) {
    std::vector<unsigned char> bytes(o.host.size());
    absl::Status ok = runtime_->CopyToHost(
        bytes.data(), o.device.storage()->data(), bytes.size());
    EXPECT_TRUE(ok.ok()) << ok;
    return bytes;
  }

  void RunCase(const Case& c, std::mt19937_64& rng);

  DeviceRuntime* runtime_ = nullptr;
  std::unique_ptr<Stream> stream_;
  int64_t elements_ = 0;
  // Gated launches of K = 1 by kernel: the wide form and the usual one.
  int wide_launches_ = 0, narrow_gated_k1_launches_ = 0;
  int empty_slot_launches_ = 0;  // kernels of rms_norm_kernels.h's
                                 // kEmptySlotsForm
  int spread_launches_ = 0;      // kernels.cu's SpreadLaunch
  int staged_launches_ = 0;      // kernels of rms_norm_kernels.h's kStagedForm
  int silu_table_launches_ = 0;  // and of its kSiluTableForm
  int streaming_launches_ = 0;   // RmsNormStreamingKernel
};

// Runs case `c` on the device (through the launcher) and on the CPU
// reference, and compares every byte of the output and residual spans.
void CudaKernelsTest::RunCase(const Case& c, std::mt19937_64& rng) {
  SCOPED_TRACE(c.ToString());
  Operand x =
      Make(c.x, c.rows, c.cols, c.x_stride, c.x_off, rng, c.family, false);
  // Trained norm weights sit near 1 (and 1 + w near 1 for the scale form);
  // with family 6 they have NaNs and infinities too.
  Operand w = Make(c.w, 1, c.cols, c.cols, c.w_off, rng, c.family == 6 ? 6 : 0,
                   false, 1.0f, 0.3f);
  Operand out =
      Make(c.out, c.rows, c.cols, c.out_stride, c.out_off, rng, 0, true);
  Operand gate, residual;
  if (c.gated) {
    gate = Make(c.x, c.rows, c.cols, c.gate_stride, c.gate_off, rng,
                c.family == 6 ? 6 : 0, false, 0.0f, 3.0f);
    if (c.every_gate_encoding) {
      ASSERT_EQ(DTypeSize(c.x), 2u);
      // Element k of the row-major order holds encoding k * 40503 mod 2^16
      // (odd: every encoding once in each 2^16 elements).
      for (int64_t i = 0; i < c.rows; ++i) {
        for (int64_t j = 0; j < c.cols; ++j) {
          const uint16_t bits = static_cast<uint16_t>(
              static_cast<uint64_t>(i * c.cols + j) * 40503u);
          std::memcpy(
              gate.host.data() + gate.offset + (i * c.gate_stride + j) * 2,
              &bits, 2);
        }
      }
      absl::Status copied = runtime_->CopyFromHost(
          gate.device.storage()->data(), gate.host.data(), gate.host.size());
      ASSERT_TRUE(copied.ok()) << copied;
    }
  }
  if (c.residual) {
    residual = Make(c.x, c.rows, c.cols, c.residual_stride, c.residual_off, rng,
                    c.family, false);
  }
  // The operands each parameter names (one of them another's, in place).
  using Alias = Case::Alias;
  Operand* out_op = c.alias == Alias::kOutIsX          ? &x
                    : c.alias == Alias::kOutIsResidual ? &residual
                    : c.alias == Alias::kOutIsGate     ? &gate
                                                       : &out;
  Operand* residual_op = c.alias == Alias::kResidualIsX ? &x : &residual;
  Operand* gate_op = c.alias == Alias::kGateIsX ? &x : &gate;
  RmsNormParams p;
  p.rows = c.rows;
  p.cols = c.cols;
  p.x_stride = c.x_stride;
  p.out_stride = c.out_stride;
  p.gate_stride = c.gated ? c.gate_stride : 0;
  p.residual_stride = c.residual ? c.residual_stride : 0;
  p.x_dtype = c.x;
  p.weight_dtype = c.w;
  p.out_dtype = c.out;
  p.weight_kind = c.kind;
  p.order = c.order;
  p.eps = c.eps;
  // Device launch through the launcher.
  RmsNormParams d = p;
  d.x = x.device.data();
  d.weight = w.device.data();
  d.out = out_op->device.data();
  d.gate = c.gated ? gate_op->device.data() : nullptr;
  d.residual = c.residual ? residual_op->device.data() : nullptr;
  const std::string launch = DescribeRmsNormLaunch(d);
  SCOPED_TRACE(launch);
  if (c.gated && launch.rfind("K=1 ", 0) == 0) {
    ++(Says(launch, " wide") ? wide_launches_ : narrow_gated_k1_launches_);
  }
  if (Says(launch, " empty-slots")) ++empty_slot_launches_;
  if (Says(launch, " spread")) ++spread_launches_;
  if (Says(launch, " staged")) ++staged_launches_;
  if (Says(launch, " silu-table")) ++silu_table_launches_;
  if (launch.rfind("streaming ", 0) == 0) ++streaming_launches_;
  std::vector<ArgBinding> args = {{&d.x, &x.device, Access::kRead},
                                  {&d.weight, &w.device, Access::kRead},
                                  {&d.out, &out_op->device, Access::kWrite}};
  if (c.gated) args.push_back({&d.gate, &gate_op->device, Access::kRead});
  if (c.residual) {
    args.push_back({&d.residual, &residual_op->device, Access::kReadWrite});
  }
  absl::Status launched =
      stream_->LaunchRaw(RmsNormKernel(), &d, sizeof d, args);
  ASSERT_TRUE(launched.ok()) << launched;
  // CPU reference on the host copies.
  RmsNormParams h = p;
  h.x = x.host_data();
  h.weight = w.host_data();
  h.out = out_op->host_data();
  h.gate = c.gated ? gate_op->host_data() : nullptr;
  h.residual = c.residual ? residual_op->host_data() : nullptr;
  ASSERT_TRUE(ValidateRmsNormParams(h).ok()) << ValidateRmsNormParams(h);
  RmsNormCpu(h);
  // Every byte of the spans (written elements, and the gaps between rows,
  // which must stay as they were).
  const std::vector<unsigned char> got_out = Read(*out_op);
  for (size_t b = 0; b < got_out.size(); ++b) {
    if (got_out[b] != out_op->host[b]) {
      const size_t e = (b - out_op->offset) / DTypeSize(c.out);
      FAIL() << "out byte " << b << " (element " << e << ", row "
             << e / c.out_stride << ", col " << e % c.out_stride
             << ") differs: cuda "
             << LoadAsFloat(got_out.data() + out_op->offset, c.out, e)
             << ", cpu " << LoadAsFloat(out_op->host_data(), c.out, e);
    }
  }
  if (c.residual) {
    const std::vector<unsigned char> got_res = Read(*residual_op);
    ASSERT_EQ(
        std::memcmp(got_res.data(), residual_op->host.data(), got_res.size()),
        0)
        << "residual written back differs";
  }
  elements_ += c.rows * c.cols;
}

TEST_F(CudaKernelsTest, RmsNormEqualsCpuReferenceBitForBitOnRandomShapes) {
  std::mt19937_64 rng(20261129);
  // NORMGRAPH_SWEEP_CASES shortens the sweep (e.g. under compute-sanitizer).
  const char* env = std::getenv("NORMGRAPH_SWEEP_CASES");
  const int kCases =
      env != nullptr && std::atoi(env) > 0 ? std::atoi(env) : 400;
  for (int i = 0; i < kCases; ++i) {
    Case c = RandomCase(rng);
    MaybeAlias(c, rng);
    RunCase(c, rng);
    if (HasFatalFailure()) return;
  }
  std::printf("%d cases, %lld elements bit-identical to the CPU reference\n",
              kCases, static_cast<long long>(elements_));
}

// Rows longer than the register-cached kernel takes (more than 16384
// elements, so more than 2048 padded chunks: up to 32 a thread of the
// streaming kernel's 512), in every variant, dtype combination, stride,
// alignment, value family and eps the random cases draw: the streaming
// kernel, bit-identical to the CPU reference.
TEST_F(CudaKernelsTest, RowsLongerThan16384EqualCpuReference) {
  std::mt19937_64 rng(61);
  const int before = streaming_launches_;
  int cases = 0;
  for (int64_t cols : {16385, 16391, 20480, 32768, 65536, 100003}) {
    for (int i = 0; i < 8; ++i) {
      Case c = RandomCase(rng);
      c.cols = cols;
      c.rows = 1 + static_cast<int64_t>(rng() % 24);
      for (int64_t* stride :
           {&c.x_stride, &c.out_stride, &c.gate_stride, &c.residual_stride}) {
        *stride = cols + (rng() % 3 == 0 ? static_cast<int64_t>(rng() % 9) : 0);
      }
      MaybeAlias(c, rng);
      RunCase(c, rng);
      if (HasFatalFailure()) return;
      ++cases;
    }
  }
  EXPECT_EQ(streaming_launches_ - before, cases);
  std::printf(
      "%d cases of rows longer than 16384 bit-identical to the CPU reference\n",
      cases);
}

// Column slices of one buffer [rows, 2 x cols], as a fused projection's
// output holds x and the gate: the gated norm in place on the left half with
// the gate in the right half (and, ungated, the output written into the right
// half from the left), decode and prefill launches, every 16-bit dtype and
// f32: every byte of the buffer equal to the CPU reference's (so nothing of
// the other half is touched).
TEST_F(CudaKernelsTest, ColumnSlicesOfOneBufferEqualCpuReference) {
  std::mt19937_64 rng(67);
  int cases = 0;
  for (DType dtype : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (int64_t cols : {61, 1536, 4096, 16384}) {
      for (int64_t rows : {int64_t{3}, (int64_t{1} << 21) / cols + 5}) {
        for (bool gated : {true, false}) {
          SCOPED_TRACE(absl::StrFormat("%s %d x %d %s", DTypeName(dtype), rows,
                                       cols, gated ? "gated" : "out right"));
          Operand fused =
              Make(dtype, rows, 2 * cols, 2 * cols, 0, rng, 0, false);
          Operand w = Make(dtype, 1, cols, cols, 0, rng, 0, false, 1.0f, 0.3f);
          const size_t half = static_cast<size_t>(cols) * DTypeSize(dtype);
          auto view = [&](size_t at) {
            return *Tensor::FromStorage(fused.device.storage(), at,
                                        {rows, cols}, {2 * cols, 1}, dtype);
          };
          Tensor left = view(0), right = view(half);
          RmsNormParams p;
          p.rows = rows;
          p.cols = cols;
          p.x_stride = p.out_stride = p.gate_stride = 2 * cols;
          p.x_dtype = p.weight_dtype = p.out_dtype = dtype;
          p.order = RoundingOrder::kHuggingFace;
          RmsNormParams d = p;
          d.x = left.data();
          d.weight = w.device.data();
          d.out = gated ? left.data() : right.data();
          d.gate = gated ? right.data() : nullptr;
          std::vector<ArgBinding> args = {
              {&d.x, &left, Access::kRead},
              {&d.weight, &w.device, Access::kRead},
              {&d.out, gated ? &left : &right, Access::kWrite}};
          if (gated) args.push_back({&d.gate, &right, Access::kRead});
          absl::Status launched =
              stream_->LaunchRaw(RmsNormKernel(), &d, sizeof d, args);
          ASSERT_TRUE(launched.ok()) << launched;
          RmsNormParams h = p;
          char* host = reinterpret_cast<char*>(fused.host_data());
          h.x = host;
          h.weight = w.host_data();
          h.out = gated ? host : host + half;
          h.gate = gated ? host + half : nullptr;
          ASSERT_TRUE(ValidateRmsNormParams(h).ok())
              << ValidateRmsNormParams(h);
          RmsNormCpu(h);
          EXPECT_TRUE(Read(fused) == fused.host) << DescribeRmsNormLaunch(d);
          ++cases;
        }
      }
    }
  }
  std::printf(
      "%d cases on column slices of one buffer bit-identical to the CPU "
      "reference\n",
      cases);
}

// Every launch layout the kernels support (kernels/cuda/row_layout.h), forced
// on random variants, dtypes, strides and alignments: the register-cached
// kernel with K = 1, 2, 4 chunks per thread and several block sizes (several
// rows per warp, per block, rows of several warps), rows split over clusters
// of 2, 4 and 8 CTAs (K = 1; with a cap of 1 or 2 clusters, so that each
// cluster walks several rows through both halves of its exchange), without
// clusters, and the streaming kernel. Also the automatic choice in the
// prefill regime (many rows).
TEST_F(CudaKernelsTest, EveryLaunchLayoutEqualsCpuReference) {
  std::mt19937_64 rng(12);
  const int64_t kCols[] = {1,    7,    8,    9,     16,    17,    33,   64,
                           65,   128,  129,  256,   1000,  1536,  2048, 4096,
                           4097, 8192, 8200, 12288, 16383, 16384, 16385};
  // {K, block threads, grid cap, cluster}: a cap makes each block (cluster)
  // walk several row groups through the kernel's pipeline.
  const int kLayouts[][4] = {
      {0, 0, 0, 0},  {1, 0, 0, 0},   {1, 32, 0, 1},  {1, 1024, 0, 1},
      {2, 0, 0, 0},  {2, 64, 0, 0},  {2, 512, 0, 0}, {4, 0, 0, 0},
      {4, 32, 0, 0}, {4, 512, 0, 0}, {-1, 0, 0, 0},  {0, 0, 3, 0},
      {1, 32, 1, 1}, {2, 64, 2, 0},  {4, 0, 5, 0},   {1, 0, 0, 2},
      {1, 0, 0, 4},  {1, 0, 0, 8},   {1, 0, 1, 4},   {1, 0, 2, 8},
      {1, 0, 0, 1},  {0, 0, 0, 1}};
  const char* env = std::getenv("NORMGRAPH_SWEEP_CASES");
  const int repeats = env != nullptr && std::atoi(env) > 0 ? 1 : 2;
  int cases = 0;
  for (int64_t cols : kCols) {
    for (const auto& layout : kLayouts) {
      for (int r = 0; r < repeats; ++r) {
        Case c = RandomCase(rng);
        c.cols = cols;
        const int64_t rows_choice[] = {1, 3, 64, 300};
        c.rows = rows_choice[rng() % 4];
        auto stride = [&] {
          return c.cols +
                 (rng() % 3 == 0 ? static_cast<int64_t>(rng() % 9) : 0);
        };
        c.x_stride = stride();
        c.out_stride = stride();
        c.gate_stride = stride();
        c.residual_stride = stride();
        SetRmsNormLayoutOverride(layout[0], layout[1], layout[2], layout[3]);
        RunCase(c, rng);
        SetRmsNormLayoutOverride(0, 0);
        if (HasFatalFailure()) return;
        ++cases;
      }
    }
  }
  // Prefill-sized launches with the automatic layout (K = 4 for 16-bit, 2 for
  // f32 up to 8192 and 4 above), aligned and not; every sixth large enough
  // (2^24 elements) that the grid is capped at the blocks the GPU holds at
  // once and blocks loop.
  for (int i = 0; i < 24; ++i) {
    Case c = RandomCase(rng);
    const int64_t cols[] = {128, 256, 1536, 4096, 5120, 8192, 12288, 16384};
    c.cols = cols[rng() % 8];
    const int64_t elements = int64_t{1} << (i % 6 == 5 ? 24 : 21);
    c.rows = std::max<int64_t>(1, elements / c.cols) +
             static_cast<int64_t>(rng() % 7);
    c.x_stride = c.out_stride = c.gate_stride = c.residual_stride = c.cols;
    RunCase(c, rng);
    if (HasFatalFailure()) return;
    ++cases;
  }
  // Gated decode launches of both kinds beside the usual kernel: the wide
  // form (128 tokens x 32 heads of 128: more row groups than SMs) and the
  // usual kernel spread (64 tokens).
  for (int64_t rows : {4096, 2048}) {
    Case c = RandomCase(rng);
    c.kind = NormWeight::kMultiply;
    c.gated = true;
    c.residual = false;
    c.w = c.out = c.x;
    c.rows = rows;
    c.cols = 128;
    c.x_stride = c.out_stride = c.gate_stride = c.residual_stride = c.cols;
    RunCase(c, rng);
    if (HasFatalFailure()) return;
    ++cases;
  }
  std::printf(
      "%d layout cases bit-identical to the CPU reference (gated K = 1: %d "
      "wide, %d not; %d of the empty-slots kernels; %d spread)\n",
      cases, wide_launches_, narrow_gated_k1_launches_, empty_slot_launches_,
      spread_launches_);
  // Both kernels of the gated K = 1 forms ran (kWideForm), and the kernels
  // for rows of C < P chunks (kEmptySlotsForm: hidden 1000, 1536, 8200,
  // 12288 above).
  EXPECT_GT(wide_launches_, 0);
  EXPECT_GT(narrow_gated_k1_launches_, 0);
  EXPECT_GT(empty_slot_launches_, 0);
  // K = 1 launches of 17 to 132 row groups with PDL (64 and 300 rows above).
  EXPECT_GT(spread_launches_, 0);
}

// The wide form (128 registers, with programmatic dependent launch) is
// planned for gated K = 1 launches of more than 16 row groups whose CTAs all
// fit on the GPU at once at 128 registers a thread (512 threads an SM) and
// that are not spread (at most one row group an SM: kernels.cu,
// SpreadLaunch), and for no other: not for ungated norms, not for 16 row
// groups or fewer (which have PDL anyway), not for blocks of more than 512
// threads (the wide kernel is compiled for at most 512), not for launches
// larger than the GPU holds, and not when it or PDL is turned off.
TEST_F(CudaKernelsTest, GatedDecodeLaunchesPlanTheWideKernel) {
  int sms = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0),
            cudaSuccess);
  if (sms < 64 || sms > 256) {
    GTEST_SKIP() << "the cases below assume 64 to 256 SMs";
  }
  const bool pdl_was = ProgrammaticDependentLaunch();
  SetProgrammaticDependentLaunch(true);
  auto describe = [](int64_t rows, int64_t cols, bool gated) {
    return DescribeRmsNormLaunch(PlanningParams(rows, cols, gated));
  };
  auto wide = [](const std::string& launch) { return Says(launch, " wide"); };
  // 128 tokens x 32 heads of 128: 256 blocks of 16 rows (256 threads), more
  // than the SMs (not spread), 256 x 256 threads within 512 an SM.
  EXPECT_TRUE(wide(describe(4096, 128, true))) << describe(4096, 128, true);
  EXPECT_TRUE(Says(describe(4096, 128, true), " pdl"))
      << describe(4096, 128, true);
  // Spread instead where spreading applies (at most one row group an SM).
  EXPECT_FALSE(wide(describe(2048, 128, true))) << describe(2048, 128, true);
  EXPECT_FALSE(wide(describe(64, 4096, true))) << describe(64, 4096, true);
  SetSpreadDecodeLaunches(false);
  EXPECT_TRUE(wide(describe(2048, 128, true))) << describe(2048, 128, true);
  // 64 rows of 4096: 64 blocks of 512 threads.
  EXPECT_TRUE(wide(describe(64, 4096, true))) << describe(64, 4096, true);
  EXPECT_FALSE(wide(describe(64, 4096, false))) << describe(64, 4096, false);
  EXPECT_FALSE(wide(describe(256, 128, true))) << describe(256, 128, true);
  EXPECT_FALSE(wide(describe(1, 4096, true))) << describe(1, 4096, true);
  EXPECT_FALSE(wide(describe(sms + 1, 4096, true)))
      << describe(sms + 1, 4096, true);
  SetRmsNormLayoutOverride(1, 1024);  // two rows a block of 1024 threads
  EXPECT_FALSE(wide(describe(64, 4096, true))) << describe(64, 4096, true);
  SetRmsNormLayoutOverride(0, 0);
  SetWideGatedKernels(false);
  EXPECT_FALSE(wide(describe(64, 4096, true)));
  SetWideGatedKernels(true);
  SetSpreadDecodeLaunches(true);
  SetProgrammaticDependentLaunch(false);
  EXPECT_FALSE(wide(describe(4096, 128, true)));
  EXPECT_FALSE(wide(describe(64, 4096, true)));
  SetProgrammaticDependentLaunch(pdl_was);
}

// Rows of C < P chunks (hidden 1536 and 2560; 12288 for f32 activations,
// whose K = 4 starts above 8192) in the prefill regime, for every form and
// activation dtype, aligned (the fast path) and not:
// bit-identical to the CPU reference, and run by an empty-slots kernel
// (kEmptySlotsForm) exactly where one is compiled (no residual, not the gated
// form with an f32 weight).
TEST_F(CudaKernelsTest, EmptySlotRowsEqualCpuReferenceInEveryForm) {
  std::mt19937_64 rng(31);
  int cases = 0;
  for (DType x : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (int bits = 0; bits < 16; ++bits) {
      const bool residual = (bits & 1) != 0, hf = (bits & 2) != 0,
                 scale = (bits & 4) != 0, gated = (bits & 8) != 0;
      if (gated && scale) continue;  // a scale is never gated
      for (bool f32_weight : {false, true}) {
        // The scale is f32, and so is the weight of f32 activations.
        if ((scale || x == DType::kF32) && !f32_weight) continue;
        const std::vector<int64_t> cols_list =
            x == DType::kF32 ? std::vector<int64_t>{12288}
                             : std::vector<int64_t>{1536, 2560};
        for (int64_t cols : cols_list) {
          for (bool aligned : {true, false}) {
            Case c = RandomCase(rng);
            c.x = c.out = x;
            c.w = f32_weight ? DType::kF32 : x;
            c.kind = scale ? NormWeight::kScale : NormWeight::kMultiply;
            c.order = hf ? RoundingOrder::kHuggingFace : RoundingOrder::kEngine;
            c.gated = gated;
            c.residual = residual;
            c.cols = cols;
            c.rows = (int64_t{1} << 21) / cols + 3;
            c.x_stride = c.out_stride = c.gate_stride = c.residual_stride =
                cols;
            c.x_off = aligned ? 0 : 2;
            c.w_off = c.out_off = c.gate_off = c.residual_off = 0;
            const int before = empty_slot_launches_;
            RunCase(c, rng);
            if (HasFatalFailure()) return;
            EXPECT_EQ(empty_slot_launches_ - before,
                      !residual && !(gated && f32_weight) ? 1 : 0)
                << c.ToString();
            ++cases;
          }
        }
      }
    }
  }
  std::printf(
      "%d cases of rows with empty slots bit-identical to the CPU "
      "reference (%d by the empty-slots kernels)\n",
      cases, empty_slot_launches_);
}

// Rows of C < P chunks whose length is a multiple of a chunk take the
// empty-slots kernels (kEmptySlotsForm) where the K = 4 fast path exists: not
// rows of P chunks, not rows ending in a partial chunk, not the forms with a
// residual or the gated form with an f32 weight, not K = 1 or 2 (f32
// activations up to 8192, decode rows that fit K = 1).
TEST_F(CudaKernelsTest, RowsWithEmptySlotsPlanTheirOwnKernels) {
  auto describe = [](int64_t rows, int64_t cols, DType x, DType w, bool gated,
                     bool residual) {
    return DescribeRmsNormLaunch(
        PlanningParams(rows, cols, gated, x, w, residual));
  };
  auto empty_slots = [](const std::string& launch) {
    return Says(launch, " empty-slots");
  };
  const DType bf16 = DType::kBF16, f16 = DType::kF16, f32 = DType::kF32;
  for (int64_t cols : {1536, 2560, 5120, 12288}) {
    SCOPED_TRACE(cols);
    EXPECT_TRUE(empty_slots(describe(4096, cols, bf16, bf16, false, false)));
    EXPECT_TRUE(empty_slots(describe(4096, cols, f16, f16, true, false)));
    EXPECT_TRUE(empty_slots(describe(4096, cols, bf16, f32, false, false)));
    EXPECT_FALSE(empty_slots(describe(4096, cols, bf16, bf16, false, true)));
    EXPECT_FALSE(empty_slots(describe(4096, cols, bf16, f32, true, false)));
    EXPECT_EQ(empty_slots(describe(4096, cols, f32, f32, false, false)),
              cols == 12288);
    // One row: K = 1 up to 1024 padded chunks; 12288 (2048) needs K = 4.
    EXPECT_EQ(empty_slots(describe(1, cols, bf16, bf16, false, false)),
              cols == 12288);
    // With a residual such rows take K = 2 in prefill where a row fits 512
    // threads (row_layout.h, PlanLayout), 12288 K = 4 (the general path).
    EXPECT_TRUE(Says(describe(4096, cols, bf16, bf16, false, true),
                     cols == 12288 ? "K=4 " : "K=2 "));
  }
  EXPECT_FALSE(empty_slots(describe(4096, 2048, bf16, bf16, false, false)));
  EXPECT_FALSE(empty_slots(describe(4096, 1537, bf16, bf16, false, false)));
  EXPECT_FALSE(empty_slots(describe(4096, 1532, bf16, bf16, false, false)));
}

// Prefill launches with a residual (no gate), 16-bit activations and K = 4
// rows of 1024 or 2048 chunks, whose blocks walk several rows, run the staged
// kernels (kStagedForm: the next row through shared memory): bit-identical
// to the CPU reference in every such form, for rows the staged copies take
// (whole chunks, aligned) and rows they do not (a partial last chunk, an
// unaligned x or residual row stride: the kernel's fallback), with the
// planned blocks (capped, so that each walks several rows) and with blocks of
// two rows (a forced layout), in either order of block sizes; and the
// launches next to them (hidden 4096, 4104 and 12288, f32) bit-identical and
// not staged.
TEST_F(CudaKernelsTest, StagedResidualRowsEqualCpuReference) {
  std::mt19937_64 rng(47);
  int cases = 0, staged_aligned = 0;
  // The layout overrides below are process-wide: undone however this ends.
  struct ClearOverride {
    ~ClearOverride() { SetRmsNormLayoutOverride(0, 0); }
  } clear_override;
  SetRmsNormLayoutOverride(0, 0, /*max_blocks=*/8);
  for (DType x : {DType::kBF16, DType::kF16, DType::kF32}) {
    for (int bits = 0; bits < 4; ++bits) {
      const bool hf = (bits & 1) != 0, scale = (bits & 2) != 0;
      // Rows of 512 threads (64 KiB of shared memory) before and after rows
      // of 256 (32 KiB) on each kernel: planning the smaller block must not
      // lower the kernel's shared memory limit under the larger one's.
      for (int64_t cols : {16384, 4096, 4104, 8192, 12288, 16383}) {
        // Where the operands lie: aligned, x two bytes off, every row's
        // residual off by an odd row stride.
        for (int where = 0; where < 3; ++where) {
          Case c = RandomCase(rng);
          c.x = c.out = x;
          c.w = scale || x == DType::kF32 ? DType::kF32 : x;
          c.kind = scale ? NormWeight::kScale : NormWeight::kMultiply;
          c.order = hf ? RoundingOrder::kHuggingFace : RoundingOrder::kEngine;
          c.gated = false;
          c.residual = true;
          c.cols = cols;
          // Enough rows for the throughput layout (K = 4: row_layout.h,
          // PlanLayout), which the 8 blocks walk.
          c.rows =
              cuda_layout::kThroughputChunks / cuda_layout::PaddedChunks(cols) +
              3;
          c.x_stride = c.out_stride = c.gate_stride = cols;
          c.residual_stride = where == 2 ? cols + 1 : cols;
          c.x_off = where == 1 ? 2 : 0;
          c.w_off = c.out_off = c.gate_off = c.residual_off = 0;
          const int before = staged_launches_;
          RunCase(c, rng);
          if (HasFatalFailure()) return;
          // K = 4 with rows of 1024 or 2048 chunks (4104 and 12288 are rows
          // of C < P chunks, 4096 one of 128 threads).
          const bool staged = x != DType::kF32 &&
                              (cols == 8192 || cols == 16383 || cols == 16384);
          EXPECT_EQ(staged_launches_ - before, staged ? 1 : 0) << c.ToString();
          if (staged && where == 0 && cols != 16383) ++staged_aligned;
          ++cases;
        }
      }
    }
  }
  // Blocks of two rows: 512 threads (the most K = 4 takes), rows of 8192.
  SetRmsNormLayoutOverride(4, 512);
  for (bool hf : {false, true}) {
    Case c = RandomCase(rng);
    c.x = c.out = c.w = DType::kBF16;
    c.kind = NormWeight::kMultiply;
    c.order = hf ? RoundingOrder::kHuggingFace : RoundingOrder::kEngine;
    c.gated = false;
    c.residual = true;
    c.cols = 8192;
    c.rows = 2049;
    c.x_stride = c.out_stride = c.gate_stride = c.residual_stride = c.cols;
    c.x_off = c.w_off = c.out_off = c.gate_off = c.residual_off = 0;
    const int before = staged_launches_;
    RunCase(c, rng);
    EXPECT_EQ(staged_launches_ - before, 1);
    if (HasFatalFailure()) return;
    ++cases;
  }
  std::printf(
      "%d cases with a residual bit-identical to the CPU reference (%d by "
      "the staged kernels, %d of them on rows they stage whole)\n",
      cases, staged_launches_, staged_aligned + 2);
}

// The gated bf16 kernels of K = 4 with the silu table (kSiluTableForm) look
// silu up for gates of magnitude in [2^-24, 2^8) and compute it for the
// others (zeros, subnormals, tiny and large values, infinities, NaNs:
// silu_table.h): gates holding every bf16 encoding, in launches with the
// table (K = 4 with blocks capped so that each walks several row groups;
// rows of 128 and 512 threads, with and without empty slots; aligned rows and
// an unaligned gate, which takes the general path) and without it (K = 4 with
// a block a row group, 2 and 1), with bf16 and f32 weights in both orders,
// with and without a residual, bit-identical to the CPU reference.
TEST_F(CudaKernelsTest, GatedRowsOfEveryBf16GateEqualCpuReference) {
  SetSiluTableRows(true);  // whatever NORMGRAPH_CUDA_SILU_TABLE says
  std::mt19937_64 rng(53);
  struct ClearOverride {
    ~ClearOverride() { SetRmsNormLayoutOverride(0, 0); }
  } clear_override;
  // {K, block threads, grid cap}.
  const int kLayouts[][3] = {{4, 0, 2}, {4, 512, 3}, {4, 0, 1},
                             {4, 0, 0}, {2, 0, 2},   {1, 0, 0}};
  int cases = 0;
  const int table_before = silu_table_launches_;
  for (const auto& layout : kLayouts) {
    for (int64_t cols : {1536, 4096, 8200, 16384}) {
      if (cols == 16384 && layout[0] == 2) continue;  // rows of K = 2 <= 8192
      for (int where = 0; where < 2; ++where) {
        Case c = RandomCase(rng);
        c.x = c.out = DType::kBF16;
        c.w = rng() % 2 == 0 ? DType::kBF16 : DType::kF32;
        c.kind = NormWeight::kMultiply;
        c.order = rng() % 2 == 0 ? RoundingOrder::kHuggingFace
                                 : RoundingOrder::kEngine;
        c.gated = true;
        c.residual = rng() % 2 == 0;
        c.family = 0;
        c.every_gate_encoding = true;
        c.cols = cols;
        c.rows = 2 * 65536 / cols + 1;
        c.x_stride = c.out_stride = c.residual_stride = cols;
        c.gate_stride = where == 1 ? cols + 1 : cols;
        c.x_off = c.w_off = c.out_off = c.residual_off = 0;
        c.gate_off = where == 1 ? 2 : 0;
        SetRmsNormLayoutOverride(layout[0], layout[1], layout[2]);
        // The table where the launch is K = 4 (forced, or the automatic
        // choice where a forced K does not fit the row) with capped blocks.
        const bool k4 = DescribeRmsNormLaunch(
                            PlanningParams(c.rows, cols, true, DType::kBF16,
                                           DType::kBF16, c.residual))
                            .rfind("K=4 ", 0) == 0;
        const int before = silu_table_launches_;
        RunCase(c, rng);
        if (HasFatalFailure()) return;
        EXPECT_EQ(silu_table_launches_ - before, k4 && layout[2] > 0 ? 1 : 0)
            << c.ToString();
        ++cases;
      }
    }
  }
  const int table = silu_table_launches_ - table_before;
  std::printf(
      "%d gated cases with every bf16 gate bit-identical to the CPU "
      "reference (%d with the silu table)\n",
      cases, table);
  // The three capped layouts of K = 4, and K = 2 capped at 8200 (its rows of
  // 1024 threads do not fit K = 2: K = 4).
  EXPECT_EQ(table, 3 * 4 * 2 + 2);
}

// That an SM holds at least one block of `launch` (its function, block and
// dynamic shared memory).
void ExpectABlockFitsAnSm(const CudaLaunch& launch,
                          const std::string& described) {
  int per_sm = 0;
  EXPECT_EQ(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                &per_sm, launch.function, static_cast<int>(launch.block[0]),
                launch.shared_bytes),
            cudaSuccess);
  EXPECT_GE(per_sm, 1) << described;
}

// The silu-table kernels are planned for throughput-sized gated launches of
// K = 4 with bf16 activations (prefill), within the blocks the GPU holds of
// them, and for no other: not f16 or f32, not ungated, not decode-sized (K = 1,
// or K = 4 for rows of 16384), not K = 2 (per-head prefill), not with
// SetSiluTableRows(false).
TEST_F(CudaKernelsTest, GatedBf16PrefillPlansTheSiluTable) {
  SetSiluTableRows(true);  // whatever NORMGRAPH_CUDA_SILU_TABLE says
  auto table = [](int64_t rows, int64_t cols, bool gated,
                  DType x = DType::kBF16) {
    const RmsNormParams p = PlanningParams(rows, cols, gated, x, x);
    CudaLaunch launch;
    PlanRmsNormCuda(&p, &launch);
    const std::string described = DescribeRmsNormLaunch(p);
    const bool with_table = Says(described, " silu-table");
    if (with_table) {
      EXPECT_EQ(described.rfind("K=4 ", 0), 0u) << described;
      ExpectABlockFitsAnSm(launch, described);
    }
    return with_table;
  };
  for (int64_t cols : {1536, 2048, 4096, 8192, 16384}) {
    SCOPED_TRACE(cols);
    EXPECT_TRUE(table(1024, cols, true));
    EXPECT_TRUE(table(32768, cols, true));
    EXPECT_FALSE(table(32768, cols, false));
    EXPECT_FALSE(table(32768, cols, true, DType::kF16));
    EXPECT_FALSE(table(32768, cols, true, DType::kF32));
    EXPECT_FALSE(table(1, cols, true));
    EXPECT_FALSE(table(64, cols, true));
  }
  EXPECT_FALSE(table(131072, 128, true));  // per value head: K = 2
  SetSiluTableRows(false);
  EXPECT_FALSE(table(32768, 4096, true));
  SetSiluTableRows(true);
}

// The staged kernels are planned with their shared memory (128 bytes a
// thread) for launches with a residual and no gate, K = 4 rows of 1024 or
// 2048 chunks, 16-bit activations and more row groups than blocks, and for
// no other.
TEST_F(CudaKernelsTest, ResidualRowsOfManyThreadsPlanTheStagedKernels) {
  auto plan = [](int64_t rows, int64_t cols, DType x, DType w, bool residual,
                 bool gated = false) {
    const RmsNormParams p = PlanningParams(rows, cols, gated, x, w, residual);
    CudaLaunch launch;
    PlanRmsNormCuda(&p, &launch);
    const std::string described = DescribeRmsNormLaunch(p);
    const bool staged = Says(described, " staged");
    if (staged) {
      EXPECT_FALSE(Says(described, " spread")) << described;
      EXPECT_EQ(launch.shared_bytes, 128 * launch.block[0]) << described;
      ExpectABlockFitsAnSm(launch, described);
      EXPECT_LT(static_cast<int64_t>(launch.grid[0]), rows) << described;
    } else {
      // None, or a spread decode launch's (K = 1: 64 rows of 8192).
      EXPECT_EQ(launch.shared_bytes > 0, Says(described, " spread"))
          << described;
    }
    return staged;
  };
  const DType bf16 = DType::kBF16, f16 = DType::kF16, f32 = DType::kF32;
  for (int64_t cols : {8192, 8185, 16377, 16384}) {
    SCOPED_TRACE(cols);
    EXPECT_TRUE(plan(4096, cols, bf16, bf16, true));
    EXPECT_TRUE(plan(1024, cols, f16, f32, true));
    // As many blocks as row groups (the GPU holds them all): none to stage.
    EXPECT_FALSE(plan(1, cols, bf16, bf16, true));
    EXPECT_FALSE(plan(64, cols, bf16, bf16, true));
    EXPECT_FALSE(plan(4096, cols, bf16, bf16, false));
    EXPECT_FALSE(plan(4096, cols, f32, f32, true));
    EXPECT_FALSE(plan(4096, cols, bf16, bf16, true, /*gated=*/true));
  }
  // K = 4 in rows of 128 threads or fewer, K = 2 (rows of C < P chunks with
  // a residual), or K = 4 rows of C < P chunks.
  for (int64_t cols : {1536, 2048, 4096, 4097, 5120, 8184, 12288, 16376}) {
    SCOPED_TRACE(cols);
    EXPECT_FALSE(plan(4096, cols, bf16, bf16, true));
  }
  SetStagedResidualRows(false);
  EXPECT_FALSE(plan(4096, 16384, bf16, bf16, true));
  SetStagedResidualRows(true);
}

// K = 1 launches of more than 16 row groups, at most one per SM, are spread
// (programmatic dependent launch, one CTA an SM through dynamic shared
// memory), gated ones too: not 16 or fewer (PDL without it), not more than
// the SMs, not rows split over clusters, not K > 1, and not with PDL or
// spreading turned off.
TEST_F(CudaKernelsTest, DecodeLaunchesOfMoreThan16RowGroupsAreSpread) {
  int sms = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0),
            cudaSuccess);
  if (sms < 64) GTEST_SKIP() << "the cases below assume 64 SMs or more";
  const bool pdl_was = ProgrammaticDependentLaunch();
  SetProgrammaticDependentLaunch(true);
  auto plan = [](int64_t rows, int64_t cols, bool gated) {
    const RmsNormParams p = PlanningParams(rows, cols, gated);
    CudaLaunch launch;
    PlanRmsNormCuda(&p, &launch);
    const std::string described = DescribeRmsNormLaunch(p);
    SCOPED_TRACE(described);
    EXPECT_EQ(Says(described, " spread"), launch.shared_bytes > 0);
    return launch;
  };
  auto spread = [&](int64_t rows, int64_t cols, bool gated) {
    const CudaLaunch launch = plan(rows, cols, gated);
    if (launch.shared_bytes == 0) return false;
    // One CTA an SM: the occupancy the dynamic shared memory leaves.
    int per_sm = 0;
    EXPECT_EQ(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                  &per_sm, launch.function, static_cast<int>(launch.block[0]),
                  launch.shared_bytes),
              cudaSuccess);
    EXPECT_EQ(per_sm, 1);
    EXPECT_TRUE(launch.programmatic_dependency);
    return true;
  };
  for (int64_t rows : {int64_t{17}, int64_t{32}, int64_t{64}, int64_t{sms}}) {
    SCOPED_TRACE(rows);
    EXPECT_TRUE(spread(rows, 4096, false));
  }
  EXPECT_TRUE(spread(2048, 128, false));  // 64 tokens x 32 heads: 128 blocks
  EXPECT_TRUE(spread(2048, 128, true));   // gated: spread, not wide
  EXPECT_TRUE(spread(64, 8192, true));
  EXPECT_FALSE(spread(16, 4096, false));
  EXPECT_TRUE(plan(16, 4096, false).programmatic_dependency);
  EXPECT_FALSE(spread(sms + 1, 4096, false));
  EXPECT_FALSE(plan(sms + 1, 4096, false).programmatic_dependency);
  EXPECT_FALSE(spread(4096, 128, true));     // 256 blocks: the wide form
  EXPECT_FALSE(spread(1, 4096, false));      // split over a cluster
  EXPECT_FALSE(spread(32768, 4096, false));  // prefill, K = 4
  SetRmsNormLayoutOverride(2, 0);
  EXPECT_FALSE(spread(64, 4096, false));  // K = 2
  SetRmsNormLayoutOverride(0, 0);
  SetSpreadDecodeLaunches(false);
  EXPECT_FALSE(spread(64, 4096, false));
  EXPECT_FALSE(plan(64, 4096, false).programmatic_dependency);
  SetSpreadDecodeLaunches(true);
  SetProgrammaticDependentLaunch(false);
  EXPECT_FALSE(spread(64, 4096, false));
  SetProgrammaticDependentLaunch(pdl_was);
}

TEST_F(CudaKernelsTest, CopyKernelCopiesEveryByteAtAnyAlignment) {
  std::mt19937_64 rng(5);
  for (int i = 0; i < 60; ++i) {
    const int64_t bytes = static_cast<int64_t>(rng() % 100000);
    const size_t src_off = rng() % 16, dst_off = rng() % 16;
    Operand src = Make(DType::kBF16, 1, bytes / 2 + 1, bytes / 2 + 1, src_off,
                       rng, 0, false);
    Operand dst = Make(DType::kBF16, 1, bytes / 2 + 1, bytes / 2 + 1, dst_off,
                       rng, 0, true);
    CopyParams p{src.device.data(), dst.device.data(), bytes};
    ASSERT_TRUE(stream_
                    ->Launch(CopyKernel(), p,
                             {{&p.src, &src.device, Access::kRead},
                              {&p.dst, &dst.device, Access::kWrite}})
                    .ok());
    std::memcpy(dst.host_data(), src.host_data(), bytes);
    EXPECT_EQ(Read(dst), dst.host)
        << bytes << " bytes, offsets " << src_off << " -> " << dst_off;
  }
}

}  // namespace
}  // namespace normgraph
