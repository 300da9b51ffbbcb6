#ifndef NORMGRAPH_CORE_STEP_BUFFERS_H_
#define NORMGRAPH_CORE_STEP_BUFFERS_H_

// StepBuffers: the named tensors one forward step of a norm stack reads and
// writes (inputs, outputs, workspace), allocated once. A graph captures a step
// into one set of these (its static buffers, one set per batch-size bucket); an
// eager step uses another set of the same shapes.

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "core/tensor.h"
#include "core/tensor_slot.h"

namespace normgraph {

enum class StepRole { kInput, kOutput, kWorkspace };

struct StepTensorSpec {
  std::string name;
  Shape shape;  // dimension 0 is the batch
  DType dtype;
  StepRole role;
};

class StepBuffers : public TensorOwner {
 public:
  // Allocates every tensor. Slot names are `prefix.name`.
  static absl::StatusOr<std::unique_ptr<StepBuffers>> Create(
      std::string prefix, std::vector<StepTensorSpec> specs,
      Allocator& allocator);

  size_t size() const { return specs_.size(); }
  const StepTensorSpec& spec(size_t i) const { return specs_[i]; }
  const Tensor& tensor(size_t i) const { return slots_[i]->tensor(); }
  TensorSlot& slot(size_t i) { return *slots_[i]; }
  // The tensor named `name`; an error names the buffers and the missing name.
  absl::StatusOr<Tensor> Get(absl::string_view name) const;
  int64_t batch() const { return batch_; }
  const std::string& prefix() const { return prefix_; }

  void ForEachSlot(SlotVisitor visit) override;

 private:
  std::string prefix_;
  int64_t batch_ = 0;
  std::vector<StepTensorSpec> specs_;
  std::vector<std::string> slot_names_;  // prefix.name
  std::vector<std::unique_ptr<TensorSlot>> slots_;
  absl::flat_hash_map<std::string, size_t> index_;
};

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_STEP_BUFFERS_H_
