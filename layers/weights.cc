#include "layers/weights.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "core/runtime.h"
#include "layers/safetensors/format.h"

namespace normgraph {
namespace {

constexpr size_t kMaxListedProblems = 20;

// The transfer batches (core/runtime.h) a load keeps open on the devices its
// parameters live on, one per runtime.
class TransferBatches {
 public:
  absl::Status Begin(DeviceRuntime* runtime) {
    if (std::find(open_.begin(), open_.end(), runtime) != open_.end()) {
      return absl::OkStatus();
    }
    absl::Status begun = runtime->BeginTransfers();
    if (begun.ok()) open_.push_back(runtime);
    return begun;
  }
  // Ends every batch (waiting for its copies); the first error.
  absl::Status EndAll() {
    absl::Status first;
    for (DeviceRuntime* runtime : open_) {
      absl::Status ended = runtime->EndTransfers();
      if (first.ok() && !ended.ok()) first = ended;
    }
    open_.clear();
    return first;
  }

 private:
  absl::InlinedVector<DeviceRuntime*, 2> open_;
};

// Refreshes every derived buffer of `model` that is stale, in slot order,
// but those in `keep_stale`. A refresh that fails goes to
// `failed(name, error)`, which says whether to go on with the others.
void RefreshStale(
    Module& model, const absl::flat_hash_set<const TensorSlot*>& keep_stale,
    absl::FunctionRef<bool(absl::string_view, const absl::Status&)> failed) {
  bool going = true;
  model.ForEachSlot([&](absl::string_view name, TensorSlot& slot) {
    if (!going || slot.source() == nullptr || keep_stale.contains(&slot) ||
        !slot.IsStale()) {
      return;
    }
    const absl::Status refreshed = slot.Refresh();
    if (!refreshed.ok()) going = failed(name, refreshed);
  });
}

// Phase 2 of LoadWeights: backs up what `plan` will write (CPU parameters
// into one host buffer, others through ToHost), copies every source into its
// parameter in place, counting into `report`, and refreshes the derived
// buffers left stale; on a failed write, restores what was written. Device
// parameters move in one transfer batch per device (core/runtime.h), begun
// in `batches`: their backups are read with one wait for the device, their
// writes are queued, and the read-backs that derived buffers are computed
// from are answered from the staged bytes. The caller ends the batches.
absl::Status WriteInPlace(
    Module& model,
    absl::Span<const std::pair<Parameter*, const SourceTensor*>> plan,
    absl::string_view source, TransferBatches& batches, LoadReport& report) {
  auto in_arena = [](const Tensor& t) {
    return t.defined() && t.storage()->device() == Device::Cpu() &&
           t.is_contiguous();
  };
  // Before anything is written: an error names the parameter it hit.
  auto unchanged = [&](const SourceTensor& src, absl::string_view step,
                       const absl::Status& error) {
    return absl::Status(
        error.code(),
        absl::StrCat("loading ", src.name, " from ", source, ": ", step, ": ",
                     error.message(), "; no weight was changed"));
  };
  // Each device's batch, and the reads of the device backups queued ahead.
  for (const auto& [param, src] : plan) {
    const Tensor& t = param->tensor();
    if (!t.defined() || t.storage()->device() == Device::Cpu()) continue;
    absl::StatusOr<DeviceRuntime*> runtime = RuntimeOf(*t.storage());
    if (!runtime.ok()) return unchanged(*src, "its device", runtime.status());
    absl::Status ready = batches.Begin(*runtime);
    if (ready.ok() && t.is_contiguous()) {
      ready = (*runtime)->PrefetchToHost(t.data(),
                                         t.numel() * DTypeSize(t.dtype()));
    }
    if (!ready.ok()) return unchanged(*src, "reading its backup", ready);
  }
  size_t arena_bytes = 0;
  for (const auto& [param, src] : plan) {
    const Tensor& t = param->tensor();
    if (in_arena(t)) arena_bytes += t.numel() * DTypeSize(t.dtype());
  }
  // Every byte of the arena is copied into before it is read: no zeroing.
  alignas(16) unsigned char arena_on_stack[2048];
  std::unique_ptr<unsigned char[]> arena_on_heap;
  unsigned char* arena = arena_on_stack;
  if (arena_bytes > sizeof(arena_on_stack)) {
    arena_on_heap.reset(new unsigned char[arena_bytes]);
    arena = arena_on_heap.get();
  }
  absl::InlinedVector<HostView, 32> backups;
  std::vector<Tensor> host_copies;  // (backups point at their storage)
  backups.reserve(plan.size());
  size_t used = 0;
  for (const auto& [param, src] : plan) {
    const Tensor& t = param->tensor();
    if (in_arena(t)) {
      const size_t n = t.numel() * DTypeSize(t.dtype());
      if (n > 0) std::memcpy(arena + used, t.data(), n);
      backups.push_back(HostView{arena + used, t.dtype(), t.shape()});
      used += n;
      continue;
    }
    absl::StatusOr<Tensor> copy = ToHost(t);
    if (!copy.ok()) return unchanged(*src, "reading its backup", copy.status());
    host_copies.push_back(*std::move(copy));
    backups.push_back(ViewOf(host_copies.back()));
  }
  // The derived buffers stale before the load (a source written directly,
  // say) and their bytes: a failed load puts them back as they were, stale.
  // (A successful load refreshes them with the others.)
  absl::flat_hash_set<const TensorSlot*> stale_before;
  struct StaleBytes {
    TensorSlot* slot;
    absl::string_view name;  // the model's cached full name
    Tensor bytes;
  };
  std::vector<StaleBytes> stale_bytes;
  absl::Status backed_up;
  model.ForEachSlot([&](absl::string_view name, TensorSlot& slot) {
    if (!backed_up.ok() || slot.source() == nullptr || !slot.IsStale()) return;
    stale_before.insert(&slot);
    if (!slot.tensor().defined()) return;
    absl::StatusOr<Tensor> copy = ToHost(slot.tensor());
    if (!copy.ok()) {
      backed_up = absl::Status(
          copy.status().code(),
          absl::StrCat("loading from ", source, ": reading the backup of ",
                       name, " (stale): ", copy.status().message()));
      return;
    }
    stale_bytes.push_back({&slot, name, *std::move(copy)});
  });
  if (!backed_up.ok()) return backed_up;
  // Puts the backups of plan[0, count) back (their loaders refresh what
  // derives from them) after `what` failed with `cause`, then the bytes of
  // the buffers stale before, then refreshes every other derived buffer left
  // stale: a restored write to a tied or packed storage makes its
  // neighbours' buffers stale, and one the final pass refreshed from a
  // neighbour's new values must go back to the old ones.
  auto restore = [&](size_t count, const absl::Status& cause,
                     absl::string_view what) {
    std::vector<std::string> unrestored;
    for (size_t j = 0; j < count; ++j) {
      absl::Status restored = plan[j].first->Load(backups[j]);
      if (!restored.ok()) {
        unrestored.push_back(
            absl::StrCat(plan[j].second->name, " (", restored.message(), ")"));
      }
    }
    for (const StaleBytes& stale : stale_bytes) {
      absl::Status restored =
          CopyInto(ViewOf(stale.bytes), stale.slot->tensor());
      if (!restored.ok()) {
        unrestored.push_back(
            absl::StrCat(stale.name, " (stale; ", restored.message(), ")"));
      }
    }
    std::vector<std::string> still_stale;
    RefreshStale(model, stale_before,
                 [&](absl::string_view name, const absl::Status&) {
                   still_stale.emplace_back(name);
                   return true;  // keep going: refresh every other one
                 });
    const std::string left_stale =
        still_stale.empty() ? ""
                            : absl::StrCat(
                                  " (derived buffers left stale, their refresh "
                                  "failing: ",
                                  absl::StrJoin(still_stale, ", "), ")");
    if (!unrestored.empty()) {
      return absl::InternalError(absl::StrCat(
          what, " failed (", cause.message(),
          ") and restoring failed too: ", absl::StrJoin(unrestored, "; "),
          "; every other weight was restored", left_stale));
    }
    return absl::Status(
        cause.code(), absl::StrCat(what, " failed: ", cause.message(),
                                   "; all weights were restored", left_stale));
  };
  for (size_t i = 0; i < plan.size(); ++i) {
    absl::Status loaded = plan[i].first->Load(plan[i].second->view);
    if (!loaded.ok()) {
      return restore(i + 1, loaded,
                     absl::StrCat("loading ", plan[i].second->name));
    }
    ++report.loaded;
    if (plan[i].second->view.dtype != plan[i].first->tensor().dtype())
      ++report.converted;
  }
  // Each parameter's loader refreshed what derives from it right after its
  // own write. A later write in this load can still have touched the storage
  // of another source (tied weights, views of one packed buffer): refresh
  // every derived buffer that is stale now, so an in-place update never
  // leaves one behind. If one cannot be refreshed, the load is undone like a
  // failed write.
  absl::Status refreshed;
  std::string refreshed_name;
  RefreshStale(model, /*keep_stale=*/{},
               [&](absl::string_view name, const absl::Status& error) {
                 refreshed = error;
                 refreshed_name = std::string(name);
                 return false;  // stop: the load is undone
               });
  if (!refreshed.ok()) {
    return restore(plan.size(), refreshed,
                   absl::StrCat("refreshing ", refreshed_name,
                                " after loading from ", source));
  }
  return absl::OkStatus();
}

}  // namespace

WeightSet WeightSet::FromSafetensors(const safetensors::SafetensorsFile& file) {
  WeightSet set;
  set.source_ = file.source();
  for (const safetensors::TensorEntry& e : file.tensors()) {
    set.tensors_.push_back(
        SourceTensor{e.name, e.dtype_name, e.dtype, e.view()});
  }
  return set;
}

absl::StatusOr<WeightSet> WeightSet::FromTensors(
    std::vector<std::pair<std::string, Tensor>> tensors) {
  WeightSet set;
  set.source_ = "<in-memory tensors>";
  for (auto& [name, t] : tensors) {
    if (!t.defined() || t.storage()->device() != Device::Cpu() ||
        !t.is_contiguous()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "in-memory weight '", name, "' must be a contiguous CPU tensor"));
    }
    set.tensors_.push_back(
        SourceTensor{name, std::string(safetensors::DTypeToName(t.dtype())),
                     t.dtype(), ViewOf(t)});
    set.keep_alive_.push_back(std::move(t));
  }
  return set;
}

absl::StatusOr<LoadReport> LoadWeights(Module& model, const WeightSet& weights,
                                       const LoadOptions& options) {
  // Names are views of the model's cached full names and of the weight set's
  // names, both alive and unchanged for the whole call (nothing here changes
  // the model's structure). The model's table from name to the parameter's
  // position in `ordered` (kept between loads) serves the lookups and the
  // record of which parameters the source named (fuzzers and trainers load
  // the same model over and over: the walk and the hashing of every name
  // were a visible share of a load).
  const Module::ParameterTable& table = model.Parameters();
  const std::vector<std::pair<absl::string_view, Parameter*>>& ordered =
      table.ordered;
  const absl::flat_hash_map<absl::string_view, size_t>& position =
      table.position;
  // The per-call lists below live on the stack for models and sources of up
  // to 32 tensors (up to 2 KiB of CPU backups): a load allocates nothing of
  // its own then but the report's names.
  absl::InlinedVector<bool, 64> named(ordered.size(), false);

  // Phase 1: validate everything, touching nothing.
  LoadReport report;
  std::vector<std::string> problems;
  absl::InlinedVector<std::pair<Parameter*, const SourceTensor*>, 32> plan;
  plan.reserve(weights.tensors().size());
  // Source names that are no parameter, to find their duplicates.
  absl::flat_hash_set<absl::string_view> other_names;
  // Sources usually list tensors in the model's order, or its reverse
  // (checkpoints written from the model, in-memory pushes): the parameters
  // next to the last one found are compared with the name before it is
  // hashed. (Only when every parameter name is distinct, so that a match is
  // the position the map gives.)
  const bool unique_names = position.size() == ordered.size();
  size_t last = ordered.size();  // none yet
  auto find = [&](absl::string_view name) -> std::optional<size_t> {
    if (unique_names && last < ordered.size()) {
      if (last + 1 < ordered.size() && ordered[last + 1].first == name) {
        return last + 1;
      }
      if (last > 0 && ordered[last - 1].first == name) return last - 1;
    }
    auto it = position.find(name);
    if (it == position.end()) return std::nullopt;
    return it->second;
  };
  for (const SourceTensor& t : weights.tensors()) {
    const std::optional<size_t> found = find(t.name);
    const bool duplicate =
        found.has_value() ? named[*found] : !other_names.insert(t.name).second;
    if (duplicate) {
      problems.push_back(
          absl::StrCat(t.name, ": appears more than once in the source"));
      continue;
    }
    if (!found.has_value()) {
      if (options.ignore_unexpected) {
        report.unexpected.push_back(t.name);
      } else {
        problems.push_back(absl::StrCat(
            t.name, ": unexpected (the model has no such parameter)"));
      }
      continue;
    }
    named[*found] = true;
    last = *found;
    Parameter* param = ordered[*found].second;
    if (!t.dtype) {
      problems.push_back(absl::StrCat(t.name, ": dtype ", t.dtype_name,
                                      " is not a float type (F32, BF16, F16)"));
      continue;
    }
    absl::Status ok =
        param->CheckLoadable(t.name, t.view, options.allow_dtype_conversion);
    if (!ok.ok()) {
      problems.push_back(std::string(ok.message()));
      continue;
    }
    plan.emplace_back(param, &t);
  }
  // Missing parameters in name order (only those are sorted).
  std::vector<absl::string_view> missing;
  for (size_t i = 0; i < ordered.size(); ++i) {
    if (!named[i]) missing.push_back(ordered[i].first);
  }
  std::sort(missing.begin(), missing.end());
  for (absl::string_view name : missing) {
    if (options.allow_missing) {
      report.missing.emplace_back(name);
    } else {
      problems.push_back(absl::StrCat(name, ": missing from the source"));
    }
  }
  if (!problems.empty()) {
    const size_t n = problems.size();
    if (n > kMaxListedProblems) {
      problems.resize(kMaxListedProblems);
      problems.push_back(
          absl::StrCat("... and ", n - kMaxListedProblems, " more"));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "loading weights into '", model.full_name(), "' from ",
        weights.source(), ": ", n, n == 1 ? " problem" : " problems",
        "; no weight was changed:\n  ", absl::StrJoin(problems, "\n  ")));
  }

  // Phase 2: write in place; every copy is done (the transfer batches
  // ended) before this returns.
  TransferBatches batches;
  const absl::Status written =
      WriteInPlace(model, plan, weights.source(), batches, report);
  const absl::Status ended = batches.EndAll();
  if (!written.ok()) {
    if (ended.ok()) return written;
    return absl::Status(
        written.code(),
        absl::StrCat(
            written.message(),
            "; but completing the queued copies (the restores among them) "
            "failed: ",
            ended.message(), "; the device weights may be partly updated"));
  }
  if (!ended.ok()) {
    return absl::Status(
        ended.code(),
        absl::StrCat("loading from ", weights.source(),
                     ": completing the copies failed: ", ended.message(),
                     "; the device weights may be partly updated"));
  }
  return report;
}

absl::StatusOr<LoadReport> LoadCheckpoint(Module& model,
                                          const std::string& path,
                                          const LoadOptions& options) {
  absl::StatusOr<safetensors::SafetensorsFile> file =
      safetensors::SafetensorsFile::Open(path);
  if (!file.ok()) return file.status();
  return LoadWeights(model, WeightSet::FromSafetensors(*file), options);
}

absl::StatusOr<NamedTensors> ParameterCopies(Module& model) {
  NamedTensors out;
  absl::Status status;
  model.ForEachParameter([&](const std::string& name, Parameter& p) {
    if (!status.ok()) return;
    absl::StatusOr<Tensor> host = ToHost(p.tensor());
    if (!host.ok()) {
      status = absl::Status(host.status().code(),
                            absl::StrCat(name, ": ", host.status().message()));
      return;
    }
    out.emplace_back(name, *std::move(host));
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<NamedTensors> RandomWeights(Module& model, uint64_t seed,
                                           float stddev) {
  absl::flat_hash_set<const TensorSlot*> sources;
  model.ForEachSlot([&](absl::string_view, TensorSlot& slot) {
    if (slot.source() != nullptr) sources.insert(slot.source());
  });
  NamedTensors out;
  absl::Status status;
  model.ForEachParameter([&](const std::string& name, Parameter& p) {
    if (!status.ok()) return;
    absl::StatusOr<Tensor> t =
        Tensor::Empty(CpuAllocator(), p.tensor().shape(), p.tensor().dtype());
    if (!t.ok()) {
      status = t.status();
      return;
    }
    const float mean = sources.contains(&p.slot()) ? 0.0f : 1.0f;
    status = FillNormal(*t, seed++, mean, stddev);
    out.emplace_back(name, *std::move(t));
  });
  if (!status.ok()) return status;
  return out;
}

}  // namespace normgraph
