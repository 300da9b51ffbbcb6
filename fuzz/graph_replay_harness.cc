#include "fuzz/graph_replay_harness.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "core/step_buffers.h"
#include "core/tensor_util.h"
#include "fuzz/norm_model.h"
#include "fuzz/values.h"
#include "graph/bucketed_graphs.h"
#include "kernels/cpu/rms_norm.h"
#include "kernels/kernels.h"
#include "layers/checkpoint_dir.h"
#include "layers/gemma3_norm_stack.h"
#include "layers/legacy_zero_centered_rms_norm.h"
#include "layers/qwen3_5_norm_stack.h"
#include "layers/qwen3_norm_stack.h"
#include "layers/safetensors/format.h"
#include "layers/safetensors/reader.h"
#include "layers/safetensors/writer.h"
#include "layers/weights.h"

namespace normgraph::fuzz {
namespace {

// --- process-wide setup (no state that one input can leave for the next) ---

// Where the fuzzed stacks live: NORMGRAPH_FUZZ_DEVICE (cpu, cuda, cuda:N),
// the CPU by default. A device that cannot be opened stops the process with
// the reason (a fuzzer must not silently fall back).
DeviceRuntime& Runtime() {
  static DeviceRuntime* runtime = [] {
    // The deadlock detector's bookkeeping costs more than a small input.
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
    const char* name = std::getenv("NORMGRAPH_FUZZ_DEVICE");
    absl::StatusOr<Device> device =
        ParseDevice(name != nullptr && *name != '\0' ? name : "cpu");
    absl::StatusOr<DeviceRuntime*> r =
        device.ok() ? GetRuntime(*device) : device.status();
    if (!r.ok()) {
      std::fprintf(stderr, "graph_replay_fuzzer: NORMGRAPH_FUZZ_DEVICE: %s\n",
                   std::string(r.status().message()).c_str());
      std::abort();
    }
    // Said once, so that a campaign's log shows where it ran.
    if (name != nullptr && *name != '\0') {
      std::fprintf(stderr, "graph_replay_fuzzer: stacks on %s\n",
                   (*r)->Describe().c_str());
    }
    return *r;
  }();
  return *runtime;
}

Allocator& DeviceAllocator() { return Runtime().allocator(); }

// NORMGRAPH_FUZZ_TRACE=1 prints every op and replay verdict to stderr (to
// read a finding's file).
bool Tracing() {
  static const bool on = std::getenv("NORMGRAPH_FUZZ_TRACE") != nullptr;
  return on;
}

// The files LoadThroughFiles writes: one file, or an index and two shards.
constexpr const char* kScratchFiles[] = {
    "model.safetensors", "model.safetensors.index.json",
    "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};

void RemoveScratchFiles();

// A directory of this process's own for checkpoints written to be loaded,
// removed at exit: under /dev/shm where it can be made (the writer syncs each
// file to disk: on a disk, fsync and unlink took 90% of the time of inputs
// that load through files hundreds of times), else under $TEST_TMPDIR,
// $TMPDIR or /tmp.
const std::string& CheckpointScratch() {
  static const std::string* dir = [] {
    std::vector<std::string> parents = {"/dev/shm"};
    for (const char* name : {"TEST_TMPDIR", "TMPDIR"}) {
      const char* value = std::getenv(name);
      if (value != nullptr && *value != '\0') parents.push_back(value);
    }
    parents.push_back("/tmp");
    for (const std::string& parent : parents) {
      std::string path = absl::StrCat(parent, "/normgraph_fuzz_XXXXXX");
      if (::mkdtemp(path.data()) == nullptr) continue;
      auto* d = new std::string(path);
      std::atexit([] {
        RemoveScratchFiles();
        ::rmdir(CheckpointScratch().c_str());
      });
      return d;
    }
    std::fprintf(stderr,
                 "graph_replay_fuzzer: no scratch directory could be made "
                 "under %s\n",
                 absl::StrJoin(parents, ", ").c_str());
    std::abort();
  }();
  return *dir;
}

// Removes what LoadThroughFiles wrote (after each load: a process that dies
// on a finding leaves an empty directory at most).
void RemoveScratchFiles() {
  for (const char* name : kScratchFiles) {
    std::remove(absl::StrCat(CheckpointScratch(), "/", name).c_str());
  }
}

// One stream for the process (creating a CUDA stream per input would cost more
// than the input). Streams keep no state between inputs but counters.
Stream& DeviceStream() {
  static Stream* stream = [] {
    absl::StatusOr<std::unique_ptr<Stream>> s = Runtime().NewStream();
    if (!s.ok()) {
      std::fprintf(stderr, "graph_replay_fuzzer: %s\n",
                   std::string(s.status().message()).c_str());
      std::abort();
    }
    return s->release();
  }();
  return *stream;
}

// The bucket sets (one per input, from its size byte), all captured at
// startup in one BucketedGraphs: {1, 4} for half the size bytes (batches 2
// and 3 run padded in bucket 4), then {1, 2, 4}, {2, 4} (batch 1 padded too)
// and {1, 3, 4}. The largest is always 4.
constexpr int64_t kLargestBucket = 4;
// A batch no bucket holds: BATCH's high bit picks it, and a replay must be
// refused (eager steps run it).
constexpr int64_t kTooLargeBatch = kLargestBucket + 1;

enum Op : uint8_t {
  kLoad,
  kSwap,
  kInputs,
  kBatch,
  kReplay,
  kEager,
  kRecapture,
  kPolicy,
  kRebindAlive,
  kFreeRealloc,
  kStale,
  kReslice,
  kTie,      // a parameter slot takes another parameter's tensor (tied weights)
  kPack,     // parameters move into views of one packed storage
  kRepeat,   // the next 1-4 ops, run 2-128 times
  kUpdates,  // a trainer's update loop: 1-128 full loads, the op byte's high
             // nibble says how many
  kNumOps,
};

constexpr const char* kOpNames[] = {
    "load",      "swap",   "inputs",       "batch",        "replay", "eager",
    "recapture", "policy", "rebind-alive", "free-realloc", "stale",  "reslice",
    "tie",       "pack",   "repeat",       "updates"};

// Reads bytes off the front of the input; every read may fail when the input
// runs out. Seek() rewinds for REPEAT.
class Reader {
 public:
  explicit Reader(absl::Span<const uint8_t> data) : data_(data) {}
  bool Byte(uint8_t* out) {
    if (pos_ >= data_.size()) return false;
    *out = data_[pos_++];
    return true;
  }
  size_t pos() const { return pos_; }
  bool exhausted() const { return pos_ >= data_.size(); }
  void Seek(size_t pos) { pos_ = pos; }

 private:
  absl::Span<const uint8_t> data_;
  size_t pos_ = 0;
};

absl::Status Finding(absl::string_view what) {
  return absl::InternalError(absl::StrCat("oracle: ", what));
}

bool IsFinding(const absl::Status& s) {
  return s.code() == absl::StatusCode::kInternal &&
         absl::StartsWith(s.message(), "oracle: ");
}

// --- the harness's own numerics (independent of core/float_bits.h) --------

uint64_t Mix(uint64_t x) {  // splitmix64's finalizer
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Whether `a` comes before `b` with runs of digits compared as numbers
// ("layers.2." before "layers.10."). The harness's own, for names without
// leading zeros.
bool NaturalOrder(absl::string_view a, absl::string_view b) {
  size_t i = 0, j = 0;
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      size_t ei = i, ej = j;
      while (ei < a.size() && digit(a[ei])) ++ei;
      while (ej < b.size() && digit(b[ej])) ++ej;
      if (ei - i != ej - j) return ei - i < ej - j;
      const int c = a.substr(i, ei - i).compare(b.substr(j, ej - j));
      if (c != 0) return c < 0;
      i = ei;
      j = ej;
      continue;
    }
    if (a[i] != b[j]) return a[i] < b[j];
    ++i;
    ++j;
  }
  return a.size() - i < b.size() - j;
}

// n random values exactly representable in `dtype` (so generating them needs
// no rounding): near 1 ([0.5, 2)) for `around_one`, else of random sign with
// magnitudes in [2^(top - 6), 2^(top + 1)). `encode(sign, exponent,
// mantissa)` gives one element's bits; one instance per dtype keeps the dtype
// test out of the loop (this runs for every tensor of every load).
// x % 7 for the 5-bit x the exponent is drawn from (a table instead of a
// division per element; the same values).
constexpr uint8_t kMod7[32] = {0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 0, 1,
                               2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3};

template <typename Bits, bool kAroundOne, typename Encode>
void GenerateBitsOf(uint64_t seed, int top, int64_t n, Encode encode,
                    uint8_t* out) {
  uint64_t state = Mix(seed);
  for (int64_t i = 0; i < n; ++i) {
    state = Mix(state);
    const uint32_t r = static_cast<uint32_t>(state);
    const uint32_t sign = kAroundOne ? 0 : (r >> 31);
    const int exponent = kAroundOne ? -1 + static_cast<int>((r >> 30) & 1)
                                    : top - static_cast<int>(kMod7[r >> 27]);
    const uint32_t mantissa = static_cast<uint32_t>(state >> 32);
    const Bits bits = encode(sign, exponent, mantissa);
    std::memcpy(out + sizeof(Bits) * i, &bits, sizeof(Bits));
  }
}

template <typename Bits, typename Encode>
void GenerateBits(uint64_t seed, bool around_one, int top, int64_t n,
                  Encode encode, uint8_t* out) {
  if (around_one) {
    GenerateBitsOf<Bits, true>(seed, top, n, encode, out);
  } else {
    GenerateBitsOf<Bits, false>(seed, top, n, encode, out);
  }
}

void GenerateValues(uint64_t seed, bool around_one, int top, int64_t n,
                    DType dtype, uint8_t* out) {
  switch (dtype) {
    case DType::kF32:
      return GenerateBits<uint32_t>(
          seed, around_one, top, n,
          [](uint32_t sign, int exponent, uint32_t mantissa) {
            return sign << 31 | static_cast<uint32_t>(exponent + 127) << 23 |
                   (mantissa & 0x7FFFFF);
          },
          out);
    case DType::kBF16:
      return GenerateBits<uint16_t>(
          seed, around_one, top, n,
          [](uint32_t sign, int exponent, uint32_t mantissa) {
            return static_cast<uint16_t>(sign << 15 | (exponent + 127) << 7 |
                                         (mantissa & 0x7F));
          },
          out);
    default:
      return GenerateBits<uint16_t>(
          seed, around_one, top, n,
          [](uint32_t sign, int exponent, uint32_t mantissa) {
            return static_cast<uint16_t>(sign << 15 | (exponent + 15) << 10 |
                                         (mantissa & 0x3FF));
          },
          out);
  }
}

// n values of `dtype` that reach every case of a conversion between the
// dtypes: magnitudes from 2^-30 to 2^17 (f16 subnormals, underflow to zero,
// overflow to infinity) and, three times in four, a mantissa exactly halfway
// between two bf16 or two f16 neighbours, or one bit past halfway (ties go to
// even, the rest to nearest); one element in eight a special value instead
// (zeros of both signs, the dtype's smallest and largest subnormals,
// infinities, NaNs of both signs). f16 sources: any f16 bits.
void GenerateWideValues(uint64_t seed, int64_t n, DType dtype, uint8_t* out) {
  uint64_t state = Mix(seed ^ 0x57494445ull);
  const size_t es = DTypeSize(dtype);
  for (int64_t i = 0; i < n; ++i) {
    state = Mix(state);
    const uint32_t sign = static_cast<uint32_t>(state >> 63);
    if (((state >> 40) & 7) == 0) {
      // zero, smallest and largest subnormal, infinity, NaN; of either sign
      static constexpr uint32_t kF32[] = {0, 1, 0x7FFFFF, 0x7F800000,
                                          0x7FC00000};
      static constexpr uint32_t kHalf[2][5] = {{0, 1, 0x7F, 0x7F80, 0x7FC0},
                                               {0, 1, 0x3FF, 0x7C00, 0x7E00}};
      const int pick = static_cast<int>((state >> 44) % 5);
      const uint32_t bits =
          dtype == DType::kF32 ? sign << 31 | kF32[pick]
                               : sign << 15 | kHalf[dtype == DType::kF16][pick];
      std::memcpy(out + es * i, &bits, es);
      continue;
    }
    if (dtype == DType::kF16) {
      const uint16_t h = static_cast<uint16_t>(state);
      std::memcpy(out + 2 * i, &h, 2);
      continue;
    }
    const int exponent = -30 + static_cast<int>((state >> 32) % 48);
    uint32_t mantissa = static_cast<uint32_t>(state) & 0x7FFFFFu;
    switch ((state >> 56) & 3) {
      case 0:  // a bf16 tie
        mantissa = (mantissa & ~0xFFFFu) | 0x8000u;
        break;
      case 1:  // an f16 tie
        mantissa = (mantissa & ~0x1FFFu) | 0x1000u;
        break;
      case 2:  // just past an f16 tie
        mantissa = (mantissa & ~0x1FFFu) | 0x1001u;
        break;
      default:
        break;
    }
    const uint32_t bits =
        sign << 31 | static_cast<uint32_t>(exponent + 127) << 23 | mantissa;
    if (dtype == DType::kF32) {
      std::memcpy(out + 4 * i, &bits, 4);
    } else {  // bf16: its top half (bf16 ties vanish, range cases stay)
      const uint16_t h = static_cast<uint16_t>(bits >> 16);
      std::memcpy(out + 2 * i, &h, 2);
    }
  }
}

// out[j] = 1 + w[j] in f32 for n values of `dtype` (what a zero-centred
// norm's derived buffer holds), the dtype test out of the loop.
void OnePlusValues(DType dtype, const uint8_t* w, int64_t n, float* out) {
  switch (dtype) {
    case DType::kF32:
      for (int64_t j = 0; j < n; ++j) {
        float f;
        std::memcpy(&f, w + 4 * j, 4);
        out[j] = 1.0f + f;
      }
      return;
    case DType::kBF16:
      for (int64_t j = 0; j < n; ++j) {
        uint16_t h;
        std::memcpy(&h, w + 2 * j, 2);
        out[j] = 1.0f + BitsToFloat(static_cast<uint32_t>(h) << 16);
      }
      return;
    default:
      for (int64_t j = 0; j < n; ++j) {
        uint16_t h;
        std::memcpy(&h, w + 2 * j, 2);
        const uint32_t exponent = (h >> 10) & 0x1F;
        // f16 normals inline (DecodeValue's first case), the rest through it.
        out[j] = 1.0f +
                 (exponent > 0 && exponent < 0x1F
                      ? BitsToFloat((h & 0x8000u) << 16 |
                                    (exponent + 112) << 23 | (h & 0x3FFu) << 13)
                      : DecodeValue(dtype, w + 2 * j));
      }
  }
}

// Element-wise equality of two shapes (or stride lists), on their spans:
// Abseil's InlinedVector operator== (and its accessors, each of which tests
// whether the vector is inline) cost 6% of the harness's instructions, as
// every slot's identity is compared after every load.
bool SameDims(absl::Span<const int64_t> a, absl::Span<const int64_t> b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

// The same identity, compared without building one (allocates nothing). The
// cheap fields first: a moved tensor almost always has another storage or
// address.
bool SameIdentity(const Tensor& t, const TensorIdentity& id) {
  if (!t.defined() || t.storage()->id() != id.storage_id ||
      t.dtype() != id.dtype) {
    return false;
  }
  const void* data = t.storage()->data();
  const uintptr_t address =
      data == nullptr ? 0
                      : reinterpret_cast<uintptr_t>(data) + t.offset_bytes();
  return address == id.address && SameDims(t.shape(), id.shape) &&
         SameDims(t.strides(), id.strides);  // the byte span follows
}

// t.Identity(), written into `id` in place (its shape and stride vectors keep
// their storage): for the slots that move on every load (the pre-fix loader's
// derived buffers).
void AssignIdentity(const Tensor& t, TensorIdentity& id) {
  id.storage_id = t.defined() ? t.storage()->id() : 0;
  id.device = t.defined() ? t.storage()->device() : Device();
  id.address = reinterpret_cast<uintptr_t>(t.data());
  id.bytes = t.span_bytes();
  id.dtype = t.dtype();
  id.shape.assign(t.shape().begin(), t.shape().end());
  id.strides.assign(t.strides().begin(), t.strides().end());
}

// --- host access to tensors -----------------------------------------------

// The bytes of a contiguous tensor on the host: the tensor's own memory on the
// CPU, a copy otherwise.
class HostBytes {
 public:
  static absl::StatusOr<HostBytes> Of(const Tensor& t) {
    HostBytes h;
    NG_RETURN_IF_ERROR(h.Read(t));
    return h;
  }
  // The same into this object (the checks after every load read every
  // parameter and derived buffer: no StatusOr or tensor copy on the CPU).
  absl::Status Read(const Tensor& t) {
    if (t.defined() && t.storage()->device() == Device::Cpu() &&
        t.is_contiguous()) {  // inline: the usual case
      data_ = static_cast<const uint8_t*>(t.data());
      size_ = t.numel() * DTypeSize(t.dtype());
      return absl::OkStatus();
    }
    return ReadSlow(t);
  }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  ABSL_ATTRIBUTE_NOINLINE absl::Status ReadSlow(const Tensor& t) {
    if (!t.defined() || !t.is_contiguous()) {
      return absl::InternalError(
          absl::StrCat("cannot read ",
                       t.defined() ? t.DebugString() : "an undefined tensor"));
    }
    if (t.storage()->device() == Device::Cpu()) {
      data_ = static_cast<const uint8_t*>(t.data());
    } else {
      NG_ASSIGN_OR_RETURN(copy_, ToHost(t));
      data_ = static_cast<const uint8_t*>(copy_.data());
    }
    size_ = t.numel() * DTypeSize(t.dtype());
    return absl::OkStatus();
  }

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  Tensor copy_;
};

// Writes `bytes` (the tensor's dtype, contiguous) into `t` through the API
// (which bumps the storage's write version, as every in-place write must).
absl::Status WriteBytes(const Tensor& t, const uint8_t* bytes) {
  return CopyInto(HostView{bytes, t.dtype(), t.shape()}, t);
}

// --- configuration --------------------------------------------------------

enum class StackKind { kQwen35, kGemma3, kQwen3 };

struct Config {
  StackKind kind = StackKind::kQwen35;
  bool qk_norm = true;  // Qwen3 only: false is Llama's stack
  bool legacy = false;
  DType dtype = DType::kBF16;
  RoundingOrder order = RoundingOrder::kHuggingFace;
  int64_t hidden = 8;
  int64_t layers = 1;
  std::vector<Qwen35LayerType> layer_types;  // Qwen3.5 only
  int64_t head_dim = 4, heads = 1, kv_heads = 1, value_heads = 1,
          value_head_dim = 4;
  ReplayPolicy policy = ReplayPolicy::kFail;
  std::vector<int64_t> buckets = {1, kLargestBucket};
  // rms_norm_eps: every stack's default (1e-6) for half the size bytes, else
  // 1e-5 or 0.25 (a stack that ignored its configured eps would then differ).
  float eps = 1e-6f;
};

// LoadWeights names at most this many problems in a refusal (then "... and
// N more").
constexpr size_t kListedLoadProblems = 20;

std::string DescribeConfig(const Config& c) {
  const char* kind = c.kind == StackKind::kQwen35   ? "qwen3.5"
                     : c.kind == StackKind::kGemma3 ? "gemma3"
                     : c.qk_norm                    ? "qwen3"
                                                    : "llama";
  std::string types;
  for (Qwen35LayerType t : c.layer_types) {
    types += t == Qwen35LayerType::kFullAttention ? 'F' : 'L';
  }
  return absl::StrCat(
      kind, " ", DTypeName(c.dtype), " ",
      c.order == RoundingOrder::kEngine ? "engine" : "hf",
      c.legacy ? " legacy-loader" : "", ", ", c.layers, " layers ", types,
      ", hidden ", c.hidden, ", heads ", c.heads, "/", c.kv_heads, " x ",
      c.head_dim, ", value heads ", c.value_heads, " x ", c.value_head_dim,
      ", buckets {", absl::StrJoin(c.buckets, ", "), "}, eps ", c.eps);
}

absl::StatusOr<std::unique_ptr<NormStack>> MakeModel(const Config& c) {
  if (c.kind == StackKind::kQwen35) {
    Qwen35NormStackConfig q;
    q.num_hidden_layers = c.layers;
    q.hidden_size = c.hidden;
    q.num_attention_heads = c.heads;
    q.num_key_value_heads = c.kv_heads;
    q.head_dim = c.head_dim;
    q.linear_num_value_heads = c.value_heads;
    q.linear_value_head_dim = c.value_head_dim;
    q.layer_types = c.layer_types;
    q.rms_norm_eps = c.eps;
    q.dtype = c.dtype;
    q.order = c.order;
    q.allocator = &DeviceAllocator();
    if (c.legacy) q.zero_centered_factory = LegacyZeroCenteredFactory();
    NG_ASSIGN_OR_RETURN(auto m, Qwen35NormStack::Create(q));
    return std::unique_ptr<NormStack>(std::move(m));
  }
  if (c.kind == StackKind::kGemma3) {
    Gemma3NormStackConfig g;
    g.num_hidden_layers = c.layers;
    g.hidden_size = c.hidden;
    g.num_attention_heads = c.heads;
    g.num_key_value_heads = c.kv_heads;
    g.head_dim = c.head_dim;
    g.rms_norm_eps = c.eps;
    g.dtype = c.dtype;
    g.order = c.order;
    g.allocator = &DeviceAllocator();
    if (c.legacy) g.zero_centered_factory = LegacyZeroCenteredFactory();
    NG_ASSIGN_OR_RETURN(auto m, Gemma3NormStack::Create(g));
    return std::unique_ptr<NormStack>(std::move(m));
  }
  Qwen3NormStackConfig q;
  q.num_hidden_layers = c.layers;
  q.hidden_size = c.hidden;
  q.num_attention_heads = c.heads;
  q.num_key_value_heads = c.kv_heads;
  q.head_dim = c.head_dim;
  q.qk_norm = c.qk_norm;
  q.rms_norm_eps = c.eps;
  q.dtype = c.dtype;
  q.order = c.order;
  q.allocator = &DeviceAllocator();
  NG_ASSIGN_OR_RETURN(auto m, Qwen3NormStack::Create(q));
  return std::unique_ptr<NormStack>(std::move(m));
}

// --- the harness ------------------------------------------------------------

// What the harness knows of one storage (by id): its byte image (storages
// parameters live in) and the writes it made to it.
struct StorageRecord {
  std::vector<uint8_t> image;
  uint64_t writes = 0;
};

// One slot the faults can hit, with what the harness knows of it.
struct SlotInfo {
  absl::string_view name;  // owners keep their slot names alive
  TensorSlot* slot;
  bool is_parameter;
  int64_t bucket;   // a static buffer of this bucket's graph; 0 for model slots
  bool touched;     // read or written by the captured step
  int source = -1;  // derived slots: the index of their source parameter
  int derived = -1;         // parameters: the index of the slot derived from it
  TensorIdentity expected;  // the identity the harness expects it to have
  // Parameters: where the value lives in the harness's byte image (the
  // storage's record, kept so the hot paths need no lookup by id).
  uint64_t image_storage = 0;
  size_t image_offset = 0;
  StorageRecord* image = nullptr;
  // Derived slots: the source identity and write count at the last refresh,
  // and their own storage and its write count then (a write by anything but
  // the refresh makes them stale too).
  TensorIdentity refreshed_source;
  uint64_t refreshed_writes = 0;
  uint64_t refreshed_storage = 0;
  uint64_t refreshed_own_writes = 0;
  bool ever_refreshed = false;
};

// The weights one norm of the reference reads.
struct RefNorm {
  int param = -1;
  enum Kind { kPlain, kZeroCentred, kGated } kind = kPlain;
};

struct RefLayer {
  bool full = true;  // q/k norms (else, Qwen3.5: the gated linear norm)
  RefNorm in, post, pre_ff, post_ff, q, k, linear;
  // The step outputs of the layer's q/k and linear norms, by name.
  std::string q_out, k_out, linear_out;
};

// One output of the reference step: its step tensor name and bytes.
struct RefOutput {
  std::string name;
  std::vector<uint8_t> bytes;
};

// A slot the harness owns, which the captured step writes at an offset inside
// it: a copy of the step's hidden_states into its second half, before the
// stack's forward. Every kernel of the stacks takes whole slot tensors, so
// without it no graph node's argument starts past its slot's first byte, and
// a rebind that patches such an argument (base + offset) is never exercised.
class OffsetProbe : public TensorOwner {
 public:
  static constexpr absl::string_view kName = "harness.offset_probe";
  void ForEachSlot(SlotVisitor visit) override { visit(kName, *slot); }
  std::unique_ptr<TensorSlot> slot;
};

class Harness {
 public:
  Harness(Config config, FuzzMode mode)
      : config_(std::move(config)), mode_(mode) {}

  absl::Status Init() {
    captured_.resize(buckets().size());
    structure_changed_.resize(buckets().size());
    invalidated_.assign(buckets().size(), false);
    NG_ASSIGN_OR_RETURN(model_, MakeModel(config_));
    specs_by_batch_.resize(kTooLargeBatch + 1);
    InventoryModel();
    NG_RETURN_IF_ERROR(InventoryProbe());
    NG_RETURN_IF_ERROR(BuildReferencePlan());
    InstallSelfTestFault();
    InstallFailingHooks();
    options_.policy = config_.policy;
    options_.check_freshness = mode_ != FuzzMode::kNoFreshness;
    // Weight sets A and B (for swaps): fixed per input.
    NG_RETURN_IF_ERROR(LoadGenerated(0, 11, 0, ""));
    // Capture right after the first load, as a server does at startup.
    NG_RETURN_IF_ERROR(Graphs().status());

    return absl::OkStatus();
  }

  // Every input ends with a replay, so every state it built is checked.
  absl::Status FinalReplay() { return Replay(); }

  bool done() const {
    return steps_ >= kMaxSteps || loaded_elements_ >= kMaxLoadedElements;
  }

  absl::Status Step(Reader& r, int depth = 0) {
    uint8_t op_byte, a = 0, b = 0, c = 0;
    if (done() || !r.Byte(&op_byte)) return absl::OkStatus();
    ++steps_;
    const uint8_t op = op_byte % kNumOps;
    if (Tracing()) {
      std::fprintf(stderr, "%*sop %s (step %d)\n", 2 * depth, "", kOpNames[op],
                   steps_);
    }
    switch (op) {
      case kLoad:
        if (!r.Byte(&a) || !r.Byte(&b) || !r.Byte(&c)) return absl::OkStatus();
        // The op byte's high nibble: LoadOptionBits. The seed byte's bit 7
        // (with a safetensors image): through a checkpoint directory, bit 6
        // sharded, bit 5 under a multimodal model's prefix, bit 4 with the
        // prefix detected, bit 3 with non-finite values refused (FileBits).
        return LoadGenerated(a, 1000 + b, c, op_byte >> 4 ? " (options)" : "",
                             op_byte >> 4, b & 0x80 ? b & 0xF8 : 0);
      case kSwap:
        if (!r.Byte(&a)) return absl::OkStatus();
        return LoadGenerated(0, a & 1 ? 22 : 11, 0, " (swap)");
      case kInputs:
        if (!r.Byte(&a)) return absl::OkStatus();
        input_seed_ = Mix(7919 * a + steps_);
        return absl::OkStatus();
      case kBatch:
        if (!r.Byte(&a)) return absl::OkStatus();
        batch_ = a & 0x80 ? kTooLargeBatch : 1 + a % kLargestBucket;
        return absl::OkStatus();
      case kReplay:
        // The op byte's bits 5 to 7 all set: a burst of hundreds of replays
        // (the next byte says how many). Rare: a burst costs hundreds of
        // inputs' time.
        if ((op_byte & 0xE0) == 0xE0 && r.Byte(&a)) return Burst(a);
        return Replay();
      case kEager:
        return Eager();
      case kRecapture:
        if (graphs_ == nullptr) return absl::OkStatus();
        // The op byte's bit 5: a module's structure changes (the next byte
        // picks it); else bit 4: the graphs are invalidated (each recaptures
        // before its next replay); else both recapture now.
        if (op_byte & 0x20) {
          if (!r.Byte(&a)) return absl::OkStatus();
          return ChangeStructure(a);
        }
        if (op_byte & 0x10) {
          graphs_->Invalidate();
          invalidated_.assign(buckets().size(), true);
          return absl::OkStatus();
        }
        NG_RETURN_IF_ERROR(graphs_->Recapture());
        NG_RETURN_IF_ERROR(
            CheckIdentities([] { return std::string("a recapture"); }));
        for (int64_t bucket : buckets()) RecordCaptured(bucket);
        return absl::OkStatus();
      case kPolicy:
        if (!r.Byte(&a)) return absl::OkStatus();
        if (mode_ != FuzzMode::kUncheckedLegacy &&
            mode_ != FuzzMode::kNoFreshness) {
          const ReplayPolicy policies[] = {ReplayPolicy::kFail,
                                           ReplayPolicy::kRecapture,
                                           ReplayPolicy::kRebind};
          options_.policy = policies[a % 3];
          if (graphs_ != nullptr) graphs_->set_policy(options_.policy);
        }
        return absl::OkStatus();
      case kRebindAlive:
        if (!r.Byte(&a) || !r.Byte(&b)) return absl::OkStatus();
        // The op byte's bit 4: a transient layout change instead.
        if (op_byte & 0x10) return ProbeLayoutChange(a % slots_.size());
        return RebindAlive(a % slots_.size(), Mix(b + 31 * steps_));
      case kFreeRealloc:
        if (!r.Byte(&a) || !r.Byte(&b)) return absl::OkStatus();
        // The op byte's bit 4: the same memory in a new storage instead.
        if (op_byte & 0x10) return Rewrap(a % slots_.size(), b & 1);
        return FreeRealloc(a % slots_.size(), b & 1);
      case kStale:
        if (!r.Byte(&a) || !r.Byte(&b)) return absl::OkStatus();
        return WriteWithoutRefresh(a, b & 1, Mix(b + 37 * steps_));
      case kReslice:
        if (!r.Byte(&a) || !r.Byte(&b)) return absl::OkStatus();
        return Reslice(a % slots_.size(), b);
      case kTie:
        if (!r.Byte(&a) || !r.Byte(&b)) return absl::OkStatus();
        return Tie(a, b);
      case kPack:
        if (!r.Byte(&a) || !r.Byte(&b)) return absl::OkStatus();
        // The op byte's bit 4: derived buffers (bit 5: with parameters of
        // their dtype) instead.
        if (op_byte & 0x10) return PackDerived(a, b, op_byte & 0x20);
        return Pack(a, b);
      case kUpdates: {
        // The high nibble of the op byte picks the count: mostly a few, and
        // 64 or 128 (so a 4-byte input reaches a fault on the 50th or 100th
        // load of a module) one time in eight; a REPEAT of it goes on to
        // kMaxLoads.
        static constexpr int kCounts[16] = {1, 1, 1, 1, 2,  2,  2,  3,
                                            3, 4, 5, 8, 16, 32, 64, 128};
        if (!r.Byte(&a)) return absl::OkStatus();
        const int count = kCounts[op_byte >> 4];
        for (int i = 0; i < count && loads_ < kMaxLoads && !done(); ++i) {
          NG_RETURN_IF_ERROR(
              LoadGenerated(0, 1000 + a, a & ~(32 | 64), " (update)"));
        }
        return absl::OkStatus();
      }
      case kRepeat: {
        if (!r.Byte(&a) || !r.Byte(&b)) return absl::OkStatus();
        if (depth >= 2) return absl::OkStatus();  // its block runs once
        // Three counts in four run 2-5 times, the rest 2-128 times (long
        // runs reach a fault on the Nth load; short ones are cheap).
        const int times = a < 0xC0 ? 2 + a % 4 : 2 + (a - 0xC0) * 2;
        const int length = 1 + b % 4;
        const size_t start = r.pos();
        size_t end = start;
        for (int t = 0; t < times && !done(); ++t) {
          r.Seek(start);
          for (int i = 0; i < length; ++i) {
            NG_RETURN_IF_ERROR(Step(r, depth + 1));
          }
          end = std::max(end, r.pos());
        }
        r.Seek(end);
        return absl::OkStatus();
      }
    }
    return absl::OkStatus();
  }

 private:
  // --- inventory ----------------------------------------------------------

  void InventoryModel() {
    model_->ForEachSlot([&](absl::string_view name, TensorSlot& slot) {
      SlotInfo s;
      s.name = name;
      s.slot = &slot;
      s.is_parameter = slot.kind() == SlotKind::kParameter;
      s.bucket = 0;
      s.touched = true;  // read by some norm (unless the source of a buffer)
      s.expected = slot.tensor().Identity();
      if (s.is_parameter) {
        const Tensor& t = slot.tensor();
        s.image_storage = t.storage()->id();
        s.image_offset = t.offset_bytes();
        s.image = &Record(s.image_storage);
        s.image->image.resize(t.storage()->bytes());
      }
      slots_.push_back(std::move(s));
    });
    for (size_t i = 0; i < slots_.size(); ++i) {
      const TensorSlot* source = slots_[i].slot->source();
      if (source == nullptr) continue;
      for (size_t j = 0; j < slots_.size(); ++j) {
        if (slots_[j].slot == source) {
          slots_[i].source = static_cast<int>(j);
          slots_[j].derived = static_cast<int>(i);
          // The kernels read the derived buffer, not its source.
          slots_[j].touched = false;
        }
      }
    }
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].is_parameter) params_.push_back(static_cast<int>(i));
      if (slots_[i].source >= 0) derived_.push_back(static_cast<int>(i));
      index_[slots_[i].name] = static_cast<int>(i);  // names outlive index_
    }
    model_slots_ = slots_.size();
  }

  // The offset probe (OffsetProbe), among the slots the faults can move.
  absl::Status InventoryProbe() {
    NG_ASSIGN_OR_RETURN(
        Tensor probe,
        Tensor::Empty(DeviceAllocator(), {ProbeOffset() * 2}, config_.dtype));
    probe_.slot = std::make_unique<TensorSlot>(SlotKind::kBuffer, probe);
    SlotInfo s;
    s.name = OffsetProbe::kName;
    s.slot = probe_.slot.get();
    s.is_parameter = false;
    s.bucket = 0;
    s.touched = true;
    s.expected = probe.Identity();
    slots_.push_back(std::move(s));
    return absl::OkStatus();
  }

  // Elements before the probe's copy (the largest bucket's hidden_states).
  int64_t ProbeOffset() const { return kLargestBucket * config_.hidden; }

  // The captured step's first node: hidden_states into the probe's second
  // half.
  absl::Status CopyIntoProbe(Stream& stream, const StepBuffers& step) {
    NG_ASSIGN_OR_RETURN(const Tensor hidden, step.Get("hidden_states"));
    NG_ASSIGN_OR_RETURN(
        const Tensor dst,
        probe_.slot->tensor().Narrow(0, ProbeOffset(), hidden.numel()));
    CopyParams p{
        hidden.data(), dst.data(),
        static_cast<int64_t>(hidden.numel() * DTypeSize(hidden.dtype()))};
    return stream.Launch(
        CopyKernel(), p,
        {{&p.src, &hidden, Access::kRead}, {&p.dst, &dst, Access::kWrite}});
  }

  // After a replay in `bucket` (poisoned before it): the probe's second half
  // holds the step's hidden_states (the batch's rows, then zero padding)
  // when the graph ran (`ran`), and every other byte is still poison.
  absl::Status CheckProbe(const StepBuffers& io, int64_t bucket, bool ran,
                          const std::vector<std::string>& expected) {
    NG_ASSIGN_OR_RETURN(HostBytes probe, HostBytes::Of(probe_.slot->tensor()));
    const size_t es = DTypeSize(config_.dtype);
    const size_t begin = ProbeOffset() * es;
    const size_t rows = batch_ * config_.hidden * es;
    const size_t end = begin + bucket * config_.hidden * es;
    // The step's input rows (a host copy on a device: kept in scope).
    HostBytes input;
    if (ran) {
      NG_ASSIGN_OR_RETURN(const Tensor hidden, io.Get("hidden_states"));
      NG_RETURN_IF_ERROR(input.Read(hidden));
    }
    const uint8_t* in = input.data();
    for (size_t j = 0; j < probe.size(); ++j) {
      uint8_t want = 0xFF;
      if (ran && j >= begin && j < end) {
        want = j - begin < rows ? in[j - begin] : 0;
      }
      if (probe.data()[j] != want) {
        return Finding(absl::StrCat(
            OffsetProbe::kName, " byte ", j,
            " (its copy of hidden_states starts at byte ", begin, ") holds ",
            absl::Hex(probe.data()[j], absl::kZeroPad2), ", expected ",
            absl::Hex(want, absl::kZeroPad2), ran ? "" : " (a refused replay)",
            State(expected)));
      }
    }
    return absl::OkStatus();
  }

  // The static buffers of a bucket's graph.
  void InventoryStatics(int64_t bucket) {
    bool any_full = false, any_linear = false;
    for (const RefLayer& l : ref_layers_) {
      any_full |= l.full && config_.qk_norm;
      any_linear |= !l.full;
    }
    graphs_->static_buffers(bucket).ForEachSlot(
        [&](absl::string_view name, TensorSlot& slot) {
          const bool attention_input =
              absl::EndsWith(name, ".q") || absl::EndsWith(name, ".k");
          const bool linear_input = absl::StrContains(name, ".linear_");
          SlotInfo s;
          s.name = name;
          s.slot = &slot;
          s.is_parameter = false;
          s.bucket = bucket;
          s.touched =
              !(attention_input && !any_full) && !(linear_input && !any_linear);
          s.expected = slot.tensor().Identity();
          slots_.push_back(std::move(s));
        });
  }

  int ParamIndex(absl::string_view name) const {
    auto it = index_.find(name);
    return it == index_.end() || !slots_[it->second].is_parameter ? -1
                                                                  : it->second;
  }

  // Which parameter each norm of the reference reads, by checkpoint name.
  absl::Status BuildReferencePlan() {
    const bool zc = config_.kind != StackKind::kQwen3;
    const RefNorm::Kind residual_kind =
        zc ? RefNorm::kZeroCentred : RefNorm::kPlain;
    auto norm = [&](const std::string& name, RefNorm::Kind kind,
                    RefNorm* out) -> absl::Status {
      out->param = ParamIndex(name);
      out->kind = kind;
      if (out->param < 0) {
        return Finding(absl::StrCat("the model has no parameter ", name, " (",
                                    DescribeConfig(config_), ")"));
      }
      const bool derived = slots_[out->param].derived >= 0;
      if (derived != (kind == RefNorm::kZeroCentred)) {
        return Finding(absl::StrCat(name, derived ? " has" : " has no",
                                    " derived buffer (",
                                    DescribeConfig(config_), ")"));
      }
      return absl::OkStatus();
    };
    for (int64_t i = 0; i < config_.layers; ++i) {
      const std::string p = absl::StrCat("model.layers.", i, ".");
      RefLayer l;
      l.q_out = absl::StrCat("layers.", i, ".q_normed");
      l.k_out = absl::StrCat("layers.", i, ".k_normed");
      l.linear_out = absl::StrCat("layers.", i, ".linear_out");
      l.full = config_.kind != StackKind::kQwen35 ||
               config_.layer_types[i] == Qwen35LayerType::kFullAttention;
      NG_RETURN_IF_ERROR(
          norm(p + "input_layernorm.weight", residual_kind, &l.in));
      NG_RETURN_IF_ERROR(
          norm(p + "post_attention_layernorm.weight", residual_kind, &l.post));
      if (config_.kind == StackKind::kGemma3) {
        NG_RETURN_IF_ERROR(norm(p + "pre_feedforward_layernorm.weight",
                                residual_kind, &l.pre_ff));
        NG_RETURN_IF_ERROR(norm(p + "post_feedforward_layernorm.weight",
                                residual_kind, &l.post_ff));
      }
      if (l.full && config_.qk_norm) {
        NG_RETURN_IF_ERROR(
            norm(p + "self_attn.q_norm.weight", residual_kind, &l.q));
        NG_RETURN_IF_ERROR(
            norm(p + "self_attn.k_norm.weight", residual_kind, &l.k));
      }
      if (!l.full) {
        NG_RETURN_IF_ERROR(
            norm(p + "linear_attn.norm.weight", RefNorm::kGated, &l.linear));
      }
      ref_layers_.push_back(l);
    }
    NG_RETURN_IF_ERROR(norm("model.norm.weight", residual_kind, &ref_final_));
    int referenced = 0;
    for (const RefLayer& l : ref_layers_) {
      for (const RefNorm* n :
           {&l.in, &l.post, &l.pre_ff, &l.post_ff, &l.q, &l.k, &l.linear}) {
        referenced += n->param >= 0;
      }
    }
    if (referenced + 1 != static_cast<int>(params_.size())) {
      return Finding(absl::StrCat(
          "the model has ", params_.size(), " parameters, the reference reads ",
          referenced + 1, " (", DescribeConfig(config_), ")"));
    }
    return absl::OkStatus();
  }

  // --- the harness's value image -------------------------------------------

  // The record of storage `id` (made on first use; never removed, so
  // pointers to it stay valid for the input).
  StorageRecord& Record(uint64_t id) {
    std::unique_ptr<StorageRecord>& r = storages_[id];
    if (r == nullptr) r = std::make_unique<StorageRecord>();
    return *r;
  }

  uint8_t* ImageOf(const SlotInfo& s) {
    return s.image->image.data() + s.image_offset;
  }
  int64_t Numel(const SlotInfo& s) const { return s.slot->tensor().numel(); }
  size_t Bytes(const SlotInfo& s) const {
    return Numel(s) * DTypeSize(s.slot->tensor().dtype());
  }

  // Points parameter `s` at its slot's current tensor in the image (a new
  // storage gets an image of its size).
  void Relocate(SlotInfo& s) {
    const Tensor& t = s.slot->tensor();
    s.image_storage = t.storage()->id();
    s.image_offset = t.offset_bytes();
    s.image = &Record(s.image_storage);
    std::vector<uint8_t>& img = s.image->image;
    if (img.size() < t.storage()->bytes()) img.resize(t.storage()->bytes());
  }

  // --- freshness model ------------------------------------------------------

  void Wrote(const Tensor& t) {
    if (t.defined()) ++Record(t.storage()->id()).writes;
  }

  // The harness's count of writes to the storage of `p`'s tensor (`p` a
  // parameter): its image record when the tensor is where the harness put
  // it (always, unless the product moved it), else by storage id.
  uint64_t& WritesOf(const SlotInfo& p) {
    const uint64_t id = p.slot->tensor().storage()->id();
    return id == p.image_storage ? p.image->writes : Record(id).writes;
  }

  void MarkRefreshed(SlotInfo& d) {
    const Tensor& src = slots_[d.source].slot->tensor();
    if (!src.defined()) return;
    if (!SameIdentity(src, d.refreshed_source)) {
      AssignIdentity(src, d.refreshed_source);
    }
    d.refreshed_writes = WritesOf(slots_[d.source]);
    const Tensor& own = d.slot->tensor();
    if (own.defined()) {
      d.refreshed_storage = own.storage()->id();
      d.refreshed_own_writes = Record(d.refreshed_storage).writes;
    }
    d.ever_refreshed = true;
  }

  void MarkAllRefreshed() {
    for (int i : derived_) MarkRefreshed(slots_[i]);
  }

  bool ExpectStale(const SlotInfo& d) {
    const Tensor& src = slots_[d.source].slot->tensor();
    if (!src.defined() || !d.ever_refreshed) return true;
    const Tensor& own = d.slot->tensor();
    if (own.defined() &&
        (own.storage()->id() != d.refreshed_storage ||
         Record(d.refreshed_storage).writes != d.refreshed_own_writes)) {
      return true;
    }
    return !SameIdentity(src, d.refreshed_source) ||
           WritesOf(slots_[d.source]) != d.refreshed_writes;
  }

  // --- identities -----------------------------------------------------------

  // Says what was checked, only when a finding needs the words.
  using Describe = absl::FunctionRef<std::string()>;

  // After a product call: no slot moved unless the harness moved it. With the
  // pre-fix loader, a derived buffer's refresh moves it (its known bug, which
  // the graph check must catch): accepted.
  absl::Status CheckIdentities(Describe after) {
    std::vector<std::string> moved;
    for (SlotInfo& s : slots_) {
      const Tensor& t = s.slot->tensor();
      if (SameIdentity(t, s.expected)) continue;
      if (config_.legacy && s.source >= 0 && t.defined()) {
        AssignIdentity(t, s.expected);
        continue;
      }
      moved.push_back(
          absl::StrCat(s.name, " from ", s.expected.ToString(), " to ",
                       t.defined() ? t.Identity().ToString() : "nothing",
                       " (rebound at ", s.slot->last_rebind().ToString(), ")"));
    }
    if (moved.empty()) return absl::OkStatus();
    return Finding(absl::StrCat("tensor moved by ", after(), ": ",
                                absl::StrJoin(moved, "; "), State()));
  }

  // After a product call: every parameter holds the harness's value and every
  // derived buffer the harness expects fresh holds 1 + w.
  absl::Status CheckValues(Describe after) {
    std::vector<std::string> wrong;
    HostBytes now;
    for (int i : params_) {
      SlotInfo& s = slots_[i];
      NG_RETURN_IF_ERROR(now.Read(s.slot->tensor()));
      const uint8_t* want = ImageOf(s);
      if (std::memcmp(now.data(), want, Bytes(s)) == 0) continue;
      const DType dtype = s.slot->tensor().dtype();
      const size_t size = DTypeSize(dtype);
      for (int64_t j = 0; j < Numel(s); ++j) {
        if (std::memcmp(now.data() + j * size, want + j * size, size) != 0) {
          wrong.push_back(absl::StrCat(s.name, "[", j, "] holds ",
                                       ValueText(dtype, now.data() + j * size),
                                       ", the loaded value is ",
                                       ValueText(dtype, want + j * size)));
          break;
        }
      }
    }
    for (int i : derived_) {
      SlotInfo& d = slots_[i];
      if (ExpectStale(d)) continue;
      std::string why;
      NG_RETURN_IF_ERROR(DerivedHoldsOnePlusW(d, &why));
      if (!why.empty()) wrong.push_back(why);
    }
    if (wrong.empty()) return absl::OkStatus();
    return Finding(absl::StrCat("wrong value after ", after(), ": ",
                                absl::StrJoin(wrong, "; "), State()));
  }

  absl::Status DerivedHoldsOnePlusW(SlotInfo& d, std::string* why) {
    const SlotInfo& src = slots_[d.source];
    HostBytes now;
    NG_RETURN_IF_ERROR(now.Read(d.slot->tensor()));
    const DType w_dtype = src.slot->tensor().dtype();
    const uint8_t* w = ImageOf(src);
    const int64_t n = Numel(src);
    if (now.size() != static_cast<size_t>(n) * 4) {
      *why = absl::StrCat(d.name, " has ", now.size(), " bytes; its source ",
                          src.name, " has ", n, " elements");
      return absl::OkStatus();
    }
    // 1 + w for every element, then one comparison of the bytes (as the
    // element-by-element comparison below, which runs only to name the first
    // element that differs).
    one_plus_w_.resize(n);
    OnePlusValues(w_dtype, w, n, one_plus_w_.data());
    if (std::memcmp(now.data(), one_plus_w_.data(), now.size()) == 0) {
      return absl::OkStatus();
    }
    for (int64_t j = 0; j < n; ++j) {
      float have;
      std::memcpy(&have, now.data() + 4 * j, 4);
      const float want = one_plus_w_[j];
      if (std::memcmp(&have, &want, 4) != 0) {
        *why = absl::StrCat(
            d.name, "[", j, "] holds ",
            ValueText(DType::kF32, now.data() + 4 * j), ", but 1 + ", src.name,
            "[", j, "] = ",
            ValueText(DType::kF32, reinterpret_cast<const uint8_t*>(&want)),
            d.slot->IsStale() ? " (flagged stale)" : " (not flagged stale)");
        return absl::OkStatus();
      }
    }
    return absl::OkStatus();
  }

  absl::Status CheckState(Describe after) {
    NG_RETURN_IF_ERROR(CheckIdentities(after));
    return CheckValues(after);
  }

  std::string State(const std::vector<std::string>& expected = {}) const {
    return absl::StrCat(" [", DescribeConfig(config_), "; policy ",
                        ReplayPolicyName(options_.policy), ", batch ", batch_,
                        ", step ", steps_, ", load #", loads_,
                        expected.empty() ? "" : ", expected violations {",
                        absl::StrJoin(expected, ", "),
                        expected.empty() ? "" : "}", "]");
  }

  // --- weight loads ---------------------------------------------------------

  // What a load of (mask, flags) sends to the loader, built once per input
  // and reused with new values (the safetensors image too: its header stays,
  // its data section is rewritten in place, as a checkpoint file rewritten
  // between reads would be). Plans are not shared between inputs: in
  // libFuzzer + ASan builds, memory an input allocates and keeps makes
  // libFuzzer run that input again to look for a leak, which cost more (19%
  // instead of 8% of a sanitized run) than building the plans saves.
  struct LoadPlan {
    std::vector<int> picked;  // parameters, in the order given to the set
    int converted = 0;  // tensors whose dtype differs from the parameter's
    bool invalid = false, extra = false, duplicate = false;
    std::string bad_name;  // the tensor of a wrong shape (invalid)
    // The extra tensor's name (extra, not duplicate): a derived buffer's
    // (which no loader may write) when the mask's bit 7 is set and the model
    // has one, else model.unexpected.weight.
    std::string extra_name;
    // Per tensor, in the loader's order: where its bytes are, its dtype,
    // element count and parameter (-1: the extra tensor).
    std::vector<uint8_t*> data;
    std::vector<DType> dtypes;
    std::vector<int64_t> numel;
    std::vector<int> param;
    std::vector<std::pair<std::string, Tensor>> tensors;  // from memory
    std::unique_ptr<safetensors::SafetensorsFile> file;   // or from an image
    std::optional<WeightSet> set;
  };

  absl::StatusOr<LoadPlan*> Plan(uint8_t mask, uint8_t flags) {
    static constexpr DType kDTypes[] = {DType::kF32, DType::kBF16, DType::kF16};
    if (mask == 0) mask = 0xFF;
    std::unique_ptr<LoadPlan>& cached = plans_[mask << 8 | flags];
    if (cached != nullptr) return cached.get();
    auto plan = std::make_unique<LoadPlan>();
    for (size_t i = 0; i < params_.size(); ++i) {
      if (mask == 0xFF || ((mask >> (i % 8)) & 1)) {
        plan->picked.push_back(params_[i]);
      }
    }
    if (flags & 16) std::reverse(plan->picked.begin(), plan->picked.end());
    plan->invalid = (flags & 32) != 0 && !plan->picked.empty();
    plan->extra = (flags & 64) != 0;
    // Both, from memory: the extra tensor repeats the first picked name
    // instead (a refusal naming it), and none has a wrong shape.
    plan->duplicate = plan->invalid && plan->extra && !(flags & 1);
    if (plan->duplicate) plan->invalid = false;
    // Every source tensor is a view of one host storage.
    std::vector<Shape> shapes;
    std::vector<DType> dtypes;
    size_t total = 0;
    for (size_t k = 0; k < plan->picked.size(); ++k) {
      const SlotInfo& s = slots_[plan->picked[k]];
      const DType param_dtype = s.slot->tensor().dtype();
      // With bit 3 too, each tensor's dtype is the next one's neighbour
      // (mixed dtypes in one set).
      const size_t rotate = flags & 8 ? k : 0;
      dtypes.push_back(flags & 2 ? kDTypes[(((flags & 0x7F) >> 2) + rotate) % 3]
                                 : param_dtype);
      shapes.push_back(s.slot->tensor().shape());
      if (plan->invalid && k + 1 == plan->picked.size()) {
        shapes.back() = {Numel(s) + 1};
      }
      plan->converted += dtypes.back() != param_dtype;
      int64_t n = 1;
      for (int64_t d : shapes.back()) n *= d;
      total += (n * DTypeSize(dtypes.back()) + 15) / 16 * 16;
    }
    if (plan->duplicate) {  // loadable, but for its name
      shapes.push_back(shapes[0]);
      dtypes.push_back(dtypes[0]);
      total += Bytes(slots_[plan->picked[0]]) * 4 + 16;
    } else if (plan->extra) {
      shapes.push_back({3});
      dtypes.push_back(DType::kF32);
      total += 16;
      plan->extra_name = "model.unexpected.weight";
      if ((mask & 0x80) && !derived_.empty()) {
        plan->extra_name = std::string(slots_[derived_[0]].name);
      }
    }
    NG_ASSIGN_OR_RETURN(std::shared_ptr<Storage> host,
                        Storage::Allocate(CpuAllocator(), total));
    size_t offset = 0;
    for (size_t k = 0; k < shapes.size(); ++k) {
      NG_ASSIGN_OR_RETURN(
          Tensor t,
          Tensor::FromStorage(host, offset, shapes[k],
                              ContiguousStrides(shapes[k]), dtypes[k]));
      offset += (t.numel() * DTypeSize(dtypes[k]) + 15) / 16 * 16;
      const bool is_extra = k == plan->picked.size();
      plan->tensors.emplace_back(!is_extra ? slots_[plan->picked[k]].name
                                 : plan->duplicate
                                     ? slots_[plan->picked[0]].name
                                     : plan->extra_name,
                                 std::move(t));
    }
    if (plan->invalid) {
      plan->bad_name = plan->tensors[plan->picked.size() - 1].first;
    }
    if (flags & 1) {
      std::vector<safetensors::NamedView> views;
      for (const auto& [name, t] : plan->tensors) {
        views.push_back({name, ViewOf(t)});
      }
      NG_ASSIGN_OR_RETURN(std::string bytes, safetensors::Serialize(views));
      auto image = std::make_shared<std::string>(std::move(bytes));
      NG_ASSIGN_OR_RETURN(auto parsed,
                          safetensors::SafetensorsFile::FromBytes(image));
      plan->file =
          std::make_unique<safetensors::SafetensorsFile>(std::move(parsed));
      NG_RETURN_IF_ERROR(CheckParsedImage(*image, *plan));
      for (const safetensors::TensorEntry& e : plan->file->tensors()) {
        // The image is ours (FromBytes keeps the string alive): rewritable.
        plan->data.push_back(
            const_cast<uint8_t*>(static_cast<const uint8_t*>(e.view().data)));
        plan->dtypes.push_back(*e.dtype);
        plan->numel.push_back(static_cast<int64_t>(e.bytes) /
                              static_cast<int64_t>(DTypeSize(*e.dtype)));
        plan->param.push_back(ParamIndex(e.name));
      }
      plan->set = WeightSet::FromSafetensors(*plan->file);
    } else {
      for (const auto& [name, t] : plan->tensors) {
        plan->data.push_back(static_cast<uint8_t*>(t.data()));
        plan->dtypes.push_back(t.dtype());
        plan->numel.push_back(t.numel());
        plan->param.push_back(ParamIndex(name));
      }
      NG_ASSIGN_OR_RETURN(WeightSet set, WeightSet::FromTensors(plan->tensors));
      plan->set = std::move(set);
    }
    cached = std::move(plan);
    return cached.get();
  }

  // The parsed image's entries are the tensors written, each at the bytes
  // the harness computes itself (the data section follows the 8-byte length
  // and the header; the writer puts the tensors there in order, unpadded):
  // the values the harness generates go through these views, so a reader
  // that gave a tensor another's bytes, dtype or shape would otherwise
  // corrupt the model and the harness's image alike.
  absl::Status CheckParsedImage(const std::string& image,
                                const LoadPlan& plan) {
    uint64_t header = 0;
    for (int i = 7; i >= 0; --i)
      header = header << 8 | static_cast<uint8_t>(image[i]);
    const uint8_t* at = reinterpret_cast<const uint8_t*>(image.data()) + 8 +
                        static_cast<size_t>(header);
    const std::vector<safetensors::TensorEntry>& entries = plan.file->tensors();
    if (entries.size() != plan.tensors.size()) {
      return Finding(absl::StrCat("safetensors image of ", plan.tensors.size(),
                                  " tensors parsed as ", entries.size()));
    }
    for (const auto& named : plan.tensors) {
      // (not a structured binding: the lambda below captures the name)
      const std::string& name = named.first;
      const Tensor& t = named.second;
      const size_t bytes = t.numel() * DTypeSize(t.dtype());
      const auto e = std::find_if(
          entries.begin(), entries.end(),
          [&](const safetensors::TensorEntry& e) { return e.name == name; });
      if (e == entries.end() || e->dtype != t.dtype() ||
          e->shape != t.shape() || e->data != at || e->bytes != bytes) {
        return Finding(absl::StrCat(
            "safetensors image: ", name, " ", DTypeName(t.dtype()),
            ShapeToString(t.shape()), " written at data byte ",
            at - reinterpret_cast<const uint8_t*>(image.data()), " (", bytes,
            " bytes) parsed as ",
            e == entries.end()
                ? std::string("missing")
                : absl::StrCat(
                      e->dtype_name, ShapeToString(e->shape), " at byte ",
                      e->data - reinterpret_cast<const uint8_t*>(image.data()),
                      " (", e->bytes, " bytes)")));
      }
      at += bytes;
    }
    return absl::OkStatus();
  }

  // Loads generated weights into the parameters `mask` picks (bit i % 8 picks
  // parameter i; 0 or 0xFF: all), as `flags` says: bit 0 through a
  // safetensors image; bit 1 with the source in dtype ((flags & 0x7F) >> 2) %
  // 3 (with bit 3, plus the tensor's position: mixed); bit 4 in reverse order;
  // bit 5 with one tensor of a wrong shape (the load must fail and change
  // nothing); bit 6 with an unexpected extra tensor (with bit 5 and not bit
  // 0: a second tensor of the first picked name instead of either, refused);
  // bit 7 with values of a wide range, rounding ties and special values
  // (GenerateWideValues). `option_bits` (LoadOptionBits) says what the loader
  // allows and whether a parameter's loader fails mid-way; `file_bits` whether
  // the load goes through checkpoint files (LoadThroughFiles).
  enum LoadOptionBits : uint8_t {
    kNoMissing = 1,       // allow_missing false
    kFlipUnexpected = 2,  // ignore_unexpected not allow_missing's value
    kNoConversion = 4,    // allow_dtype_conversion false
    kFailingHook = 8,     // one picked parameter's after-load hook fails once
  };
  // How a load goes through checkpoint files (LoadThroughFiles).
  enum FileBits : uint8_t {
    kThroughFiles = 0x80,
    kSharded = 0x40,       // two shards and an index
    kPrefixed = 0x20,      // names under "model.language_model."
    kDetectPrefix = 0x10,  // the loader detects the prefix (kAutoPrefix)
    kCheckFinite = 0x08,   // NaN and infinite values refused
  };
  absl::Status LoadGenerated(uint8_t mask, uint64_t seed, uint8_t flags,
                             const char* kind, uint8_t option_bits = 0,
                             uint8_t file_bits = 0) {
    ++loads_;
    const int load = loads_;
    auto what = [&] {
      return load == 1 ? std::string("the initial load")
                       : absl::StrCat("load #", load, kind);
    };
    NG_ASSIGN_OR_RETURN(LoadPlan * plan, Plan(mask, flags));
    for (int64_t n : plan->numel) loaded_elements_ += n;
    // A swap loads the same values every time; other loads differ each time.
    const uint64_t values_seed = seed < 1000 ? seed : Mix(seed * 131 + loads_);
    for (size_t k = 0; k < plan->data.size(); ++k) {
      const int param = plan->param[k];
      const uint64_t tensor_seed =
          param < 0 ? seed : Mix(values_seed + 977 * param);
      if ((flags & 0x80) && param >= 0) {
        GenerateWideValues(tensor_seed, plan->numel[k], plan->dtypes[k],
                           plan->data[k]);
        continue;
      }
      GenerateValues(tensor_seed, param >= 0 && slots_[param].derived < 0,
                     param < 0 ? 0 : -2, plan->numel[k], plan->dtypes[k],
                     plan->data[k]);
    }
    if (Tracing()) {
      std::fprintf(
          stderr, "  %s: %d tensors%s%s%s%s\n", what().c_str(),
          static_cast<int>(plan->data.size()), flags & 1 ? ", safetensors" : "",
          plan->converted > 0 ? ", converted" : "",
          plan->invalid ? ", invalid" : "", plan->extra ? ", extra" : "");
    }

    LoadOptions options;
    options.allow_missing = !(option_bits & kNoMissing);
    options.ignore_unexpected =
        !(option_bits & kNoMissing) != ((option_bits & kFlipUnexpected) != 0);
    options.allow_dtype_conversion = !(option_bits & kNoConversion);
    // Every tensor the loader must refuse, by name (one problem each).
    std::vector<std::string> refused;
    const size_t picked = plan->picked.size();
    if (plan->invalid) refused.push_back(plan->bad_name);
    const std::vector<std::string> left_out = LeftOut(*plan);
    if (!options.allow_missing) {
      refused.insert(refused.end(), left_out.begin(), left_out.end());
    }
    if (plan->extra && !plan->duplicate && !options.ignore_unexpected) {
      refused.push_back(plan->extra_name);
    }
    if (plan->duplicate) refused.emplace_back(slots_[plan->picked[0]].name);
    if (!options.allow_dtype_conversion) {
      for (size_t k = 0; k < picked; ++k) {
        const std::string& name = plan->tensors[k].first;
        if (plan->tensors[k].second.dtype() !=
                slots_[plan->picked[k]].slot->tensor().dtype() &&
            !(plan->invalid && name == plan->bad_name)) {
          refused.push_back(name);
        }
      }
    }
    // A loader failing mid-way: the hook of one picked parameter fails the
    // next time it runs, before or after the module's own hook.
    int victim = -1;
    if ((option_bits & kFailingHook) && refused.empty() && picked > 0) {
      const uint64_t pick = Mix(seed * 7 + loads_);
      victim = plan->picked[pick % picked];
      failing_hook_ = victim;
      fail_after_module_hook_ = (pick >> 32) & 1;
      if (Tracing()) {
        std::fprintf(stderr, "  the loader of %s fails %s its module's hook\n",
                     std::string(slots_[victim].name).c_str(),
                     fail_after_module_hook_ ? "after" : "before");
      }
    }
    // The bytes of every derived buffer stale now: a failed load puts them
    // back as they were.
    std::vector<std::pair<int, HostBytes>> stale_before;
    if (victim >= 0) {
      for (int i : derived_) {
        if (!ExpectStale(slots_[i]) || !slots_[i].slot->tensor().defined()) {
          continue;
        }
        stale_before.emplace_back(i, HostBytes());
        NG_RETURN_IF_ERROR(
            stale_before.back().second.Read(slots_[i].slot->tensor()));
      }
    }
    // A load expected to succeed, of a safetensors image, may go through
    // files: the checkpoint directory loader (layers/checkpoint_dir.h). With
    // kCheckFinite it refuses the tensors holding NaN or infinity (after
    // their conversion), one line each.
    const bool through_files = (file_bits & kThroughFiles) && (flags & 1) &&
                               refused.empty() && victim < 0;
    std::vector<std::string> non_finite_lines;
    if (through_files && (file_bits & kCheckFinite)) {
      non_finite_lines = NonFiniteLines(*plan, CheckpointPrefix(file_bits));
      for (const std::string& line : non_finite_lines) {
        refused.push_back(line.substr(0, line.find(": ")));
      }
    }
    const absl::StatusOr<LoadReport> report =
        through_files ? LoadThroughFiles(*plan, options, file_bits)
                      : LoadWeights(*model_, *plan->set, options);
    failing_hook_ = -1;
    // LoadThroughFiles's own checks of the checkpoint report.
    if (IsFinding(report.status())) return report.status();
    if (Tracing() && !report.ok()) {
      std::fprintf(stderr, "  %s\n", report.status().ToString().c_str());
    }
    if (!refused.empty()) {
      // (Past kListedLoadProblems the refusal lists the first ones only.)
      for (const std::string& line : non_finite_lines) {
        if (!report.ok() && refused.size() <= kListedLoadProblems &&
            !absl::StrContains(report.status().message(), line)) {
          return Finding(absl::StrCat(what(), " did not say \"", line, "\": ",
                                      report.status().ToString(), State()));
        }
      }
      return CheckRefusedLoad(report, refused, what);
    }
    if (victim >= 0) {
      return CheckFailedLoad(report, *plan, victim, stale_before, what);
    }
    if (!report.ok()) {
      return Finding(absl::StrCat(
          what(), " failed: ", report.status().message(), State()));
    }
    if (report->loaded != static_cast<int>(picked) ||
        report->converted != plan->converted ||
        report->unexpected.size() != (plan->extra ? 1u : 0u) ||
        report->missing.size() != params_.size() - picked) {
      return Finding(absl::StrCat(
          what(), " reported ", report->loaded, " loaded, ", report->converted,
          " converted, ", report->missing.size(), " missing, ",
          report->unexpected.size(), " unexpected; expected ", picked, ", ",
          plan->converted, ", ", params_.size() - picked, ", ",
          plan->extra ? 1 : 0, State()));
    }
    // And by name: the parameters the load left out, the tensor it skipped.
    std::vector<std::string> missing(report->missing.begin(),
                                     report->missing.end());
    std::vector<std::string> expected_missing = left_out;
    std::sort(missing.begin(), missing.end());
    std::sort(expected_missing.begin(), expected_missing.end());
    if (missing != expected_missing ||
        (plan->extra && report->unexpected[0] != plan->extra_name)) {
      return Finding(absl::StrCat(
          what(), " reported missing {", absl::StrJoin(report->missing, ", "),
          "} and unexpected {", absl::StrJoin(report->unexpected, ", "),
          "}; expected missing {", absl::StrJoin(expected_missing, ", "), "}",
          plan->extra ? absl::StrCat(" and unexpected {", plan->extra_name, "}")
                      : "",
          State()));
    }
    // The image: each tensor in the loader's order, rounded to its
    // parameter's dtype (a later write through an alias wins). The
    // checkpoint directory loader writes in natural name order (digit runs
    // compared as numbers), whatever the files' order.
    std::vector<size_t> order;  // the tensors of parameters
    for (size_t k = 0; k < plan->data.size(); ++k) {
      if (plan->param[k] >= 0) order.push_back(k);
    }
    if (through_files) {
      std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return NaturalOrder(slots_[plan->param[a]].name,
                            slots_[plan->param[b]].name);
      });
    }
    for (const size_t k : order) {
      SlotInfo& s = slots_[plan->param[k]];
      const DType param_dtype = s.slot->tensor().dtype();
      const DType src_dtype = plan->dtypes[k];
      uint8_t* dst = ImageOf(s);
      const uint8_t* from = plan->data[k];
      if (src_dtype == param_dtype) {
        std::memcpy(dst, from, Bytes(s));
      } else {
        const size_t in = DTypeSize(src_dtype), out = DTypeSize(param_dtype);
        const int64_t n = Numel(s);
        for (int64_t j = 0; j < n; ++j) {
          StoreValue(param_dtype, DecodeValue(src_dtype, from + j * in),
                     dst + j * out);
        }
      }
      // Wrote(s.slot->tensor()), without the lookup by id.
      if (s.slot->tensor().defined()) ++WritesOf(s);
    }
    // The loader refreshed every derived buffer that was stale.
    MarkAllRefreshed();
    return CheckState(what);  // what() only when there is a finding
  }

  // The load of `plan`'s safetensors image through files: written into a
  // scratch directory as model.safetensors, or (`sharded`, two tensors or
  // more) as two shards and their index, its names under
  // "model.language_model." when `prefixed`; located and loaded by
  // LoadCheckpointFrom with the same options. Its report must say how many
  // shards it read and which tensor it skipped; returned as LoadWeights
  // would report it.
  // The prefix of the checkpoint names of a load through files.
  static std::string CheckpointPrefix(uint8_t file_bits) {
    return file_bits & kPrefixed ? "model.language_model."
                                 : std::string(kModelPrefix);
  }

  // The problem lines a checkpoint load with check_finite gives for `plan`:
  // one per tensor holding a NaN or an infinity in its parameter's dtype (a
  // finite value may round to infinity), by its checkpoint name.
  std::vector<std::string> NonFiniteLines(const LoadPlan& plan,
                                          const std::string& prefix) const {
    std::vector<std::string> lines;
    for (size_t k = 0; k < plan.data.size(); ++k) {
      if (plan.param[k] < 0) continue;
      const SlotInfo& s = slots_[plan.param[k]];
      const DType to = s.slot->tensor().dtype();
      const DType from = plan.dtypes[k];
      const size_t es = DTypeSize(from);
      int64_t bad = 0, first = 0;
      for (int64_t j = 0; j < plan.numel[k]; ++j) {
        uint8_t converted[4];
        StoreValue(to, DecodeValue(from, plan.data[k] + j * es), converted);
        if (std::isfinite(DecodeValue(to, converted))) continue;
        if (bad++ == 0) first = j;
      }
      if (bad == 0) continue;
      absl::string_view rest = s.name;
      absl::ConsumePrefix(&rest, kModelPrefix);
      lines.push_back(absl::StrCat(
          prefix, rest, ": ", bad, " of ", plan.numel[k],
          " values are NaN or infinite",
          to == from ? "" : absl::StrCat(" in ", safetensors::DTypeToName(to)),
          " (the first at index ", first, ")"));
    }
    return lines;
  }

  absl::StatusOr<LoadReport> LoadThroughFiles(const LoadPlan& plan,
                                              const LoadOptions& options,
                                              uint8_t file_bits) {
    const std::string prefix = CheckpointPrefix(file_bits);
    bool sharded = file_bits & kSharded;
    std::vector<safetensors::NamedView> views;
    for (const safetensors::TensorEntry& e : plan.file->tensors()) {
      absl::string_view rest = e.name;
      absl::ConsumePrefix(&rest, kModelPrefix);
      views.push_back({absl::StrCat(prefix, rest), e.view()});
    }
    const std::string& dir = CheckpointScratch();
    sharded = sharded && views.size() >= 2;
    if (!sharded) {
      NG_RETURN_IF_ERROR(safetensors::WriteFile(
          absl::StrCat(dir, "/", kScratchFiles[0]), views));
    } else {
      // Two shards of consecutive tensors: the loader's order stays the
      // image's.
      const size_t half = views.size() / 2;
      std::string map;
      for (int shard = 0; shard < 2; ++shard) {
        const absl::Span<const safetensors::NamedView> part =
            shard == 0 ? absl::MakeConstSpan(views).subspan(0, half)
                       : absl::MakeConstSpan(views).subspan(half);
        const char* file = kScratchFiles[2 + shard];
        NG_RETURN_IF_ERROR(
            safetensors::WriteFile(absl::StrCat(dir, "/", file), part));
        for (const safetensors::NamedView& v : part) {
          absl::StrAppend(&map, map.empty() ? "" : ",", "\"", v.name, "\":\"",
                          file, "\"");
        }
      }
      std::FILE* index =
          std::fopen(absl::StrCat(dir, "/", kScratchFiles[1]).c_str(), "w");
      if (index == nullptr) return absl::UnavailableError("index: cannot open");
      std::fprintf(index, "{\"metadata\": {}, \"weight_map\": {%s}}\n",
                   map.c_str());
      std::fclose(index);
    }
    // The prefix is detected from a layer's input_layernorm weight: with
    // none among the tensors, "model." is chosen, so only a load of one
    // (or of names under "model.") may leave it to detection.
    const bool detect =
        (file_bits & kDetectPrefix) &&
        (!(file_bits & kPrefixed) ||
         std::any_of(views.begin(), views.end(), [](const auto& v) {
           return absl::EndsWith(v.name, ".input_layernorm.weight");
         }));
    CheckpointOptions checkpoint;
    checkpoint.prefix = detect ? std::string(kAutoPrefix) : prefix;
    checkpoint.ignore_unexpected = options.ignore_unexpected;
    checkpoint.allow_missing = options.allow_missing;
    checkpoint.allow_dtype_conversion = options.allow_dtype_conversion;
    // Off, wide values overflow f16 as they do in memory.
    checkpoint.check_finite = file_bits & kCheckFinite;
    absl::StatusOr<CheckpointLocation> located = LocateCheckpoint(dir);
    absl::StatusOr<CheckpointReport> loaded =
        located.ok() ? LoadCheckpointFrom(*model_, *located, checkpoint)
                     : located.status();
    RemoveScratchFiles();
    NG_RETURN_IF_ERROR(loaded.status());
    const CheckpointLocation& location = *located;
    const CheckpointReport& report = *loaded;

    std::vector<std::string> skipped;
    if (plan.extra) {
      absl::string_view rest = plan.extra_name;
      absl::ConsumePrefix(&rest, kModelPrefix);
      skipped.push_back(absl::StrCat(prefix, rest));
    }
    // The tensors in the files, the bytes of those loaded, the conversions.
    int64_t bytes = 0;
    std::map<std::string, int> conversions;
    for (size_t k = 0; k < plan.data.size(); ++k) {
      if (plan.param[k] < 0) continue;
      const DType to = slots_[plan.param[k]].slot->tensor().dtype();
      bytes += plan.numel[k] * static_cast<int64_t>(DTypeSize(plan.dtypes[k]));
      if (plan.dtypes[k] != to) {
        ++conversions[absl::StrCat(safetensors::DTypeToName(plan.dtypes[k]),
                                   " -> ", safetensors::DTypeToName(to))];
      }
    }
    if (report.tensors != static_cast<int64_t>(views.size()) ||
        report.bytes != bytes || report.conversions != conversions) {
      auto text = [](const std::map<std::string, int>& m) {
        return absl::StrJoin(m, ", ", absl::PairFormatter(": "));
      };
      return Finding(
          absl::StrCat("the checkpoint directory's report: ", report.tensors,
                       " tensors, ", report.bytes, " bytes, conversions {",
                       text(report.conversions), "}; expected ", views.size(),
                       ", ", bytes, ", {", text(conversions), "}", State()));
    }
    if (report.shards != (sharded ? 2 : 1) || report.ignored != skipped ||
        report.prefix != prefix || report.prefix_detected != detect) {
      return Finding(absl::StrCat(
          "the checkpoint directory's report: ", report.shards,
          " shards, prefix '", report.prefix, "'",
          report.prefix_detected ? " (detected)" : "", ", skipped {",
          absl::StrJoin(report.ignored, ", "), "}; expected ", sharded ? 2 : 1,
          ", '", prefix, "'", detect ? " (detected)" : "", ", {",
          absl::StrJoin(skipped, ", "), "}", State()));
    }
    if (Tracing()) {
      std::fprintf(stderr, "  through %s, %d shard(s), prefix '%s'\n",
                   location.path.c_str(), report.shards, prefix.c_str());
    }
    LoadReport load = report.load;
    if (plan.extra) load.unexpected = {plan.extra_name};
    return load;
  }

  // The parameters a load of `plan` leaves out, by name.
  std::vector<std::string> LeftOut(const LoadPlan& plan) const {
    std::vector<std::string> names;
    for (int i : params_) {
      if (std::find(plan.picked.begin(), plan.picked.end(), i) ==
          plan.picked.end()) {
        names.emplace_back(slots_[i].name);
      }
    }
    return names;
  }

  // The error a failing hook (kFailingHook) returns.
  std::string InjectedCause(int param) const {
    return absl::StrCat("injected: the loader of ", slots_[param].name,
                        " failed");
  }

  // Wraps every parameter's after-load hook (the module's, or a self-test
  // fault's) in one that fails once when the parameter is `failing_hook_`:
  // before the wrapped hook runs, or after it (`fail_after_module_hook_`).
  void InstallFailingHooks() {
    model_->ForEachParameter([&](const std::string& name, Parameter& p) {
      const int index = index_.at(name);
      std::function<absl::Status()> module_hook = p.after_load();
      p.set_after_load([this, index, module_hook]() -> absl::Status {
        const bool fail = failing_hook_ == index;
        if (fail) failing_hook_ = -1;
        if (fail && !fail_after_module_hook_) {
          return absl::DataLossError(InjectedCause(index));
        }
        if (module_hook) NG_RETURN_IF_ERROR(module_hook());
        if (fail) return absl::DataLossError(InjectedCause(index));
        return absl::OkStatus();
      });
    });
  }

  // A load the loader must refuse before writing anything: kInvalidArgument,
  // one problem per tensor in `refused`, each named, and nothing changed.
  absl::Status CheckRefusedLoad(const absl::StatusOr<LoadReport>& report,
                                std::vector<std::string> refused,
                                Describe what) {
    std::vector<std::string> named;
    const absl::string_view message =
        report.ok() ? absl::string_view() : report.status().message();
    const std::string count = absl::StrCat(
        ": ", refused.size(), refused.size() == 1 ? " problem" : " problems",
        "; no weight was changed:");
    bool right = !report.ok() &&
                 report.status().code() == absl::StatusCode::kInvalidArgument &&
                 absl::StrContains(message, count);
    if (right && refused.size() <= kListedLoadProblems) {
      // One line a problem, each starting with the tensor's name.
      for (absl::string_view line :
           absl::StrSplit(message.substr(message.find(count) + count.size()),
                          "\n  ", absl::SkipEmpty())) {
        named.emplace_back(line.substr(0, line.find(": ")));
      }
      std::sort(named.begin(), named.end());
      std::sort(refused.begin(), refused.end());
      right = named == refused;
    }
    if (!right) {
      return Finding(absl::StrCat(
          what(), " was not refused naming {", absl::StrJoin(refused, ", "),
          "}: ", report.ok() ? "OK" : report.status().ToString(), State()));
    }
    // Nothing changed: every value and identity as before.
    return CheckState([&] { return absl::StrCat(what(), " (refused)"); });
  }

  // A load whose parameter `victim`'s hook failed (kFailingHook): the error
  // names it and says everything was restored, every weight holds its old
  // value, and every derived buffer stale before the load holds the same
  // bytes and is still stale.
  absl::Status CheckFailedLoad(
      const absl::StatusOr<LoadReport>& report, const LoadPlan& plan,
      int victim, const std::vector<std::pair<int, HostBytes>>& stale_before,
      Describe what) {
    if (report.ok() || report.status().code() != absl::StatusCode::kDataLoss ||
        !absl::StrContains(report.status().message(), InjectedCause(victim)) ||
        !absl::StrContains(report.status().message(),
                           "all weights were restored")) {
      return Finding(absl::StrCat(
          what(), " with ", slots_[victim].name,
          "'s loader failing did not report it, restored: ",
          report.ok() ? "OK" : report.status().ToString(), State()));
    }
    // The loader wrote the parameters up to the victim, in its order, then
    // put them back; it refreshed every derived buffer but those stale
    // before.
    for (int param : plan.param) {
      if (param < 0) continue;
      if (slots_[param].slot->tensor().defined()) ++WritesOf(slots_[param]);
      if (param == victim) break;
    }
    for (int i : derived_) {
      const auto was = std::find_if(
          stale_before.begin(), stale_before.end(),
          [i](const std::pair<int, HostBytes>& s) { return s.first == i; });
      SlotInfo& d = slots_[i];
      if (was == stale_before.end()) {
        MarkRefreshed(d);
        continue;
      }
      HostBytes now;
      NG_RETURN_IF_ERROR(now.Read(d.slot->tensor()));
      if (now.size() != was->second.size() ||
          std::memcmp(now.data(), was->second.data(), now.size()) != 0 ||
          !d.slot->IsStale()) {
        return Finding(absl::StrCat(
            what(), " failed (", slots_[victim].name, "'s loader) and left ",
            d.name, ", stale before it, ",
            d.slot->IsStale() ? "with other bytes" : "no longer stale",
            State()));
      }
    }
    return CheckState([&] {
      return absl::StrCat(what(), " (failed in ", slots_[victim].name,
                          "'s loader, rolled back)");
    });
  }

  // --- graphs ---------------------------------------------------------------

  // The bucketed graphs (every bucket), captured now if they have not been
  // yet. One object for all, as a server holds them: its routing of a batch
  // to a bucket, and every loop over its buckets (policy, recapture), are
  // under test too.
  absl::StatusOr<BucketedGraphs*> Graphs() {
    std::unique_ptr<BucketedGraphs>& g = graphs_;
    if (g != nullptr) return g.get();
    StepFunction step;
    NormStack* m = model_.get();
    step.specs = [m](int64_t batch) { return m->StepSpecs(batch); };
    step.forward = [m, this](Stream& s, const StepBuffers& b) {
      NG_RETURN_IF_ERROR(CopyIntoProbe(s, b));
      return m->Forward(s, b);
    };
    step.owners = {m, &probe_};
    NG_ASSIGN_OR_RETURN(
        g, BucketedGraphs::Create("decode", stream_, step, buckets(), options_,
                                  DeviceAllocator()));
    for (int64_t bucket : buckets()) InventoryStatics(bucket);
    NG_RETURN_IF_ERROR(
        CheckIdentities([] { return std::string("the first capture"); }));
    for (int64_t bucket : buckets()) RecordCaptured(bucket);
    return g.get();
  }

  const std::vector<int64_t>& buckets() const { return config_.buckets; }
  // The index of the smallest bucket that holds `batch` rows (of `batch`
  // itself, for a bucket); batches up to kLargestBucket only.
  size_t BucketIndex(int64_t batch) const {
    size_t i = 0;
    while (buckets()[i] < batch) ++i;
    return i;
  }

  // Moved: a touched slot whose identity differs from what the bucket's graph
  // last captured or repaired (compared with the identity recorded then, so a
  // view moved away and back is no move).
  bool Relevant(const SlotInfo& s, int64_t bucket) const {
    return s.touched && (s.bucket == 0 || s.bucket == bucket);
  }

  std::vector<TensorIdentity>& Captured(int64_t bucket) {
    return captured_[BucketIndex(bucket)];
  }

  void RecordCaptured(int64_t bucket) {
    structure_changed_[BucketIndex(bucket)].clear();
    invalidated_[BucketIndex(bucket)] = false;
    std::vector<TensorIdentity>& ids = Captured(bucket);
    ids.resize(slots_.size());
    for (size_t i = 0; i < slots_.size(); ++i) {
      const Tensor& t = slots_[i].slot->tensor();
      // Most slots did not move since the last record: no new identity.
      if (Relevant(slots_[i], bucket) && !SameIdentity(t, ids[i])) {
        AssignIdentity(t, ids[i]);
      }
    }
  }

  // The names of the violations the check of `bucket`'s graph must find
  // (sorted), and, with `lines`, how the line naming each in a refusal
  // starts: its kind, and for a move the identities and where it was rebound.
  std::vector<std::string> ExpectedViolations(
      int64_t bucket, std::vector<std::string>* lines = nullptr) {
    std::vector<std::string> expected;
    const std::vector<TensorIdentity>& ids = Captured(bucket);
    for (size_t i = 0; i < slots_.size(); ++i) {
      const SlotInfo& s = slots_[i];
      if (Relevant(s, bucket) &&
          (i >= ids.size() || !SameIdentity(s.slot->tensor(), ids[i]))) {
        expected.emplace_back(s.name);
        if (lines != nullptr) {
          const Tensor& t = s.slot->tensor();
          lines->push_back(absl::StrCat(
              s.name, ": moved from ", i < ids.size() ? ids[i].ToString() : "?",
              " to ", t.defined() ? t.Identity().ToString() : "nothing",
              " (rebound at ", s.slot->last_rebind().ToString(), ")"));
        }
      }
    }
    if (options_.check_freshness) {
      for (SlotInfo& s : slots_) {
        if (s.source >= 0 && ExpectStale(s)) {
          expected.emplace_back(s.name);
          if (lines != nullptr)
            lines->push_back(absl::StrCat(s.name, ": stale: "));
        }
      }
    }
    for (const std::string& module : structure_changed_[BucketIndex(bucket)]) {
      expected.push_back(module);
      if (lines != nullptr) {
        lines->push_back(
            absl::StrCat(module, ": structure changed since capture"));
      }
    }
    std::sort(expected.begin(), expected.end());
    return expected;
  }

  // Every line of a refusal starts with one expected line, each used once.
  absl::Status CheckRefusalLines(absl::string_view message,
                                 std::vector<std::string> lines,
                                 const std::vector<std::string>& expected) {
    for (absl::string_view line : absl::StrSplit(message, '\n')) {
      if (!absl::ConsumePrefix(&line, "  ")) continue;
      auto it = std::find_if(lines.begin(), lines.end(),
                             [line](const std::string& start) {
                               return absl::StartsWith(line, start);
                             });
      if (it == lines.end()) {
        return Finding(absl::StrCat("refusal line \"", line, "\" is none of {",
                                    absl::StrJoin(lines, "; "), "}",
                                    State(expected)));
      }
      lines.erase(it);
    }
    return absl::OkStatus();
  }

  // Fault (or design): the structure of a module of the model changes (a
  // forward-path switch, MarkStructureChanged): every graph must refuse or
  // recapture, naming the module.
  absl::Status ChangeStructure(uint8_t pick) {
    if (modules_.empty()) {
      // The root, every module of a parameter and their parents.
      modules_.push_back("");
      for (int i : params_) {
        absl::string_view path = slots_[i].name;
        absl::ConsumePrefix(&path, kModelPrefix);
        while (path.rfind('.') != absl::string_view::npos) {
          path = path.substr(0, path.rfind('.'));
          modules_.emplace_back(path);
        }
      }
      std::sort(modules_.begin(), modules_.end());
      modules_.erase(std::unique(modules_.begin(), modules_.end()),
                     modules_.end());
    }
    const std::string& path = modules_[pick % modules_.size()];
    Module* m = model_->FindModule(path);
    if (m == nullptr) {
      return Finding(
          absl::StrCat("FindModule(\"", path, "\") found nothing", State()));
    }
    m->MarkStructureChanged();
    for (std::vector<std::string>& changed : structure_changed_) {
      if (std::find(changed.begin(), changed.end(), m->full_name()) ==
          changed.end()) {
        changed.push_back(m->full_name());
      }
    }
    return absl::OkStatus();
  }

  const std::vector<StepTensorSpec>& Specs(int64_t batch) {
    std::vector<StepTensorSpec>& specs = specs_by_batch_[batch];
    if (specs.empty()) specs = model_->StepSpecs(batch);
    return specs;
  }

  // Step buffers for a batch, made once per input.
  absl::StatusOr<StepBuffers*> Buffers(
      std::vector<std::unique_ptr<StepBuffers>>& cache, const char* prefix,
      int64_t batch) {
    if (cache.empty()) cache.resize(kTooLargeBatch + 1);
    if (cache[batch] == nullptr) {
      NG_ASSIGN_OR_RETURN(
          cache[batch],
          StepBuffers::Create(prefix, Specs(batch), DeviceAllocator()));
    }
    return cache[batch].get();
  }

  // The inputs of a step (harness-generated, per input seed and batch).
  const std::vector<std::vector<uint8_t>>& Inputs(int64_t batch) {
    if (inputs_seed_ != input_seed_ || inputs_batch_ != batch) {
      const std::vector<StepTensorSpec>& specs = Specs(batch);
      inputs_.assign(specs.size(), {});
      for (size_t i = 0; i < specs.size(); ++i) {
        if (specs[i].role != StepRole::kInput) continue;
        int64_t n = 1;
        for (int64_t d : specs[i].shape) n *= d;
        inputs_[i].resize(n * DTypeSize(specs[i].dtype));
        GenerateValues(Mix(input_seed_ * 7 + i), false, 0, n, specs[i].dtype,
                       inputs_[i].data());
      }
      inputs_seed_ = input_seed_;
      inputs_batch_ = batch;
    }
    return inputs_;
  }

  absl::Status FillStep(StepBuffers& io) {
    const std::vector<std::vector<uint8_t>>& in = Inputs(io.batch());
    for (size_t i = 0; i < io.size(); ++i) {
      if (io.spec(i).role == StepRole::kInput) {
        NG_RETURN_IF_ERROR(WriteBytes(io.tensor(i), in[i].data()));
      } else {
        NG_RETURN_IF_ERROR(Poison(io.tensor(i)));
      }
    }
    return absl::OkStatus();
  }

  // --- the reference --------------------------------------------------------

  // The weight a norm of the reference multiplies by: the parameter's bytes
  // from the image, or (zero-centred) 1 + w in f32.
  const void* RefWeight(const RefNorm& n, DType* dtype,
                        std::vector<float>& scratch) {
    const SlotInfo& s = slots_[n.param];
    const DType w = s.slot->tensor().dtype();
    if (n.kind != RefNorm::kZeroCentred) {
      *dtype = w;
      return ImageOf(s);
    }
    scratch.resize(Numel(s));
    OnePlusValues(w, ImageOf(s), Numel(s), scratch.data());
    *dtype = DType::kF32;
    return scratch.data();
  }

  void RefRun(const RefNorm& n, const uint8_t* x, uint8_t* residual,
              const uint8_t* gate, uint8_t* out, int64_t rows, int64_t cols) {
    // 1 + w of a zero-centred norm, in a buffer reused from norm to norm.
    std::vector<float>& scratch = ref_weight_;
    RmsNormParams p;
    p.x = x;
    p.residual = residual;
    p.gate = gate;
    p.out = out;
    p.weight = RefWeight(n, &p.weight_dtype, scratch);
    p.rows = rows;
    p.cols = cols;
    p.x_stride = p.out_stride = p.residual_stride = p.gate_stride = cols;
    p.eps = config_.eps;
    p.x_dtype = p.out_dtype = config_.dtype;
    p.weight_kind = n.kind == RefNorm::kZeroCentred ? NormWeight::kScale
                                                    : NormWeight::kMultiply;
    p.order = config_.order;
    // The scalar kernel: code of its own, not the vector path the product's
    // CPU launches take (a wrong AVX-512 tail would otherwise agree with
    // itself). cpu_kernel_fuzzer holds every path to this one. The kernel
    // is held in turn to the norm model (fuzz/norm_model.h), which shares
    // none of its numerics: a bug there would otherwise be mirrored here.
    RunNormModel(p, &norm_model_);
    RmsNormCpuScalar(p);
    if (model_disagreement_.empty()) {
      std::string diff = CompareWithNormModel(p, norm_model_);
      if (!diff.empty()) {
        model_disagreement_ = absl::StrCat(
            "the reference kernel (RmsNormCpuScalar) disagrees with the norm "
            "model of docs/numerics.md on the norm of ",
            slots_[n.param].name, " (rows ", rows, ", cols ", cols,
            "): ", diff);
      }
    }
  }

  // The next output of the reference step, `name`, of `bytes` bytes (its
  // contents to be written). Outputs and their buffers are kept from step to
  // step (a step computes the same outputs in the same order).
  std::vector<uint8_t>& NextOutput(absl::string_view name, size_t bytes) {
    if (reference_size_ == reference_.size()) reference_.emplace_back();
    RefOutput& o = reference_[reference_size_++];
    if (o.name != name) o.name.assign(name.data(), name.size());
    o.bytes.resize(bytes);
    return o.bytes;
  }

  // The step computed from the image with RmsNormCpuScalar, in the stack's
  // forward order (see each stack's header): the first reference_size_
  // entries of reference_, by step tensor name; and model_disagreement_.
  void Reference(int64_t batch) {
    const std::vector<StepTensorSpec>& specs = Specs(batch);
    const std::vector<std::vector<uint8_t>>& in = Inputs(batch);
    auto input = [&](absl::string_view name) -> const uint8_t* {
      for (size_t i = 0; i < specs.size(); ++i) {
        if (specs[i].name == name) return in[i].data();
      }
      return nullptr;
    };
    const size_t es = DTypeSize(config_.dtype);
    const int64_t h = config_.hidden;
    const size_t row_bytes = batch * h * es;
    // The residual stream and two activations, in buffers kept between steps
    // (each written before it is read; zeroed as fresh ones would be).
    std::vector<uint8_t>& r = ref_r_;
    std::vector<uint8_t>& a = ref_a_;
    std::vector<uint8_t>& b = ref_b_;
    r.assign(input("hidden_states"), input("hidden_states") + row_bytes);
    a.assign(row_bytes, 0);
    b.assign(row_bytes, 0);
    reference_size_ = 0;
    model_disagreement_.clear();
    auto qk = [&](const RefLayer& l) {
      RefRun(l.q, input("q"), nullptr, nullptr,
             NextOutput(l.q_out, batch * config_.heads * config_.head_dim * es)
                 .data(),
             batch * config_.heads, config_.head_dim);
      RefRun(
          l.k, input("k"), nullptr, nullptr,
          NextOutput(l.k_out, batch * config_.kv_heads * config_.head_dim * es)
              .data(),
          batch * config_.kv_heads, config_.head_dim);
    };
    if (config_.kind == StackKind::kGemma3) {
      for (size_t i = 0; i < ref_layers_.size(); ++i) {
        const RefLayer& l = ref_layers_[i];
        if (i == 0) {
          RefRun(l.in, r.data(), nullptr, nullptr, a.data(), batch, h);
        } else {
          RefRun(l.in, b.data(), r.data(), nullptr, a.data(), batch, h);
        }
        qk(l);
        RefRun(l.post, a.data(), nullptr, nullptr, b.data(), batch, h);
        RefRun(l.pre_ff, b.data(), r.data(), nullptr, a.data(), batch, h);
        RefRun(l.post_ff, a.data(), nullptr, nullptr, b.data(), batch, h);
      }
      RefRun(ref_final_, b.data(), r.data(), nullptr,
             NextOutput("out", row_bytes).data(), batch, h);
      NextOutput("residual", row_bytes).swap(r);
      return;
    }
    // Qwen3.5 and Qwen3 / Llama: h in `a`, the fused add's output in `b`.
    for (size_t i = 0; i < ref_layers_.size(); ++i) {
      const RefLayer& l = ref_layers_[i];
      if (i == 0) {
        RefRun(l.in, r.data(), nullptr, nullptr, a.data(), batch, h);
      } else {
        RefRun(l.in, a.data(), r.data(), nullptr, b.data(), batch, h);
        std::swap(a, b);
      }
      if (l.full && config_.qk_norm) qk(l);
      if (!l.full) {
        const int64_t rows = batch * config_.value_heads;
        RefRun(
            l.linear, input("linear_core"), nullptr, input("linear_gate"),
            NextOutput(l.linear_out, rows * config_.value_head_dim * es).data(),
            rows, config_.value_head_dim);
      }
      RefRun(l.post, a.data(), r.data(), nullptr, b.data(), batch, h);
      std::swap(a, b);
    }
    RefRun(ref_final_, a.data(), r.data(), nullptr,
           NextOutput("out", row_bytes).data(), batch, h);
    NextOutput("residual", row_bytes).swap(r);
  }

  // Compares every output of `io` with the reference; "" if all are equal.
  absl::StatusOr<std::string> CompareWithReference(const StepBuffers& io) {
    Reference(io.batch());
    if (!model_disagreement_.empty()) {
      return Finding(absl::StrCat(model_disagreement_, State()));
    }
    for (size_t i = 0; i < io.size(); ++i) {
      if (io.spec(i).role != StepRole::kOutput) continue;
      const std::vector<uint8_t>* want = nullptr;
      for (size_t k = 0; k < reference_size_; ++k) {
        if (reference_[k].name == io.spec(i).name) want = &reference_[k].bytes;
      }
      if (want == nullptr) {
        return absl::StrCat("the step has an output ", io.spec(i).name,
                            " the reference does not compute");
      }
      NG_ASSIGN_OR_RETURN(HostBytes have, HostBytes::Of(io.tensor(i)));
      if (have.size() != want->size()) {
        return absl::StrCat(io.spec(i).name, " has ", have.size(),
                            " bytes, the reference ", want->size());
      }
      if (std::memcmp(have.data(), want->data(), have.size()) == 0) continue;
      const size_t es = DTypeSize(io.spec(i).dtype);
      for (size_t j = 0; j * es < have.size(); ++j) {
        if (std::memcmp(have.data() + j * es, want->data() + j * es, es) != 0) {
          return absl::StrCat(
              io.spec(i).name, "[", j,
              "] = ", ValueText(io.spec(i).dtype, have.data() + j * es),
              ", the reference ",
              ValueText(io.spec(i).dtype, want->data() + j * es), Diagnose());
        }
      }
    }
    return std::string();
  }

  // For a mismatch: which tensors of the model differ from the harness's
  // values now (parameters and derived buffers).
  std::string Diagnose() {
    std::vector<std::string> wrong;
    for (int i : params_) {
      SlotInfo& s = slots_[i];
      absl::StatusOr<HostBytes> now = HostBytes::Of(s.slot->tensor());
      if (now.ok() && std::memcmp(now->data(), ImageOf(s), Bytes(s)) != 0) {
        wrong.emplace_back(s.name);
      }
    }
    for (SlotInfo& d : slots_) {
      if (d.source < 0) continue;
      std::string why;
      if (DerivedHoldsOnePlusW(d, &why).ok() && !why.empty()) {
        wrong.push_back(why);
      }
    }
    if (wrong.empty()) return "; every weight and derived buffer is right";
    return absl::StrCat("; tensors that differ from the harness's values: ",
                        absl::StrJoin(wrong, "; "));
  }

  // --- replays
  // ----------------------------------------------------------------

  // 256 to 1021 replays of the current batch, one step: a replay checked in
  // full, then replays with nothing changed between them (each must run,
  // checked by the graph, and count one replay and one check, no violation),
  // then another checked in full. Counters of the graph manager that only
  // move with replays (a fast path that stops checking after N, a counter
  // that wraps) are reached this way: steps are capped at kMaxSteps, bursts
  // at kMaxBurstReplays replays an input.
  absl::Status Burst(uint8_t count_byte) {
    const int count = 256 + 3 * count_byte;
    NG_RETURN_IF_ERROR(Replay());
    if (burst_replays_ + count > kMaxBurstReplays || batch_ > kLargestBucket) {
      return absl::OkStatus();
    }
    const int64_t bucket = buckets()[BucketIndex(batch_)];
    NG_ASSIGN_OR_RETURN(BucketedGraphs * graphs, Graphs());
    // The first replay was refused (fail policy), or a repair is pending:
    // not a state to repeat.
    if (invalidated_[BucketIndex(bucket)] ||
        !ExpectedViolations(bucket, nullptr).empty()) {
      return absl::OkStatus();
    }
    burst_replays_ += count;
    NG_ASSIGN_OR_RETURN(StepBuffers * io, Buffers(io_, "io", batch_));
    CapturedGraph& graph = graphs->graph(bucket);
    const GraphCounts before = CountsOf(graph.stats());
    const int64_t violations_before = graph.stats().violations;
    const int64_t fast_before = graph.stats().fast_checks;
    const int64_t total_before = graphs->TotalStats().replays;
    const bool checked = options_.policy != ReplayPolicy::kUnchecked;
    for (int i = 0; i < count - 2; ++i) {
      const absl::Status run = graphs->Run(*io);
      if (!run.ok()) {
        return Finding(absl::StrCat(
            "replay ", i + 2, " of a burst of ", count,
            " (nothing changed) failed: ", run.ToString(), State()));
      }
    }
    const GraphCounts after = CountsOf(graph.stats());
    const int64_t n = count - 2;
    // The first check may be a full one: what the harness did since the last
    // replay may have moved the process's identity epoch.
    const int64_t fast = graph.stats().fast_checks - fast_before;
    if (after.replays - before.replays != n ||
        after.checks - before.checks != (checked ? n : 0) ||
        graph.stats().violations != violations_before ||
        after.captures != before.captures || after.refused != before.refused ||
        after.recaptures != before.recaptures ||
        after.rebinds != before.rebinds ||
        after.refreshes != before.refreshes || fast < (checked ? n - 1 : 0) ||
        fast > (checked ? n : 0) ||
        graphs->TotalStats().replays - total_before != n) {
      return Finding(absl::StrCat(
          n, " replays with nothing changed counted ",
          after.replays - before.replays, " replays (",
          graphs->TotalStats().replays - total_before, " in TotalStats), ",
          after.checks - before.checks, " checks (", fast, " fast), ",
          graph.stats().violations - violations_before, " violations, ",
          after.captures - before.captures, " captures, ",
          after.recaptures - before.recaptures, " recaptures, ",
          after.rebinds - before.rebinds, " rebinds, ",
          after.refreshes - before.refreshes, " refreshes", State()));
    }
    return Replay();
  }

  absl::Status Replay() {
    if (batch_ > kLargestBucket) return ReplayWithoutBucket();
    const int64_t bucket = buckets()[BucketIndex(batch_)];
    NG_ASSIGN_OR_RETURN(BucketedGraphs * graphs, Graphs());
    NG_ASSIGN_OR_RETURN(StepBuffers * io, Buffers(io_, "io", batch_));
    NG_RETURN_IF_ERROR(FillStep(*io));
    StepBuffers& statics = graphs->static_buffers(bucket);
    // Every static buffer poisoned: a refused replay must leave them all so
    // (it writes nothing, inputs included), and a replay must zero the
    // inputs' rows past the batch.
    NG_RETURN_IF_ERROR(PoisonStatics(statics));
    // An invalidated graph recaptures before anything else.
    const bool invalidated = invalidated_[BucketIndex(bucket)];
    if (invalidated) RecordCaptured(bucket);
    const bool checked = options_.policy != ReplayPolicy::kUnchecked;
    std::vector<std::string> lines;
    const std::vector<std::string> expected = ExpectedViolations(
        bucket,
        checked && options_.policy == ReplayPolicy::kFail ? &lines : nullptr);
    CapturedGraph& graph = graphs->graph(bucket);
    const GraphCounts before = CountsOf(graph.stats());
    const int64_t violations_before = graph.stats().violations;
    std::map<std::string, int64_t> by_tensor_before;
    if (!expected.empty())
      by_tensor_before = graph.stats().violations_by_tensor;
    // The write versions of the outputs' storages: a replay that launched
    // bumps them (IdentitySnapshot::MarkWritten), as an eager launch does,
    // so that a derived buffer whose source a graph writes goes stale.
    std::vector<uint64_t> versions_before;
    for (size_t i = 0; i < statics.size(); ++i) {
      if (statics.spec(i).role != StepRole::kOutput) continue;
      versions_before.push_back(statics.tensor(i).storage()->write_version());
    }
    const absl::Status run = graphs->Run(*io);
    NG_RETURN_IF_ERROR(CheckIdentities([&] {
      return absl::StrCat("a replay in bucket ", bucket, " (", run.ToString(),
                          ")");
    }));
    // (Unchecked, a moved static output is not what the graph writes: the
    // memory it was captured with is.)
    if (run.ok() && (checked || expected.empty())) {
      for (size_t i = 0, k = 0; i < statics.size(); ++i) {
        if (statics.spec(i).role != StepRole::kOutput) continue;
        if (statics.tensor(i).storage()->write_version() <=
            versions_before[k++]) {
          return Finding(absl::StrCat(
              "a replay in bucket ", bucket, " left the write version of ",
              statics.spec(i).name, "'s storage as it was", State(expected)));
        }
      }
    }
    if (run.ok()) NG_RETURN_IF_ERROR(CheckPadding(statics, bucket, expected));
    if (run.ok() || run.code() == absl::StatusCode::kFailedPrecondition) {
      NG_RETURN_IF_ERROR(
          CheckCounts(before, CountsOf(graph.stats()), invalidated, expected));
    }

    if (options_.policy == ReplayPolicy::kFail && !expected.empty()) {
      if (run.code() != absl::StatusCode::kFailedPrecondition) {
        return Finding(absl::StrCat(
            "replay not refused after injected faults: ", run.ToString(),
            State(expected)));
      }
      std::vector<std::string> named = ViolationNames(run.message());
      std::sort(named.begin(), named.end());
      if (named != expected) {
        return Finding(absl::StrCat("refusal named {",
                                    absl::StrJoin(named, ", "), "}",
                                    State(expected)));
      }
      NG_RETURN_IF_ERROR(
          CheckRefusalLines(run.message(), std::move(lines), expected));
      NG_RETURN_IF_ERROR(AllPoison(statics, "bucket statics"));
      NG_RETURN_IF_ERROR(CheckProbe(*io, bucket, /*ran=*/false, expected));
      return CheckValues([] { return std::string("a refused replay"); });
    }
    if (!run.ok()) {
      return Finding(
          absl::StrCat("replay failed: ", run.ToString(), State(expected)));
    }
    if (checked) {
      NG_RETURN_IF_ERROR(CheckProbe(*io, bucket, /*ran=*/true, expected));
    }
    NG_ASSIGN_OR_RETURN(const std::string diff, CompareWithReference(*io));
    if (Tracing()) {
      std::fprintf(
          stderr, "  replay b%d: %s, expected {%s}, found %d, %s\n",
          static_cast<int>(bucket), run.ToString().c_str(),
          absl::StrJoin(expected, ", ").c_str(),
          static_cast<int>(graph.stats().violations - violations_before),
          diff.empty() ? "equal to the reference" : diff.c_str());
    }
    if (!diff.empty()) {
      return Finding(absl::StrCat("silent mismatch: graph output ", diff,
                                  State(expected)));
    }
    if (checked) {
      const int64_t found = graph.stats().violations - violations_before;
      if (found != static_cast<int64_t>(expected.size()) || !expected.empty()) {
        std::vector<std::string> names;
        for (const auto& [name, n] : graph.stats().violations_by_tensor) {
          auto it = by_tensor_before.find(name);
          const int64_t before = it == by_tensor_before.end() ? 0 : it->second;
          for (int64_t k = before; k < n; ++k) names.push_back(name);
        }
        std::sort(names.begin(), names.end());
        if (names != expected || found != static_cast<int64_t>(names.size())) {
          return Finding(absl::StrCat(
              "the check found ", found, " violations {",
              absl::StrJoin(names, ", "),
              expected.empty() ? "} (names since the input's first violation)"
                               : "}",
              State(expected)));
        }
      }
      // The repair refreshed every stale buffer, and this bucket's graph
      // now matches every slot.
      if (options_.check_freshness) MarkAllRefreshed();
      RecordCaptured(bucket);
    }
    return CheckValues(
        [&] { return absl::StrCat("a replay in bucket ", bucket); });
  }

  // A batch larger than every bucket: Run refuses it (out of range, naming
  // the batch size) before touching anything: every static buffer, the
  // probe and the outputs still poisoned, no stats moved.
  absl::Status ReplayWithoutBucket() {
    NG_ASSIGN_OR_RETURN(BucketedGraphs * graphs, Graphs());
    NG_ASSIGN_OR_RETURN(StepBuffers * io, Buffers(io_, "io", batch_));
    NG_RETURN_IF_ERROR(FillStep(*io));
    std::vector<GraphCounts> before(buckets().size());
    for (int64_t bucket : buckets()) {
      NG_RETURN_IF_ERROR(PoisonStatics(graphs->static_buffers(bucket)));
      before[BucketIndex(bucket)] = CountsOf(graphs->graph(bucket).stats());
    }
    const absl::Status run = graphs->Run(*io);
    if (run.code() != absl::StatusCode::kOutOfRange ||
        !absl::StrContains(run.message(),
                           absl::StrCat("batch size ", batch_, " "))) {
      return Finding(absl::StrCat("a batch of ", batch_, " (buckets {",
                                  absl::StrJoin(buckets(), ", "),
                                  "}) ran: ", run.ToString(), State()));
    }
    for (int64_t bucket : buckets()) {
      StepBuffers& statics = graphs->static_buffers(bucket);
      const GraphCounts after = CountsOf(graphs->graph(bucket).stats());
      const GraphCounts& was = before[BucketIndex(bucket)];
      if (std::memcmp(&after, &was, sizeof(after)) != 0) {
        return Finding(absl::StrCat("a batch of ", batch_,
                                    " moved the stats of bucket ", bucket,
                                    State()));
      }
      NG_RETURN_IF_ERROR(AllPoison(statics, "bucket statics"));
    }
    NG_RETURN_IF_ERROR(AllPoison(*io, "the step's outputs", StepRole::kOutput));
    NG_RETURN_IF_ERROR(CheckProbe(*io, kLargestBucket, /*ran=*/false, {}));
    return CheckIdentities([&] {
      return absl::StrCat("a refused batch of ", batch_, " (", run.ToString(),
                          ")");
    });
  }

  // Poisons every tensor of `statics` and the offset probe (before a step,
  // which must write them, or not at all).
  absl::Status PoisonStatics(const StepBuffers& statics) {
    for (size_t i = 0; i < statics.size(); ++i) {
      NG_RETURN_IF_ERROR(Poison(statics.tensor(i)));
    }
    return Poison(probe_.slot->tensor());
  }

  // Every tensor of `buffers` (of `role` only, if given) still holds the
  // poison written before a step that must not have run.
  absl::Status AllPoison(const StepBuffers& buffers, absl::string_view what,
                         std::optional<StepRole> role = std::nullopt) {
    for (size_t i = 0; i < buffers.size(); ++i) {
      if (role.has_value() && buffers.spec(i).role != *role) continue;
      NG_ASSIGN_OR_RETURN(HostBytes b, HostBytes::Of(buffers.tensor(i)));
      for (size_t j = 0; j < b.size(); ++j) {
        if (b.data()[j] != 0xFF) {
          return Finding(
              absl::StrCat("a refused step wrote ", what, ": ",
                           buffers.spec(i).name, " byte ", j, " holds ",
                           absl::Hex(b.data()[j], absl::kZeroPad2), State()));
        }
      }
    }
    return absl::OkStatus();
  }

  // The counters of a graph's stats a replay moves.
  struct GraphCounts {
    int64_t captures, replays, checks, refused, recaptures, rebinds, refreshes;
  };
  static GraphCounts CountsOf(const GraphStats& s) {
    return {s.captures,   s.replays, s.checks,   s.refused,
            s.recaptures, s.rebinds, s.refreshes};
  }

  // What one replay (not failed) added to its graph's stats: a recapture
  // first if the graphs were invalidated; then under the fail policy a check
  // and a refusal or a launch; under recapture and rebind a check, a refresh
  // per stale buffer, and a recapture for moves (recapture) or structure
  // changes (both), a rebind for moves (rebind), then a launch.
  absl::Status CheckCounts(const GraphCounts& before, const GraphCounts& after,
                           bool invalidated,
                           const std::vector<std::string>& expected) {
    const ReplayPolicy policy = options_.policy;
    const bool checked = policy != ReplayPolicy::kUnchecked;
    const bool refused = policy == ReplayPolicy::kFail && !expected.empty();
    const bool repaired = checked && !refused && !expected.empty();
    int64_t stale = 0, moved = 0;
    const std::vector<std::string>& structure =
        structure_changed_[BucketIndex(batch_)];
    if (repaired) {
      for (const SlotInfo& s : slots_) {
        stale += options_.check_freshness && s.source >= 0 && ExpectStale(s);
      }
      moved = static_cast<int64_t>(expected.size()) - stale -
              static_cast<int64_t>(structure.size());
    }
    // The pre-fix loader moves a buffer when the repair refreshes it: one
    // more recapture or rebind may follow.
    const bool legacy_slack = config_.legacy && stale > 0;
    int64_t recaptures = invalidated;
    int64_t rebinds = 0;
    if (repaired && (!structure.empty() ||
                     (policy == ReplayPolicy::kRecapture && moved > 0))) {
      ++recaptures;
    }
    if (repaired && policy == ReplayPolicy::kRebind && moved > 0) rebinds = 1;
    auto off = [&](int64_t got, int64_t want, bool slack) {
      return got != want && !(slack && got == want + 1);
    };
    const int64_t recaptured = after.recaptures - before.recaptures;
    const int64_t rebound = after.rebinds - before.rebinds;
    if (after.checks - before.checks != (checked ? 1 : 0) ||
        after.refused - before.refused != (refused ? 1 : 0) ||
        after.replays - before.replays != (refused ? 0 : 1) ||
        after.refreshes - before.refreshes != stale ||
        after.captures - before.captures != recaptured ||
        off(recaptured, recaptures,
            legacy_slack && policy == ReplayPolicy::kRecapture && moved == 0) ||
        (structure.empty() &&
         off(rebound, rebinds,
             legacy_slack && policy == ReplayPolicy::kRebind && moved == 0))) {
      return Finding(absl::StrCat(
          "a replay's stats moved by ", after.checks - before.checks,
          " checks, ", after.refused - before.refused, " refused, ",
          after.replays - before.replays, " replays, ",
          after.refreshes - before.refreshes, " refreshes, ",
          after.captures - before.captures, " captures, ", recaptured,
          " recaptures, ", rebound, " rebinds; expected ", checked ? 1 : 0,
          ", ", refused ? 1 : 0, ", ", refused ? 0 : 1, ", ", stale, ", ",
          recaptures, ", ", recaptures, ", ", rebinds,
          invalidated ? " (the graphs were invalidated)" : "",
          State(expected)));
    }
    return absl::OkStatus();
  }

  // Rows [batch_, bucket) of every static input hold zeros after a replay:
  // Run pads a batch below its bucket with them.
  absl::Status CheckPadding(const StepBuffers& statics, int64_t bucket,
                            const std::vector<std::string>& expected) {
    if (batch_ >= bucket) return absl::OkStatus();
    for (size_t i = 0; i < statics.size(); ++i) {
      if (statics.spec(i).role != StepRole::kInput) continue;
      NG_ASSIGN_OR_RETURN(HostBytes b, HostBytes::Of(statics.tensor(i)));
      const size_t row = b.size() / bucket;
      for (size_t j = batch_ * row; j < b.size(); ++j) {
        if (b.data()[j] != 0) {
          return Finding(absl::StrCat(
              "padding row ", j / row, " of ", statics.spec(i).name, " (batch ",
              batch_, " in bucket ", bucket, ") holds byte ",
              absl::Hex(b.data()[j], absl::kZeroPad2), " at offset ", j % row,
              ", not zero", State(expected)));
        }
      }
    }
    return absl::OkStatus();
  }

  // An eager step of the model under test: equal to the reference unless a
  // derived buffer is expected stale (eager runs check nothing).
  absl::Status Eager() {
    NG_ASSIGN_OR_RETURN(StepBuffers * e, Buffers(eager_, "eager", batch_));
    NG_RETURN_IF_ERROR(FillStep(*e));
    const absl::Status run = model_->Forward(stream_, *e);
    if (!run.ok()) {
      return Finding(
          absl::StrCat("eager step failed: ", run.ToString(), State()));
    }
    NG_RETURN_IF_ERROR(
        CheckIdentities([] { return std::string("an eager step"); }));
    for (SlotInfo& s : slots_) {
      if (s.source >= 0 && ExpectStale(s)) return absl::OkStatus();
    }
    NG_ASSIGN_OR_RETURN(const std::string diff, CompareWithReference(*e));
    if (!diff.empty()) {
      return Finding(absl::StrCat("eager output ", diff, State()));
    }
    return absl::OkStatus();
  }

  // --- faults ---------------------------------------------------------------

  void Rebind(SlotInfo& s, Tensor t) {
    s.slot->Rebind(std::move(t));
    s.expected = s.slot->tensor().defined() ? s.slot->tensor().Identity()
                                            : TensorIdentity();
  }

  // Fault: the slot is rebound to a new allocation while the old one stays
  // alive (the pre-fix loader's pattern). A parameter gets new values, as an
  // update allocating a new tensor would.
  absl::Status RebindAlive(size_t index, uint64_t seed) {
    SlotInfo& s = slots_[index];
    keep_.push_back(s.slot->tensor());
    NG_ASSIGN_OR_RETURN(Tensor fresh, Clone(s.slot->tensor()));
    if (s.is_parameter) {
      std::vector<uint8_t> values(Bytes(s));
      GenerateValues(seed, s.derived < 0, -2, Numel(s), fresh.dtype(),
                     values.data());
      NG_RETURN_IF_ERROR(WriteBytes(fresh, values.data()));
      Rebind(s, fresh);
      Relocate(s);
      std::memcpy(ImageOf(s), values.data(), values.size());
      Wrote(fresh);
    } else {
      Rebind(s, fresh);
    }
    return absl::OkStatus();
  }

  // Fault, undone at once: the slot takes a view of the same bytes at the
  // same address in another layout (a 2-D tensor with its strides swapped, a
  // 1-D one as one row), and every bucket's graph's check (without repair)
  // must report exactly what the harness expects: a move of it where the
  // graph uses it. Then the slot gets its tensor back. Derived buffers are
  // left out (another tensor than the one refreshed is stale as well, which
  // the harness's model does not count).
  absl::Status ProbeLayoutChange(size_t index) {
    SlotInfo& s = slots_[index];
    if (s.source >= 0 || graphs_ == nullptr) return absl::OkStatus();
    const Tensor original = s.slot->tensor();
    if (!original.defined() || original.numel() < 2) return absl::OkStatus();
    absl::StatusOr<Tensor> other;
    if (original.shape().size() == 2 && original.shape()[0] > 1 &&
        original.shape()[1] > 1 && original.is_contiguous()) {
      other = Tensor::FromStorage(original.storage(), original.offset_bytes(),
                                  original.shape(), {1, original.shape()[0]},
                                  original.dtype());
    } else {
      other = original.Reshape({1, original.numel()});
    }
    if (!other.ok()) return absl::OkStatus();  // a layout no view can take
    Rebind(s, *other);
    for (int64_t bucket : buckets()) {
      std::vector<std::string> found;
      for (const Violation& v : graphs_->graph(bucket).Check()) {
        found.push_back(v.name);
      }
      std::sort(found.begin(), found.end());
      const std::vector<std::string> expected = ExpectedViolations(bucket);
      if (found != expected) {
        const std::string what =
            absl::StrCat("bucket ", bucket, "'s check with ", s.name, " as ",
                         other->Identity().ToString(), " found {",
                         absl::StrJoin(found, ", "), "}");
        Rebind(s, original);
        return Finding(absl::StrCat(what, State(expected)));
      }
    }
    Rebind(s, original);
    return absl::OkStatus();
  }

  // Fault: offload and restore. The storage is freed and a new one allocated;
  // with `squat`, another tensor takes the freed block first (and holds other
  // bytes), so the restore lands elsewhere.
  absl::Status FreeRealloc(size_t index, bool squat) {
    SlotInfo& s = slots_[index];
    NG_ASSIGN_OR_RETURN(Tensor backup, ToHost(s.slot->tensor()));
    if (s.is_parameter) {  // the harness's values, not the product's
      std::memcpy(backup.data(), ImageOf(s), Bytes(s));
    }
    Rebind(s, Tensor());
    if (squat) {
      NG_ASSIGN_OR_RETURN(
          Tensor squatter,
          Tensor::Empty(DeviceAllocator(), backup.shape(), backup.dtype()));
      NG_RETURN_IF_ERROR(Fill(squatter, 100.0f));
      keep_.push_back(squatter);
    }
    NG_ASSIGN_OR_RETURN(
        Tensor restored,
        Tensor::Empty(DeviceAllocator(), backup.shape(), backup.dtype()));
    NG_RETURN_IF_ERROR(CopyInto(ViewOf(backup), restored));
    Rebind(s, restored);
    if (s.is_parameter) {
      Relocate(s);
      std::memcpy(ImageOf(s), backup.data(), Bytes(s));
      Wrote(restored);
    }
    return absl::OkStatus();
  }

  // Fault: the slot's memory, unchanged, wrapped in a new storage (as code
  // building a tensor over another tensor's data pointer does): the same
  // address and layout, another storage, which the identity model counts as a
  // move. With `whole`, the new storage spans the old one and the view keeps
  // its offset; else it spans the view alone. Skipped while another slot
  // shares the storage: the harness keeps one value image per storage, and
  // two storages over one memory would need one image for both.
  absl::Status Rewrap(size_t index, bool whole) {
    SlotInfo& s = slots_[index];
    const Tensor current = s.slot->tensor();
    if (!current.defined()) return absl::OkStatus();
    const std::shared_ptr<Storage>& old = current.storage();
    for (const SlotInfo& other : slots_) {
      const Tensor& t = other.slot->tensor();
      if (&other != &s && t.defined() && t.storage() == old) {
        return absl::OkStatus();
      }
    }
    std::shared_ptr<Storage> wrapped =
        whole ? Storage::WrapExternal(old->data(), old->bytes(), old->device(),
                                      old)
              : Storage::WrapExternal(current.data(), current.span_bytes(),
                                      old->device(), old);
    NG_ASSIGN_OR_RETURN(
        Tensor view, Tensor::FromStorage(
                         std::move(wrapped), whole ? current.offset_bytes() : 0,
                         current.shape(), current.strides(), current.dtype()));
    std::vector<uint8_t> values;
    if (s.is_parameter) values.assign(ImageOf(s), ImageOf(s) + Bytes(s));
    Rebind(s, view);
    if (s.is_parameter) {
      Relocate(s);
      std::memcpy(ImageOf(s), values.data(), values.size());
    }
    return absl::OkStatus();
  }

  // Fault: a source weight written in place without refreshing its derived
  // buffer, or (`derived_itself`) the derived buffer written in place by
  // something other than its refresh. Either leaves it stale.
  absl::Status WriteWithoutRefresh(uint8_t pick, bool derived_itself,
                                   uint64_t seed) {
    std::vector<int> sources;
    for (int i : params_) {
      if (slots_[i].derived >= 0) sources.push_back(i);
    }
    if (sources.empty()) return absl::OkStatus();
    SlotInfo& s = slots_[sources[pick % sources.size()]];
    if (derived_itself) {
      const Tensor& d = slots_[s.derived].slot->tensor();
      if (!d.defined()) return absl::OkStatus();
      std::vector<uint8_t> values(d.numel() * DTypeSize(d.dtype()));
      GenerateValues(seed, true, -2, d.numel(), d.dtype(), values.data());
      NG_RETURN_IF_ERROR(WriteBytes(d, values.data()));
      Wrote(d);
      return absl::OkStatus();
    }
    std::vector<uint8_t> values(Bytes(s));
    GenerateValues(seed, false, -2, Numel(s), s.slot->tensor().dtype(),
                   values.data());
    NG_RETURN_IF_ERROR(WriteBytes(s.slot->tensor(), values.data()));
    std::memcpy(ImageOf(s), values.data(), values.size());
    Wrote(s.slot->tensor());
    return absl::OkStatus();
  }

  // Whether slot `s` shares its storage with a derived buffer, or is one and
  // shares it with any slot. A re-slice there could move a view onto a derived
  // buffer's bytes (or a derived buffer onto others'), which the product does
  // not allow for: a refresh writes its own buffer only, and its writes make
  // nothing else stale (TensorSlot::IsStale).
  bool SharesStorageWithDerived(const SlotInfo& s) const {
    const Storage* storage = s.slot->tensor().storage().get();
    for (const SlotInfo& other : slots_) {
      if (&other != &s && (s.source >= 0 || other.source >= 0) &&
          other.slot->tensor().defined() &&
          other.slot->tensor().storage().get() == storage) {
        return true;
      }
    }
    return false;
  }

  // Fault: the slot becomes a view at another offset; within its current
  // storage if that has room (a re-slice), else (or where it could land on a
  // derived buffer) inside a new, larger one.
  absl::Status Reslice(size_t index, uint8_t where) {
    SlotInfo& s = slots_[index];
    const Tensor current = s.slot->tensor();
    const size_t elem = DTypeSize(current.dtype());
    const size_t span = current.span_bytes();
    std::shared_ptr<Storage> storage = current.storage();
    size_t places = (storage->bytes() - span) / elem + 1;
    if (places < 2 || SharesStorageWithDerived(s)) {
      NG_ASSIGN_OR_RETURN(
          storage, Storage::Allocate(DeviceAllocator(), 2 * span + 8 * elem));
      places = (storage->bytes() - span) / elem + 1;
    }
    const size_t offset = (where % places) * elem;
    NG_ASSIGN_OR_RETURN(Tensor values, ToHost(current));
    if (s.is_parameter) std::memcpy(values.data(), ImageOf(s), Bytes(s));
    NG_ASSIGN_OR_RETURN(Tensor view,
                        Tensor::FromStorage(storage, offset, current.shape(),
                                            ContiguousStrides(current.shape()),
                                            current.dtype()));
    keep_.push_back(current);
    NG_RETURN_IF_ERROR(CopyInto(ViewOf(values), view));
    Wrote(view);
    Rebind(s, view);
    if (s.is_parameter) {
      Relocate(s);
      std::memcpy(ImageOf(s), values.data(), Bytes(s));
    }
    return absl::OkStatus();
  }

  // Fault (or design): parameter B takes parameter A's tensor, as tied
  // weights do. Only between parameters of one shape and dtype.
  absl::Status Tie(uint8_t a, uint8_t b) {
    SlotInfo& from = slots_[params_[a % params_.size()]];
    SlotInfo& to = slots_[params_[b % params_.size()]];
    const Tensor t = from.slot->tensor();
    if (&from == &to || !t.defined() || !to.slot->tensor().defined() ||
        t.shape() != to.slot->tensor().shape() ||
        t.dtype() != to.slot->tensor().dtype()) {
      return absl::OkStatus();
    }
    keep_.push_back(to.slot->tensor());
    Rebind(to, t);
    to.image_storage = from.image_storage;
    to.image_offset = from.image_offset;
    to.image = from.image;
    return absl::OkStatus();
  }

  // Fault (or design): the parameters picked by `mask` (of the first picked
  // one's dtype) move into views of one new packed storage, each at an offset
  // `where` spreads over the slots: several may share an offset (aliased
  // views) or overlap partly. Each view gets its parameter's values, copied in
  // order (a later copy overwrites an overlapping earlier one).
  absl::Status Pack(uint8_t mask, uint8_t where) {
    std::vector<int> picked;
    for (size_t i = 0; i < params_.size(); ++i) {
      const Tensor& t = slots_[params_[i]].slot->tensor();
      if (((mask >> (i % 8)) & 1) && t.defined() &&
          (picked.empty() ||
           t.dtype() == slots_[picked[0]].slot->tensor().dtype())) {
        picked.push_back(params_[i]);
      }
    }
    if (picked.empty()) return absl::OkStatus();
    int64_t longest = 0;
    for (int i : picked) longest = std::max(longest, Numel(slots_[i]));
    const DType dtype = slots_[picked[0]].slot->tensor().dtype();
    const int64_t places = static_cast<int64_t>(picked.size());
    NG_ASSIGN_OR_RETURN(
        Tensor packed,
        Tensor::Empty(DeviceAllocator(), {places * longest + longest}, dtype));
    for (size_t k = 0; k < picked.size(); ++k) {
      // Offsets: slot k at place (where + 3 k) % places, shifted by half a
      // slot for odd `where` bits so views overlap partly too.
      const int64_t place = (where + 3 * static_cast<int64_t>(k)) % places;
      const int64_t shift = ((where >> (k % 8)) & 1) ? longest / 2 : 0;
      NG_RETURN_IF_ERROR(
          MoveIntoView(slots_[picked[k]], packed, place * longest + shift));
    }
    return absl::OkStatus();
  }

  // Moves slot `s` into the view of `packed` (1-D) at element `offset`,
  // holding its values (a parameter's from the harness's image, a derived
  // buffer's as they are), written through the API; the old tensor stays
  // alive.
  absl::Status MoveIntoView(SlotInfo& s, const Tensor& packed, int64_t offset) {
    const Tensor current = s.slot->tensor();
    std::vector<uint8_t> values(Bytes(s));
    if (s.is_parameter) {
      std::memcpy(values.data(), ImageOf(s), values.size());
    } else {
      NG_ASSIGN_OR_RETURN(HostBytes now, HostBytes::Of(current));
      std::memcpy(values.data(), now.data(), values.size());
    }
    NG_ASSIGN_OR_RETURN(Tensor view, packed.Narrow(0, offset, current.numel()));
    NG_ASSIGN_OR_RETURN(view, view.Reshape(current.shape()));
    NG_RETURN_IF_ERROR(WriteBytes(view, values.data()));
    Wrote(view);
    keep_.push_back(current);
    Rebind(s, view);
    if (s.is_parameter) {
      Relocate(s);
      std::memcpy(ImageOf(s), values.data(), values.size());
    }
    return absl::OkStatus();
  }

  // Fault (or design): the derived buffers picked by `mask` (bit i % 8 picks
  // derived buffer i) and, `with_params`, the parameters of their dtype move
  // into disjoint views of one new storage, in an order `where` rotates.
  // Then a refresh of one writes a storage the others (and, with parameters,
  // sources) live in: it must not make them stale, and a write by anything
  // else must make every derived buffer there stale.
  absl::Status PackDerived(uint8_t mask, uint8_t where, bool with_params) {
    std::vector<int> picked;
    DType dtype = DType::kF32;
    for (size_t i = 0; i < derived_.size(); ++i) {
      const Tensor& t = slots_[derived_[i]].slot->tensor();
      if (((mask >> (i % 8)) & 1) && t.defined() &&
          (picked.empty() || t.dtype() == dtype)) {
        dtype = t.dtype();
        picked.push_back(derived_[i]);
      }
    }
    if (picked.empty()) return absl::OkStatus();
    if (with_params) {
      for (int i : params_) {
        const Tensor& t = slots_[i].slot->tensor();
        if (t.defined() && t.dtype() == dtype) picked.push_back(i);
      }
    }
    int64_t longest = 0;
    for (int i : picked) longest = std::max(longest, Numel(slots_[i]));
    const int64_t places = static_cast<int64_t>(picked.size());
    NG_ASSIGN_OR_RETURN(
        Tensor packed,
        Tensor::Empty(DeviceAllocator(), {places * longest}, dtype));
    for (int64_t k = 0; k < places; ++k) {
      NG_RETURN_IF_ERROR(MoveIntoView(slots_[picked[k]], packed,
                                      (k + where) % places * longest));
    }
    return absl::OkStatus();
  }

  // --- self-test faults (the bugs the self-test modes put back) -------------

  void InstallSelfTestFault() {
    if (mode_ == FuzzMode::kDefault || mode_ == FuzzMode::kUncheckedLegacy ||
        mode_ == FuzzMode::kNoFreshness) {
      return;
    }
    if (mode_ == FuzzMode::kReallocRmsNorm &&
        config_.kind != StackKind::kQwen3) {
      return;  // only the Qwen3 / Llama stack is built of plain RmsNorms
    }
    absl::flat_hash_map<std::string, Parameter*> by_name;
    model_->ForEachParameter(
        [&](const std::string& name, Parameter& p) { by_name[name] = &p; });
    for (int i : params_) {
      Parameter* p = by_name[slots_[i].name];
      TensorSlot* derived =
          slots_[i].derived >= 0 ? slots_[slots_[i].derived].slot : nullptr;
      auto count = std::make_shared<int>(0);
      auto kept = std::make_shared<std::vector<Tensor>>();
      const FuzzMode mode = mode_;
      p->set_after_load([p, derived, count, kept, mode]() -> absl::Status {
        ++*count;
        TensorSlot& w = p->slot();
        if (mode == FuzzMode::kReallocRmsNorm ||
            (mode == FuzzMode::kReallocNth && *count == 40)) {
          // `self.weight = new_tensor`: the old storage stays alive.
          NG_ASSIGN_OR_RETURN(Tensor fresh, Clone(w.tensor()));
          kept->push_back(w.tensor());
          w.Rebind(fresh);
        }
        if (mode == FuzzMode::kCorruptLoad) {
          // The copy stopped one element short: the last keeps its old value.
          NG_ASSIGN_OR_RETURN(Tensor now, ToHost(w.tensor()));
          const size_t es = DTypeSize(now.dtype());
          const size_t last = (now.numel() - 1) * es;
          if (!kept->empty()) {
            std::memcpy(static_cast<char*>(now.data()) + last,
                        static_cast<const char*>(kept->back().data()) + last,
                        es);
            NG_RETURN_IF_ERROR(CopyInto(ViewOf(now), w.tensor()));
          }
          kept->assign(1, now);
        }
        if (derived == nullptr) return absl::OkStatus();
        if (mode == FuzzMode::kSkipRefreshNth && *count % 50 == 0) {
          derived->MarkRefreshed();  // the refresh skipped, marked done
          return absl::OkStatus();
        }
        return derived->Refresh();
      });
    }
  }

  const Config config_;
  const FuzzMode mode_;
  Stream& stream_ = DeviceStream();
  GraphOptions options_;
  std::unique_ptr<NormStack> model_;
  OffsetProbe probe_;
  std::unique_ptr<BucketedGraphs> graphs_;  // both buckets, made at Init
  std::vector<SlotInfo> slots_;  // model slots, then both buckets' statics
  size_t model_slots_ = 0;
  std::vector<int> params_;   // indices of parameters in slots_
  std::vector<int> derived_;  // indices of derived buffers (model slots only)
  absl::flat_hash_map<absl::string_view, int> index_;
  std::vector<RefLayer> ref_layers_;
  RefNorm ref_final_;
  // Per storage id: the harness's byte image of every storage parameters
  // live in, and the writes the harness knows of.
  absl::flat_hash_map<uint64_t, std::unique_ptr<StorageRecord>> storages_;
  // Per bucket (in buckets() order), per slot: its identity when the graph
  // last captured or repaired it.
  std::vector<std::vector<TensorIdentity>> captured_;
  // Per bucket: the modules whose structure changed since its graph last
  // captured, and whether the graphs were invalidated since.
  std::vector<std::vector<std::string>> structure_changed_;
  std::vector<bool> invalidated_;
  std::vector<std::string> modules_;  // ChangeStructure's candidates (paths)
  std::vector<std::vector<StepTensorSpec>> specs_by_batch_;
  std::vector<std::unique_ptr<StepBuffers>> io_, eager_;
  std::vector<std::vector<uint8_t>> inputs_;
  uint64_t inputs_seed_ = 0;
  int64_t inputs_batch_ = 0;
  std::vector<RefOutput> reference_;  // the last reference step's outputs
  size_t reference_size_ = 0;         // (the first reference_size_ of them)
  std::vector<uint8_t> ref_r_, ref_a_, ref_b_;  // Reference's scratch
  NormModelOutput norm_model_;                  // RefRun's scratch
  // The first disagreement between the reference kernel and the norm model.
  std::string model_disagreement_;
  std::vector<float> one_plus_w_;  // DerivedHoldsOnePlusW's scratch
  std::vector<float> ref_weight_;  // RefRun's 1 + w
  std::vector<Tensor> keep_;       // old storages kept alive, squatters
  absl::flat_hash_map<uint16_t, std::unique_ptr<LoadPlan>> plans_;
  int64_t batch_ = 1;
  uint64_t input_seed_ = 1;
  int steps_ = 0;
  int loads_ = 0;
  int burst_replays_ = 0;        // replays in bursts (kMaxBurstReplays)
  int64_t loaded_elements_ = 0;  // over every load (kMaxLoadedElements)
  // The parameter whose after-load hook fails next (InstallFailingHooks), or
  // -1; and whether it fails after the module's own hook.
  int failing_hook_ = -1;
  bool fail_after_module_hook_ = false;
};

}  // namespace

FuzzMode FuzzModeFromEnv() {
  const char* mode = std::getenv("NORMGRAPH_FUZZ_MODE");
  if (mode == nullptr || *mode == '\0') return FuzzMode::kDefault;
  for (FuzzMode m :
       {FuzzMode::kDefault, FuzzMode::kUncheckedLegacy, FuzzMode::kNoFreshness,
        FuzzMode::kReallocRmsNorm, FuzzMode::kSkipRefreshNth,
        FuzzMode::kReallocNth, FuzzMode::kCorruptLoad}) {
    if (absl::string_view(mode) == FuzzModeName(m)) return m;
  }
  std::fprintf(stderr,
               "graph_replay_fuzzer: unknown NORMGRAPH_FUZZ_MODE '%s'\n", mode);
  std::abort();
}

const char* FuzzModeName(FuzzMode mode) {
  switch (mode) {
    case FuzzMode::kDefault:
      return "default";
    case FuzzMode::kUncheckedLegacy:
      return "unchecked-legacy";
    case FuzzMode::kNoFreshness:
      return "no-freshness";
    case FuzzMode::kReallocRmsNorm:
      return "realloc-rms-norm";
    case FuzzMode::kSkipRefreshNth:
      return "skip-refresh-50th";
    case FuzzMode::kReallocNth:
      return "realloc-40th-load";
    case FuzzMode::kCorruptLoad:
      return "corrupt-load";
  }
  return "?";
}

absl::Status RunGraphReplayInput(absl::Span<const uint8_t> data,
                                 FuzzMode mode) {
  Reader r(data);
  uint8_t h0, h1;
  if (!r.Byte(&h0) || !r.Byte(&h1)) return absl::OkStatus();
  Config c;
  // Bits 7 and 0: Qwen3.5 (half the headers: zero-centred, gated and derived
  // buffers), Gemma3 (a quarter), the Qwen3 / Llama stack of plain RMSNorms (a
  // quarter; Llama, without q/k norms, for one size byte in four).
  const uint32_t mix = (h1 + 1u) * 2654435761u;
  if ((h0 & 0x81) == 0x81) {
    c.kind = StackKind::kQwen3;
    c.qk_norm = ((mix >> 29) & 3) != 0;
  } else {
    c.kind = (h0 & 0x81) == 0x01 ? StackKind::kGemma3 : StackKind::kQwen35;
  }
  // The self-test modes about derived buffers need a stack that has them.
  if ((mode == FuzzMode::kUncheckedLegacy || mode == FuzzMode::kNoFreshness) &&
      c.kind == StackKind::kQwen3) {
    c.kind = StackKind::kQwen35;
    c.qk_norm = true;
  }
  c.legacy = (h0 >> 1) & 1;
  c.dtype = static_cast<DType>((h0 >> 2) % 3);
  c.order =
      (h0 >> 4) & 1 ? RoundingOrder::kEngine : RoundingOrder::kHuggingFace;
  c.policy = ReplayPolicy::kFail;
  if ((h0 >> 5) % 4 == 1) c.policy = ReplayPolicy::kRecapture;
  if ((h0 >> 5) % 4 == 2) c.policy = ReplayPolicy::kRebind;
  // One byte picks every size (a short header lets the fuzzer reach the ops
  // quickly); a fixed mix spreads the 256 choices over odd and even sizes and
  // both layer kinds.
  // The last 16 size bytes give rows of 48 to 1040 elements, so the kernels'
  // 64-element blocks and vector bodies with their tails (and, on CUDA, plans
  // of several chunks a thread) run too; rarely, as each load then generates
  // and checks tens of times more values.
  static constexpr int64_t kWideHidden[16] = {48,  63,  64,  65,  72,  96,
                                              127, 128, 129, 136, 200, 255,
                                              256, 257, 520, 1040};
  // The 8 size bytes before them give deep models: 10 to 12 layers (names
  // whose natural and lexicographic orders differ: "layers.10." sorts before
  // "layers.2." as text) with heads of 16 to 128 elements.
  c.hidden = h1 < 240 ? 1 + h1 % 40 : kWideHidden[h1 - 240];
  const bool deep = h1 >= 232 && h1 < 240;
  c.layers = deep ? 10 + (mix >> 8) % 3 : 1 + (mix >> 8) % 4;
  if (c.kind == StackKind::kQwen35) {
    const uint32_t types = deep ? (h1 * 0x9E3779B9u) >> 9 : mix >> 12;
    for (int64_t i = 0; i < c.layers; ++i) {
      c.layer_types.push_back((types >> i) & 1
                                  ? Qwen35LayerType::kFullAttention
                                  : Qwen35LayerType::kLinearAttention);
    }
  }
  static constexpr int64_t kDeepHeadDims[4] = {16, 48, 64, 128};
  c.head_dim = deep ? kDeepHeadDims[(mix >> 16) % 4] : 1 + (mix >> 16) % 12;
  c.heads = 1 + (mix >> 20) % 2;
  c.kv_heads = 1 + (mix >> 28) % 2;
  c.value_heads = 1 + (mix >> 21) % 2;
  c.value_head_dim =
      deep ? kDeepHeadDims[(mix >> 24) % 4] : 1 + (mix >> 24) % 12;
  static const std::vector<int64_t> kBucketSets[] = {
      {1, kLargestBucket},    {1, kLargestBucket}, {1, 2, kLargestBucket},
      {1, kLargestBucket},    {2, kLargestBucket}, {1, kLargestBucket},
      {1, 3, kLargestBucket}, {1, kLargestBucket}};
  c.buckets = kBucketSets[(mix >> 2) % 8];
  static constexpr float kEpsChoices[] = {1e-6f, 1e-5f, 1e-6f, 0.25f};
  c.eps = kEpsChoices[(mix >> 5) % 4];
  if (mode == FuzzMode::kUncheckedLegacy) {
    c.legacy = true;
    c.policy = ReplayPolicy::kUnchecked;
  } else if (mode == FuzzMode::kNoFreshness) {
    c.legacy = false;
    c.policy = ReplayPolicy::kFail;
  }
  Harness harness(std::move(c), mode);
  NG_RETURN_IF_ERROR(harness.Init());
  for (int op = 0; op < kMaxOps && !harness.done() && !r.exhausted(); ++op) {
    NG_RETURN_IF_ERROR(harness.Step(r));
  }
  return harness.FinalReplay();
}

}  // namespace normgraph::fuzz
