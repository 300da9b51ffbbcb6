#include "fuzz/graph_replay_harness.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "core/runtime.h"
#include "core/status_macros.h"
#include "core/step_buffers.h"
#include "core/tensor_util.h"
#include "graph/bucketed_graphs.h"
#include "layers/gemma3_norm_stack.h"
#include "layers/legacy_zero_centered_rms_norm.h"
#include "layers/qwen3_5_norm_stack.h"
#include "layers/safetensors/reader.h"
#include "layers/safetensors/writer.h"
#include "layers/weights.h"

namespace normgraph::fuzz {
namespace {

// Where the fuzzed stacks live: NORMGRAPH_FUZZ_DEVICE (cpu, cuda, cuda:N),
// the CPU by default. Set up once per process; a device that cannot be opened
// stops the process with the reason (a fuzzer must not silently fall back).
DeviceRuntime& Runtime() {
  static DeviceRuntime* runtime = [] {
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

// One stream for the process (creating a CUDA stream per input would cost more
// than the input).
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

// Two buckets keep captures cheap; batches 2 and 3 still run padded in
// bucket 4.
const std::vector<int64_t> kBuckets = {1, 4};

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
  kTie,   // a parameter slot takes another parameter's tensor (tied weights)
  kPack,  // parameters move into views of one packed storage
  kNumOps,
};

// Reads bytes off the front of the input; every read may fail when the input
// runs out.
class Reader {
 public:
  explicit Reader(absl::Span<const uint8_t> data) : data_(data) {}
  bool Byte(uint8_t* out) {
    if (pos_ >= data_.size()) return false;
    *out = data_[pos_++];
    return true;
  }

 private:
  absl::Span<const uint8_t> data_;
  size_t pos_ = 0;
};

absl::Status Finding(absl::string_view what) {
  return absl::InternalError(absl::StrCat("oracle: ", what));
}

// One slot the faults can hit, with what the harness knows of it structurally.
struct SlotInfo {
  std::string name;
  TensorSlot* slot;
  bool is_parameter;
  int64_t bucket;  // a static buffer of this bucket's graph; 0 for model slots
  bool touched;    // read or written by the captured step
  std::string derived;  // the derived buffer this slot is the source of, if any
};

struct Config {
  bool qwen = true;
  bool legacy = false;
  DType dtype = DType::kBF16;
  RoundingOrder order = RoundingOrder::kHuggingFace;
  int64_t hidden = 8;
  int64_t layers = 1;
  std::vector<Qwen35LayerType> layer_types;
  int64_t head_dim = 4, heads = 1, value_heads = 1, value_head_dim = 4;
  ReplayPolicy policy = ReplayPolicy::kFail;
};

absl::StatusOr<std::unique_ptr<NormStack>> MakeModel(const Config& c,
                                                     bool legacy) {
  if (c.qwen) {
    Qwen35NormStackConfig q;
    q.num_hidden_layers = c.layers;
    q.hidden_size = c.hidden;
    q.num_attention_heads = c.heads;
    q.num_key_value_heads = 1;
    q.head_dim = c.head_dim;
    q.linear_num_value_heads = c.value_heads;
    q.linear_value_head_dim = c.value_head_dim;
    q.layer_types = c.layer_types;
    q.dtype = c.dtype;
    q.order = c.order;
    q.allocator = &DeviceAllocator();
    if (legacy) q.zero_centered_factory = LegacyZeroCenteredFactory();
    NG_ASSIGN_OR_RETURN(auto m, Qwen35NormStack::Create(q));
    return std::unique_ptr<NormStack>(std::move(m));
  }
  Gemma3NormStackConfig g;
  g.num_hidden_layers = c.layers;
  g.hidden_size = c.hidden;
  g.num_attention_heads = c.heads;
  g.num_key_value_heads = 1;
  g.head_dim = c.head_dim;
  g.dtype = c.dtype;
  g.order = c.order;
  g.allocator = &DeviceAllocator();
  if (legacy) g.zero_centered_factory = LegacyZeroCenteredFactory();
  NG_ASSIGN_OR_RETURN(auto m, Gemma3NormStack::Create(g));
  return std::unique_ptr<NormStack>(std::move(m));
}

// Weights for the parameters `mask` picks (bit i % 8 picks parameter i; 0xFF
// or 0: all).
absl::StatusOr<NamedTensors> WeightSubset(NormStack& model, uint8_t mask,
                                          uint64_t seed) {
  NG_ASSIGN_OR_RETURN(NamedTensors all, RandomWeights(model, seed * 131));
  if (mask == 0xFF || mask == 0) return all;
  NamedTensors picked;
  for (size_t i = 0; i < all.size(); ++i) {
    if ((mask >> (i % 8)) & 1) picked.push_back(std::move(all[i]));
  }
  return picked;
}

// The expensive, input-independent part, built once per configuration and
// reused: the model under test, the reference model, and the weight sets A and
// B. Every input starts by Reset().
struct Fixture {
  static absl::StatusOr<std::unique_ptr<Fixture>> Create(const Config& config) {
    auto f = std::make_unique<Fixture>();
    NG_ASSIGN_OR_RETURN(f->model, MakeModel(config, config.legacy));
    NG_ASSIGN_OR_RETURN(f->shadow, MakeModel(config, /*legacy=*/false));
    f->shadow->ForEachParameter([&](const std::string& name, Parameter& p) {
      f->shadow_params[name] = &p;
    });
    f->model->ForEachSlot([&](absl::string_view, TensorSlot& slot) {
      f->originals.emplace_back(&slot, slot.tensor());
    });
    NG_ASSIGN_OR_RETURN(f->set_a, WeightSubset(*f->model, 0xFF, 11));
    NG_ASSIGN_OR_RETURN(f->set_b, WeightSubset(*f->model, 0xFF, 22));
    return f;
  }

  // Puts every slot back on its original tensor (undoing the previous input's
  // faults).
  void RestoreSlots() {
    for (auto& [slot, tensor] : originals) {
      if (slot->tensor().Identity() != tensor.Identity()) slot->Rebind(tensor);
    }
  }

  std::unique_ptr<NormStack> model, shadow;
  std::map<std::string, Parameter*> shadow_params;
  NamedTensors set_a, set_b;
  std::vector<std::pair<TensorSlot*, Tensor>> originals;
};

class Harness {
 public:
  Harness(Config config, FuzzMode mode, Fixture& fixture)
      : config_(std::move(config)), mode_(mode), fx_(fixture) {}

  absl::Status Init() {
    fx_.RestoreSlots();
    NG_RETURN_IF_ERROR(LoadSet(fx_.set_a, /*from_safetensors=*/false));
    options_.policy = config_.policy;
    options_.check_freshness = mode_ != FuzzMode::kNoFreshness;
    NG_RETURN_IF_ERROR(Capture());
    MarkAllRefreshed();  // the load above left every derived buffer fresh
    return absl::OkStatus();
  }

  // Every input ends with a replay, so every state it built is checked.
  absl::Status FinalReplay() { return Replay(); }

  absl::Status Step(Reader& r) {
    uint8_t op, a = 0, b = 0, c = 0;
    if (!r.Byte(&op)) return absl::OkStatus();
    if (Tracing()) std::fprintf(stderr, "op %d\n", op % kNumOps);
    switch (op % kNumOps) {
      case kLoad: {
        if (!r.Byte(&a) || !r.Byte(&b) || !r.Byte(&c)) return absl::OkStatus();
        NG_ASSIGN_OR_RETURN(auto weights,
                            WeightSubset(*fx_.model, a, 1000 + b));
        return LoadSet(weights, c & 1);
      }
      case kSwap:
        if (!r.Byte(&a)) return absl::OkStatus();
        return LoadSet(a & 1 ? fx_.set_b : fx_.set_a, false);
      case kInputs:
        if (!r.Byte(&a)) return absl::OkStatus();
        input_seed_ = 7919 * a + 1;
        return absl::OkStatus();
      case kBatch:
        if (!r.Byte(&a)) return absl::OkStatus();
        batch_ = 1 + a % kBuckets.back();
        return absl::OkStatus();
      case kReplay:
        return Replay();
      case kEager:
        return EagerIsDeterministic();
      case kRecapture:
        return Capture();
      case kPolicy:
        if (!r.Byte(&a)) return absl::OkStatus();
        if (mode_ == FuzzMode::kDefault) {
          const ReplayPolicy policies[] = {ReplayPolicy::kFail,
                                           ReplayPolicy::kRecapture,
                                           ReplayPolicy::kRebind};
          options_.policy = policies[a % 3];
          graphs_->set_policy(options_.policy);
        }
        return absl::OkStatus();
      case kRebindAlive:
        if (!r.Byte(&a) || !r.Byte(&b)) return absl::OkStatus();
        return RebindAlive(slots_[a % slots_.size()], b);
      case kFreeRealloc:
        if (!r.Byte(&a) || !r.Byte(&b)) return absl::OkStatus();
        return FreeRealloc(slots_[a % slots_.size()], b & 1);
      case kStale:
        if (!r.Byte(&a) || !r.Byte(&b)) return absl::OkStatus();
        return WriteSourceWithoutRefresh(a, b);
      case kReslice:
        if (!r.Byte(&a) || !r.Byte(&b)) return absl::OkStatus();
        return Reslice(slots_[a % slots_.size()], b);
      case kTie:
        if (!r.Byte(&a) || !r.Byte(&b)) return absl::OkStatus();
        return Tie(a, b);
      case kPack:
        if (!r.Byte(&a) || !r.Byte(&b)) return absl::OkStatus();
        return Pack(a, b);
    }
    return absl::OkStatus();
  }

 private:
  const SlotInfo* Find(const std::string& name) const {
    for (const SlotInfo& s : slots_) {
      if (s.name == name) return &s;
    }
    return nullptr;
  }

  absl::Status LoadSet(
      const std::vector<std::pair<std::string, Tensor>>& weights,
      bool from_safetensors) {
    LoadOptions options;
    options.allow_missing = true;
    absl::StatusOr<LoadReport> report;
    if (from_safetensors) {
      std::vector<safetensors::NamedView> views;
      for (const auto& [name, t] : weights) views.push_back({name, ViewOf(t)});
      NG_ASSIGN_OR_RETURN(std::string bytes, safetensors::Serialize(views));
      NG_ASSIGN_OR_RETURN(auto file,
                          safetensors::SafetensorsFile::FromBytes(
                              std::make_shared<std::string>(std::move(bytes))));
      report =
          LoadWeights(*fx_.model, WeightSet::FromSafetensors(file), options);
    } else {
      NG_ASSIGN_OR_RETURN(WeightSet set, WeightSet::FromTensors(weights));
      report = LoadWeights(*fx_.model, set, options);
    }
    if (!report.ok())
      return Finding(absl::StrCat("a valid weight load failed: ",
                                  report.status().message()));
    // Every loaded parameter's storage was written; the loader then refreshed
    // every derived buffer left stale (the legacy loader also moved them,
    // which the identity comparison sees by itself).
    for (const auto& [name, t] : weights) {
      const SlotInfo* s = Find(name);
      if (s != nullptr) Wrote(s->slot->tensor());
    }
    MarkAllRefreshed();
    return absl::OkStatus();
  }

  absl::Status Capture() {
    graphs_.reset();
    StepFunction step;
    NormStack* m = fx_.model.get();
    step.specs = [m](int64_t batch) { return m->StepSpecs(batch); };
    step.forward = [m](Stream& s, const StepBuffers& b) {
      return m->Forward(s, b);
    };
    step.owners = {m};
    NG_ASSIGN_OR_RETURN(
        graphs_, BucketedGraphs::Create("decode", stream_, step, kBuckets,
                                        options_, DeviceAllocator()));
    NG_RETURN_IF_ERROR(InventorySlots());
    for (int64_t bucket : kBuckets) RecordCaptured(bucket);
    return absl::OkStatus();
  }

  absl::Status InventorySlots() {
    slots_.clear();
    std::map<const TensorSlot*, std::string> names;
    fx_.model->ForEachSlot([&](absl::string_view name, TensorSlot& slot) {
      names[&slot] = std::string(name);
      slots_.push_back(SlotInfo{std::string(name), &slot,
                                slot.kind() == SlotKind::kParameter, 0, true,
                                ""});
    });
    for (SlotInfo& s : slots_) {
      if (s.slot->source() == nullptr) continue;
      for (SlotInfo& src : slots_) {
        if (src.slot == s.slot->source()) {
          src.derived = s.name;
          src.touched =
              false;  // the kernels read the derived buffer, not its source
        }
      }
    }
    bool any_full = !config_.qwen, any_linear = false;
    for (Qwen35LayerType t : config_.layer_types) {
      any_full |= t == Qwen35LayerType::kFullAttention;
      any_linear |= t == Qwen35LayerType::kLinearAttention;
    }
    for (int64_t bucket : kBuckets) {
      graphs_->static_buffers(bucket).ForEachSlot([&](absl::string_view name,
                                                      TensorSlot& slot) {
        const bool attention_input =
            absl::EndsWith(name, ".q") || absl::EndsWith(name, ".k");
        const bool linear_input = absl::StrContains(name, ".linear_");
        const bool touched =
            !(attention_input && !any_full) && !(linear_input && !any_linear);
        slots_.push_back(
            SlotInfo{std::string(name), &slot, false, bucket, touched, ""});
      });
    }
    return absl::OkStatus();
  }

  // --- the harness's own model of what a replay must find ---------------
  //
  // Moved: a touched slot whose identity differs from what the bucket's graph
  // last captured or repaired (compared with the identity recorded then, so a
  // view moved away and back is no move). Stale: a derived buffer whose
  // source is now another tensor (storage, address or layout), or whose
  // source storage the harness
  // wrote after the buffer's last refresh (the loader refreshes everything
  // stale after a load; a checked replay refreshes what it finds stale).

  bool Relevant(const SlotInfo& s, int64_t bucket) const {
    return s.touched && (s.bucket == 0 || s.bucket == bucket);
  }

  void RecordCaptured(int64_t bucket) {
    std::map<std::string, TensorIdentity>& ids = captured_[bucket];
    ids.clear();
    for (const SlotInfo& s : slots_) {
      if (Relevant(s, bucket)) ids[s.name] = s.slot->tensor().Identity();
    }
  }

  std::set<std::string> ExpectedMoved(int64_t bucket) {
    std::set<std::string> moved;
    const std::map<std::string, TensorIdentity>& ids = captured_[bucket];
    for (const SlotInfo& s : slots_) {
      if (!Relevant(s, bucket)) continue;
      auto it = ids.find(s.name);
      if (it == ids.end() || s.slot->tensor().Identity() != it->second) {
        moved.insert(s.name);
      }
    }
    return moved;
  }

  void Wrote(const Tensor& t) {
    if (t.defined()) ++writes_[t.storage()->id()];
  }

  void MarkAllRefreshed() {
    for (const SlotInfo& s : slots_) {
      const TensorSlot* source = s.slot->source();
      if (source == nullptr || !source->tensor().defined()) continue;
      const uint64_t id = source->tensor().storage()->id();
      refreshed_[s.name] = {source->tensor().Identity(), writes_[id]};
    }
  }

  std::set<std::string> ExpectedStale() {
    std::set<std::string> stale;
    for (const SlotInfo& s : slots_) {
      const TensorSlot* source = s.slot->source();
      if (source == nullptr) continue;
      auto it = refreshed_.find(s.name);
      if (!source->tensor().defined() || it == refreshed_.end()) {
        stale.insert(s.name);
        continue;
      }
      const uint64_t id = source->tensor().storage()->id();
      if (source->tensor().Identity() != it->second.first ||
          writes_[id] != it->second.second) {
        stale.insert(s.name);
      }
    }
    return stale;
  }

  // Parameter slots of the model, optionally only those of `dtype`.
  std::vector<const SlotInfo*> Parameters() const {
    std::vector<const SlotInfo*> params;
    for (const SlotInfo& s : slots_) {
      if (s.is_parameter) params.push_back(&s);
    }
    return params;
  }

  // Fault (or design): parameter B takes parameter A's tensor, as tied
  // weights do. Only between parameters of one shape and dtype.
  absl::Status Tie(uint8_t a, uint8_t b) {
    const std::vector<const SlotInfo*> params = Parameters();
    if (params.empty()) return absl::OkStatus();
    const SlotInfo& from = *params[a % params.size()];
    const SlotInfo& to = *params[b % params.size()];
    const Tensor& t = from.slot->tensor();
    if (&from == &to || !t.defined() || !to.slot->tensor().defined() ||
        t.shape() != to.slot->tensor().shape() ||
        t.dtype() != to.slot->tensor().dtype()) {
      return absl::OkStatus();
    }
    keep_.push_back(to.slot->tensor());
    to.slot->Rebind(t);
    return absl::OkStatus();
  }

  // Fault (or design): the parameters picked by `mask` (of the first picked
  // one's dtype) move into views of one new packed storage, each at an offset
  // `where` spreads over the slots: several may share an offset (aliased
  // views) or overlap partly. Each view gets its parameter's values, copied in
  // order (a later copy overwrites an overlapping earlier one).
  absl::Status Pack(uint8_t mask, uint8_t where) {
    const std::vector<const SlotInfo*> params = Parameters();
    std::vector<const SlotInfo*> picked;
    for (size_t i = 0; i < params.size(); ++i) {
      if (((mask >> (i % 8)) & 1) && params[i]->slot->tensor().defined() &&
          (picked.empty() || params[i]->slot->tensor().dtype() ==
                                 picked[0]->slot->tensor().dtype())) {
        picked.push_back(params[i]);
      }
    }
    if (picked.empty()) return absl::OkStatus();
    int64_t longest = 0;
    for (const SlotInfo* s : picked) {
      longest = std::max(longest, s->slot->tensor().numel());
    }
    const DType dtype = picked[0]->slot->tensor().dtype();
    const int64_t places = static_cast<int64_t>(picked.size());
    NG_ASSIGN_OR_RETURN(
        Tensor packed,
        Tensor::Empty(DeviceAllocator(), {places * longest + longest}, dtype));
    for (size_t i = 0; i < picked.size(); ++i) {
      const Tensor current = picked[i]->slot->tensor();
      // Offsets: slot i at place (where + 3 i) % places, shifted by half a
      // slot for odd `where` bits so views overlap partly too.
      const int64_t place = (where + 3 * static_cast<int64_t>(i)) % places;
      const int64_t shift = ((where >> (i % 8)) & 1) ? longest / 2 : 0;
      NG_ASSIGN_OR_RETURN(Tensor values, ToHost(current));
      NG_ASSIGN_OR_RETURN(Tensor view, packed.Narrow(0, place * longest + shift,
                                                     current.numel()));
      NG_ASSIGN_OR_RETURN(view, view.Reshape(current.shape()));
      NG_RETURN_IF_ERROR(CopyInto(ViewOf(values), view));
      Wrote(view);
      keep_.push_back(current);
      picked[i]->slot->Rebind(view);
    }
    return absl::OkStatus();
  }

  // Fault: the slot is rebound to a new allocation while the old one stays
  // alive (the pre-fix loader's pattern). A parameter gets new values, as an
  // update allocating a new tensor would.
  absl::Status RebindAlive(const SlotInfo& s, uint8_t seed) {
    keep_.push_back(s.slot->tensor());
    NG_ASSIGN_OR_RETURN(Tensor fresh, Clone(s.slot->tensor()));
    if (s.is_parameter) {
      NG_RETURN_IF_ERROR(FillNormal(fresh, 5000 + seed,
                                    s.derived.empty() ? 1.0f : 0.0f, 0.3f));
    }
    s.slot->Rebind(fresh);
    return absl::OkStatus();
  }

  // Fault: offload and restore. The storage is freed and a new one allocated;
  // with `squat`, another tensor takes the freed block first (and holds other
  // bytes), so the restore lands elsewhere.
  absl::Status FreeRealloc(const SlotInfo& s, bool squat) {
    NG_ASSIGN_OR_RETURN(Tensor backup, ToHost(s.slot->tensor()));
    s.slot->Rebind(Tensor());
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
    s.slot->Rebind(restored);
    return absl::OkStatus();
  }

  // Fault: a source weight written in place without refreshing its derived
  // buffer.
  absl::Status WriteSourceWithoutRefresh(uint8_t pick, uint8_t seed) {
    std::vector<const SlotInfo*> sources;
    for (const SlotInfo& s : slots_) {
      if (!s.derived.empty()) sources.push_back(&s);
    }
    if (sources.empty()) return absl::OkStatus();
    const SlotInfo& s = *sources[pick % sources.size()];
    NG_RETURN_IF_ERROR(FillNormal(s.slot->tensor(), 9000 + seed, 0.0f, 0.3f));
    Wrote(s.slot->tensor());
    return absl::OkStatus();
  }

  // Fault: the slot becomes a view at another offset; within its current
  // storage if that has room (a re-slice), else inside a new, larger one.
  absl::Status Reslice(const SlotInfo& s, uint8_t where) {
    const Tensor current = s.slot->tensor();
    const size_t elem = DTypeSize(current.dtype());
    const size_t span = current.span_bytes();
    std::shared_ptr<Storage> storage = current.storage();
    size_t slots_in_storage = (storage->bytes() - span) / elem + 1;
    if (slots_in_storage < 2) {
      NG_ASSIGN_OR_RETURN(
          storage, Storage::Allocate(DeviceAllocator(), 2 * span + 8 * elem));
      slots_in_storage = (storage->bytes() - span) / elem + 1;
    }
    const size_t offset = (where % slots_in_storage) * elem;
    NG_ASSIGN_OR_RETURN(Tensor values, ToHost(current));
    NG_ASSIGN_OR_RETURN(Tensor view,
                        Tensor::FromStorage(storage, offset, current.shape(),
                                            ContiguousStrides(current.shape()),
                                            current.dtype()));
    keep_.push_back(current);
    NG_RETURN_IF_ERROR(CopyInto(ViewOf(values), view));
    Wrote(view);
    s.slot->Rebind(view);
    return absl::OkStatus();
  }

  absl::Status FillInputs(StepBuffers& io, StepBuffers* mirror) {
    for (size_t i = 0; i < io.size(); ++i) {
      if (io.spec(i).role == StepRole::kInput) {
        NG_RETURN_IF_ERROR(
            FillNormal(io.tensor(i), input_seed_ + i, 0.0f, 1.5f));
        if (mirror != nullptr) {
          NG_RETURN_IF_ERROR(
              FillNormal(mirror->tensor(i), input_seed_ + i, 0.0f, 1.5f));
        }
      } else {
        NG_RETURN_IF_ERROR(Poison(io.tensor(i)));
        if (mirror != nullptr) NG_RETURN_IF_ERROR(Poison(mirror->tensor(i)));
      }
    }
    return absl::OkStatus();
  }

  static std::string FirstDifference(const StepBuffers& a,
                                     const StepBuffers& b) {
    for (size_t i = 0; i < a.size(); ++i) {
      if (a.spec(i).role == StepRole::kOutput &&
          !BitwiseEqual(a.tensor(i), b.tensor(i))) {
        return a.spec(i).name;
      }
    }
    return "";
  }

  std::string State(const std::set<std::string>& expected) const {
    return absl::StrCat(" [policy ", ReplayPolicyName(options_.policy),
                        ", batch ", batch_, ", legacy loader ", config_.legacy,
                        ", expected violations {",
                        absl::StrJoin(expected, ", "), "}]");
  }

  absl::Status Replay() {
    NG_ASSIGN_OR_RETURN(int64_t bucket, graphs_->BucketFor(batch_));
    NG_ASSIGN_OR_RETURN(auto io,
                        StepBuffers::Create("io", fx_.model->StepSpecs(batch_),
                                            DeviceAllocator()));
    NG_ASSIGN_OR_RETURN(auto ref,
                        StepBuffers::Create("ref", fx_.model->StepSpecs(batch_),
                                            DeviceAllocator()));
    NG_RETURN_IF_ERROR(FillInputs(*io, ref.get()));
    StepBuffers& statics = graphs_->static_buffers(bucket);
    for (size_t i = 0; i < statics.size(); ++i) {
      if (statics.spec(i).role != StepRole::kInput)
        NG_RETURN_IF_ERROR(Poison(statics.tensor(i)));
    }
    std::set<std::string> expected = ExpectedMoved(bucket);
    int64_t expected_count = static_cast<int64_t>(expected.size());
    if (options_.check_freshness) {
      const std::set<std::string> stale = ExpectedStale();
      expected.insert(stale.begin(), stale.end());
      expected_count += static_cast<int64_t>(stale.size());
    }
    const GraphStats before = graphs_->graph(bucket).stats();
    const absl::Status run = graphs_->Run(*io);
    const GraphStats& after = graphs_->graph(bucket).stats();

    // The reference: what the parameters say, computed eagerly by a correctly
    // loaded model.
    for (auto& [name, p] : fx_.shadow_params) {
      const SlotInfo* s = Find(name);
      if (s == nullptr)
        return Finding(absl::StrCat("parameter ", name, " vanished"));
      NG_ASSIGN_OR_RETURN(Tensor values, ToHost(s->slot->tensor()));
      NG_RETURN_IF_ERROR(p->Load(ViewOf(values)));
    }
    NG_RETURN_IF_ERROR(fx_.shadow->Forward(stream_, *ref));

    if (options_.policy == ReplayPolicy::kFail && !expected.empty()) {
      if (run.code() != absl::StatusCode::kFailedPrecondition) {
        return Finding(absl::StrCat(
            "replay not refused after injected faults: ", run.ToString(),
            State(expected)));
      }
      const std::vector<std::string> listed = ViolationNames(run.message());
      const std::set<std::string> named(listed.begin(), listed.end());
      if (named != expected) {
        return Finding(absl::StrCat("refusal named {",
                                    absl::StrJoin(named, ", "), "}",
                                    State(expected)));
      }
      for (size_t i = 0; i < statics.size(); ++i) {
        if (statics.spec(i).role == StepRole::kInput) continue;
        for (float v : ToFloats(statics.tensor(i))) {
          if (v == v)
            return Finding(
                absl::StrCat("a refused replay wrote ", statics.spec(i).name));
        }
      }
      return absl::OkStatus();
    }
    if (!run.ok())
      return Finding(
          absl::StrCat("replay failed: ", run.ToString(), State(expected)));
    const std::string diff = FirstDifference(*io, *ref);
    if (Tracing()) {
      for (const SlotInfo& si : slots_) {
        const TensorSlot* src = si.slot->source();
        if (src == nullptr) continue;
        std::vector<float> w = ToFloats(src->tensor());
        std::vector<float> d = ToFloats(si.slot->tensor());
        for (size_t j = 0; j < w.size() && j < d.size(); ++j) {
          if (1.0f + w[j] != d[j]) {
            std::fprintf(stderr,
                         "  %s[%d] = %g but 1 + source = %g (stale %d)\n",
                         si.name.c_str(), static_cast<int>(j), d[j],
                         1.0f + w[j], static_cast<int>(si.slot->IsStale()));
            break;
          }
        }
      }
      std::fprintf(
          stderr, "replay b%d: %s, expected {%s}, found %d, diff '%s'\n",
          static_cast<int>(bucket), run.ToString().c_str(),
          absl::StrJoin(expected, ", ").c_str(),
          static_cast<int>(after.violations - before.violations), diff.c_str());
    }
    if (!diff.empty()) {
      return Finding(absl::StrCat("silent mismatch: graph output ", diff,
                                  " differs from the reference",
                                  State(expected)));
    }
    if (options_.policy != ReplayPolicy::kUnchecked) {
      const int64_t found = after.violations - before.violations;
      if (found != expected_count) {
        return Finding(absl::StrCat("the check found ", found,
                                    " violations, expected ", expected_count,
                                    State(expected)));
      }
      // The repair refreshed every stale buffer (the pre-fix loader's refresh
      // also moved it, which the other buckets' graphs have yet to see), and
      // this bucket's graph now matches every slot.
      if (options_.check_freshness) MarkAllRefreshed();
      RecordCaptured(bucket);
    }
    return absl::OkStatus();
  }

  absl::Status EagerIsDeterministic() {
    NG_ASSIGN_OR_RETURN(auto a,
                        StepBuffers::Create("a", fx_.model->StepSpecs(batch_),
                                            DeviceAllocator()));
    NG_ASSIGN_OR_RETURN(auto b,
                        StepBuffers::Create("b", fx_.model->StepSpecs(batch_),
                                            DeviceAllocator()));
    NG_RETURN_IF_ERROR(FillInputs(*a, b.get()));
    NG_RETURN_IF_ERROR(fx_.model->Forward(stream_, *a));
    NG_RETURN_IF_ERROR(fx_.model->Forward(stream_, *b));
    const std::string diff = FirstDifference(*a, *b);
    if (!diff.empty())
      return Finding(absl::StrCat("eager is not deterministic: ", diff));
    return absl::OkStatus();
  }

  const Config config_;
  const FuzzMode mode_;
  Fixture& fx_;
  Stream& stream_ = DeviceStream();
  GraphOptions options_;
  std::unique_ptr<BucketedGraphs> graphs_;
  std::vector<SlotInfo> slots_;
  // Per bucket: every relevant slot's identity when its graph last captured
  // or repaired.
  std::map<int64_t, std::map<std::string, TensorIdentity>> captured_;
  // Writes the harness made, per storage id, and per derived buffer the
  // source storage and write count at its last refresh.
  std::map<uint64_t, uint64_t> writes_;
  std::map<std::string, std::pair<TensorIdentity, uint64_t>> refreshed_;
  std::vector<Tensor> keep_;  // old storages kept alive, squatters
  int64_t batch_ = 1;
  uint64_t input_seed_ = 1;
};

}  // namespace

FuzzMode FuzzModeFromEnv() {
  const char* mode = std::getenv("NORMGRAPH_FUZZ_MODE");
  if (mode == nullptr) return FuzzMode::kDefault;
  const absl::string_view m(mode);
  if (m == "unchecked-legacy") return FuzzMode::kUncheckedLegacy;
  if (m == "no-freshness") return FuzzMode::kNoFreshness;
  return FuzzMode::kDefault;
}

absl::Status RunGraphReplayInput(absl::Span<const uint8_t> data,
                                 FuzzMode mode) {
  Reader r(data);
  uint8_t h0, h1;
  if (!r.Byte(&h0) || !r.Byte(&h1)) return absl::OkStatus();
  Config c;
  c.qwen = (h0 & 1) == 0;
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
  const uint32_t mix = (h1 + 1u) * 2654435761u;
  c.hidden = 1 + h1 % 40;
  c.layers = 1 + (mix >> 8) % 4;
  for (int64_t i = 0; i < c.layers; ++i) {
    c.layer_types.push_back((mix >> (12 + i)) & 1
                                ? Qwen35LayerType::kFullAttention
                                : Qwen35LayerType::kLinearAttention);
  }
  c.head_dim = 1 + (mix >> 16) % 12;
  c.heads = 1 + (mix >> 20) % 2;
  c.value_heads = 1 + (mix >> 21) % 2;
  c.value_head_dim = 1 + (mix >> 24) % 12;
  if (mode == FuzzMode::kUncheckedLegacy) {
    c.legacy = true;
    c.policy = ReplayPolicy::kUnchecked;
  } else if (mode == FuzzMode::kNoFreshness) {
    c.legacy = false;
    c.policy = ReplayPolicy::kFail;
  }
  // Fixtures are cached per configuration (bounded, so memory stays flat over a
  // long campaign).
  static auto* fixtures = new std::map<std::string, std::unique_ptr<Fixture>>;
  const std::string key = absl::StrCat(
      c.qwen, c.legacy, static_cast<int>(c.dtype), static_cast<int>(c.order),
      ",", c.hidden, ",", c.layers, ",",
      absl::StrJoin(c.layer_types, "",
                    [](std::string* out, auto t) {
                      absl::StrAppend(out, static_cast<int>(t));
                    }),
      ",", c.head_dim, ",", c.heads, ",", c.value_heads, ",", c.value_head_dim);
  auto it = fixtures->find(key);
  if (it == fixtures->end()) {
    if (fixtures->size() >= 256) fixtures->clear();
    NG_ASSIGN_OR_RETURN(auto fixture, Fixture::Create(c));
    it = fixtures->emplace(key, std::move(fixture)).first;
  }
  Harness harness(std::move(c), mode, *it->second);
  NG_RETURN_IF_ERROR(harness.Init());
  for (int op = 0; op < kMaxOps; ++op) NG_RETURN_IF_ERROR(harness.Step(r));
  return harness.FinalReplay();
}

}  // namespace normgraph::fuzz
