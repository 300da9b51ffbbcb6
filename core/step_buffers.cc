#include "core/step_buffers.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace normgraph {

absl::StatusOr<std::unique_ptr<StepBuffers>> StepBuffers::Create(
    std::string prefix, std::vector<StepTensorSpec> specs,
    Allocator& allocator) {
  auto buffers = std::unique_ptr<StepBuffers>(new StepBuffers);
  buffers->prefix_ = std::move(prefix);
  for (size_t i = 0; i < specs.size(); ++i) {
    const StepTensorSpec& s = specs[i];
    if (s.shape.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("step tensor ", s.name, " has no batch dim"));
    }
    if (i == 0) buffers->batch_ = s.shape[0];
    if (s.shape[0] != buffers->batch_) {
      return absl::InvalidArgumentError(
          absl::StrCat("step tensor ", s.name, " has batch ", s.shape[0],
                       ", expected ", buffers->batch_));
    }
    if (!buffers->index_.emplace(s.name, i).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("step tensor ", s.name, " declared twice"));
    }
    absl::StatusOr<Tensor> t = Tensor::Empty(allocator, s.shape, s.dtype);
    if (!t.ok()) return t.status();
    buffers->slots_.push_back(
        std::make_unique<TensorSlot>(SlotKind::kStatic, *std::move(t)));
  }
  for (const StepTensorSpec& s : specs) {
    buffers->slot_names_.push_back(absl::StrCat(buffers->prefix_, ".", s.name));
  }
  buffers->specs_ = std::move(specs);
  return buffers;
}

absl::StatusOr<Tensor> StepBuffers::Get(absl::string_view name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    return absl::NotFoundError(
        absl::StrCat(prefix_, ": no step tensor named '", name, "'"));
  }
  return slots_[it->second]->tensor();
}

void StepBuffers::ForEachSlot(SlotVisitor visit) {
  for (size_t i = 0; i < specs_.size(); ++i) visit(slot_names_[i], *slots_[i]);
}

}  // namespace normgraph
