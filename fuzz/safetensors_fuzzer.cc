// Fuzzes the safetensors reader and the transactional loader with arbitrary
// bytes as a checkpoint for a small Qwen3.5-shaped stack. Any bytes must give
// either a clean error, after which every weight and derived buffer is
// bit-identical to before, or a correct load: each loaded parameter holds its
// source values rounded to the parameter's dtype, every zero-centred norm's
// gemma_weight is fresh and equals 1 + w, and nothing else changed. Loads run
// strict and lenient (missing and unexpected tensors allowed).

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/tensor_util.h"
#include "layers/qwen3_5_norm_stack.h"
#include "layers/safetensors/reader.h"
#include "layers/weights.h"

namespace normgraph::fuzz {
namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "safetensors_fuzzer: %s\n", what.c_str());
  std::abort();
}

// The model and its canonical weights are built once; every input starts from
// that state.
struct Fixture {
  Fixture() {
    Qwen35NormStackConfig c;
    c.num_hidden_layers = 2;
    c.layer_types = {Qwen35LayerType::kLinearAttention,
                     Qwen35LayerType::kFullAttention};
    c.hidden_size = 8;
    c.num_attention_heads = 1;
    c.num_key_value_heads = 1;
    c.head_dim = 4;
    c.linear_num_value_heads = 1;
    c.linear_value_head_dim = 4;
    model = *Qwen35NormStack::Create(c);
    uint64_t seed = 1;
    std::vector<std::pair<std::string, Tensor>> weights;
    model->ForEachParameter([&](const std::string& name, Parameter& p) {
      Tensor t = *Tensor::Empty(CpuAllocator(), p.tensor().shape(),
                                p.tensor().dtype());
      if (!FillNormal(t, seed++, 0.0f, 0.5f).ok())
        Fail("cannot fill the canonical weights");
      weights.emplace_back(name, t);
    });
    canonical = *WeightSet::FromTensors(weights);
    Reset();
  }

  void Reset() {
    if (!LoadWeights(*model, canonical).ok())
      Fail("cannot restore the canonical weights");
    snapshot.clear();
    model->ForEachSlot([&](absl::string_view, TensorSlot& slot) {
      snapshot.push_back(*Clone(slot.tensor()));
    });
  }

  // Names of the slots whose bytes differ from the snapshot.
  std::vector<std::string> Changed() {
    std::vector<std::string> changed;
    size_t i = 0;
    model->ForEachSlot([&](absl::string_view name, TensorSlot& slot) {
      if (!BitwiseEqual(slot.tensor(), snapshot[i++]))
        changed.emplace_back(name);
    });
    return changed;
  }

  std::unique_ptr<Qwen35NormStack> model;
  WeightSet canonical;
  std::vector<Tensor> snapshot;  // every slot, in ForEachSlot order
};

// True if element `i` of `data` has exactly the bits of `value` rounded to
// `dtype`.
bool HoldsRounded(const void* data, DType dtype, int64_t i, float value) {
  uint8_t want[4];
  StoreFromFloat(want, dtype, 0, RoundTo(dtype, value));
  return std::memcmp(static_cast<const char*>(data) + i * DTypeSize(dtype),
                     want, DTypeSize(dtype)) == 0;
}

// After a successful load: every loaded parameter holds its source, rounded;
// the rest is unchanged; derived buffers are fresh and equal 1 + w.
void CheckLoaded(Fixture& f, const safetensors::SafetensorsFile& file) {
  size_t i = 0;
  f.model->ForEachSlot([&](absl::string_view name, TensorSlot& slot) {
    const Tensor& now = slot.tensor();
    const Tensor& before = f.snapshot[i++];
    if (slot.source() != nullptr) {
      if (slot.IsStale()) Fail(absl::StrCat(name, " is stale after a load"));
      const Tensor& w = slot.source()->tensor();
      for (int64_t j = 0; j < now.numel(); ++j) {
        const float want = 1.0f + LoadAsFloat(w.data(), w.dtype(), j);
        const float got = LoadAsFloat(now.data(), now.dtype(), j);
        if (!(got == want || (std::isnan(got) && std::isnan(want)))) {
          Fail(
              absl::StrCat(name, "[", j, "] is ", got, ", not 1 + w = ", want));
        }
      }
      return;
    }
    const safetensors::TensorEntry* src = file.Find(name);
    if (src == nullptr) {
      if (!BitwiseEqual(now, before))
        Fail(absl::StrCat(name, " changed but was not in the file"));
      return;
    }
    for (int64_t j = 0; j < now.numel(); ++j) {
      const float v = LoadAsFloat(src->data, *src->dtype, j);
      if (!HoldsRounded(now.data(), now.dtype(), j, v) &&
          !(std::isnan(v) &&
            std::isnan(LoadAsFloat(now.data(), now.dtype(), j)))) {
        Fail(
            absl::StrCat(name, "[", j, "] does not hold its source value ", v));
      }
    }
  });
}

}  // namespace
}  // namespace normgraph::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace normgraph;
  using namespace normgraph::fuzz;
  static Fixture* f = new Fixture;
  auto bytes =
      std::make_shared<std::string>(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<safetensors::SafetensorsFile> file =
      safetensors::SafetensorsFile::FromBytes(bytes, "input");
  if (!file.ok()) {
    if (file.status().message().empty()) Fail("an error without a message");
    return 0;
  }
  for (bool lenient : {false, true}) {
    LoadOptions options;
    options.allow_missing = lenient;
    options.ignore_unexpected = lenient;
    absl::StatusOr<LoadReport> report =
        LoadWeights(*f->model, WeightSet::FromSafetensors(*file), options);
    if (!report.ok()) {
      if (report.status().message().empty()) Fail("an error without a message");
      const std::vector<std::string> changed = f->Changed();
      if (!changed.empty())
        Fail(absl::StrCat("a failed load changed ", changed.front()));
      continue;
    }
    CheckLoaded(*f, *file);
    f->Reset();
  }
  return 0;
}
