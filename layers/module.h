#ifndef NORMGRAPH_LAYERS_MODULE_H_
#define NORMGRAPH_LAYERS_MODULE_H_

// Module: a named node of a model tree with parameters, buffers and children,
// addressed by dotted paths (`model.layers.3.input_layernorm.weight`) like
// torch.nn.Module's named_parameters() and named_buffers().
//
// Parameters and buffers live in TensorSlots whose storage is allocated once,
// at construction. Loading a parameter writes into that storage in place and
// then runs the module's after-load hook, which refreshes derived buffers in
// place. Nothing in the normal path rebinds a slot, so a captured graph stays
// valid across weight updates; a module's Forward always reads the slots'
// current tensors.

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "core/tensor.h"
#include "core/tensor_slot.h"
#include "core/tensor_util.h"

namespace normgraph {

class Parameter {
 public:
  explicit Parameter(Tensor tensor)
      : slot_(SlotKind::kParameter, std::move(tensor)) {}

  TensorSlot& slot() { return slot_; }
  const TensorSlot& slot() const { return slot_; }
  const Tensor& tensor() const { return slot_.tensor(); }

  // Whether `src` can be loaded: same shape; a float dtype (f32, bf16, f16),
  // and the parameter's own dtype unless `allow_conversion`. No side effects.
  // Errors name `name`.
  absl::Status CheckLoadable(absl::string_view name, const HostView& src,
                             bool allow_conversion) const;

  // Writes `src` into the parameter's storage in place (converting the dtype
  // with round to nearest even), then runs the after-load hook.
  absl::Status Load(const HostView& src);

  // Set by the owning module: refreshes what derives from this parameter.
  void set_after_load(std::function<absl::Status()> hook) {
    after_load_ = std::move(hook);
  }
  // The hook set (empty if none): to wrap it in another.
  const std::function<absl::Status()>& after_load() const {
    return after_load_;
  }
  absl::Status RunAfterLoad() {
    return after_load_ ? after_load_() : absl::OkStatus();
  }

 private:
  TensorSlot slot_;
  std::function<absl::Status()> after_load_;
};

class Module : public TensorOwner {
 public:
  explicit Module(std::string name) : name_(std::move(name)) {}
  ~Module() override = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // The local name ("input_layernorm") and the dotted path from the root
  // ("model.layers.0.input_layernorm"). Full names are computed once and
  // cached: a module tree is built (AddChild) before it is used, and attaching
  // a subtree resets its caches.
  const std::string& name() const { return name_; }
  const std::string& full_name() const;

  // Every parameter, recursively, with its dotted path, in registration order.
  void ForEachParameter(
      absl::FunctionRef<void(const std::string&, Parameter&)> visit);
  // Every parameter and buffer slot, recursively (TensorOwner).
  void ForEachSlot(SlotVisitor visit) override;

  // The parameters ForEachParameter visits, as a list, with each dotted
  // path's position in it (the first, should two share a path). Built on
  // first use and kept while the subtree's structure is unchanged: a loader,
  // called on every weight update, then neither walks the tree nor hashes
  // every parameter's name per call. The reference is valid until the
  // structure changes.
  struct ParameterTable {
    std::vector<std::pair<absl::string_view, Parameter*>> ordered;
    absl::flat_hash_map<absl::string_view, size_t> position;
  };
  const ParameterTable& Parameters();

  // The parameter or buffer slot at a dotted path below this module, or null.
  Parameter* FindParameter(absl::string_view path);
  TensorSlot* FindSlot(absl::string_view path);
  // The module at a dotted path below this one ("layers.0.input_layernorm"),
  // this module for "", or null (torch's get_submodule).
  Module* FindModule(absl::string_view path);

  // Structure versions (TensorOwner): this module's own counter, and the sum
  // over its subtree. Adding a parameter, buffer or child bumps them; so must
  // anything else that changes which kernels Forward launches or which slots
  // it reads (a forward-path switch): call MarkStructureChanged(). Graphs
  // captured earlier then refuse, or recapture, instead of replaying the old
  // path.
  uint64_t structure_version() const { return local_structure_version_; }
  uint64_t StructureVersion() const override {
    return subtree_structure_version_;
  }
  void ForEachStructure(StructureVisitor visit) const override;
  void MarkStructureChanged();

 protected:
  Parameter* AddParameter(std::string name, Tensor tensor);
  TensorSlot* AddBuffer(std::string name, Tensor tensor);
  // Each name must be new in this module (among its parameters, buffers and
  // children), as torch's register_parameter / add_module require: two
  // slots of one dotted name would load and check as one. A repeated name is
  // a programming error: it stops the process, naming both.
  template <typename M>
  M* AddChild(std::unique_ptr<M> child) {
    RequireNewName(child->name(), "a child module");
    M* raw = child.get();
    child->parent_ = this;
    child->ResetNameCaches();
    const uint64_t grown = child->subtree_structure_version_;
    children_.push_back(std::move(child));
    for (Module* m = this; m != nullptr; m = m->parent_) {
      m->subtree_structure_version_ += grown;
    }
    MarkStructureChanged();
    return raw;
  }

 private:
  // One slot of the subtree, in visiting order.
  struct FlatSlot {
    const std::string* name;  // a module's cached full name
    Parameter* parameter;     // null for buffers
    TensorSlot* slot;
  };

  void RequireNewName(absl::string_view name, const char* what) const;
  void Visit(
      absl::FunctionRef<void(const std::string&, Parameter*, TensorSlot&)>
          visit);
  // Appends this subtree's slots to `out` in visiting order, filling the
  // name caches on the way.
  void Flatten(std::vector<FlatSlot>& out);
  // Rebuilds flat_ (and drops the parameter table) if the structure changed.
  void EnsureFlat();
  void ResetNameCaches();

  std::string name_;
  Module* parent_ = nullptr;
  uint64_t local_structure_version_ = 0;
  uint64_t subtree_structure_version_ = 0;
  mutable std::string full_name_;  // cached; empty until first asked
  std::vector<std::string> parameter_names_,
      buffer_names_;  // cached full names
  // Every slot of the subtree in visiting order, valid while the subtree's
  // structure version is `flat_version_` (a traversal then visits a flat
  // list instead of walking the tree).
  std::vector<FlatSlot> flat_;
  uint64_t flat_version_ = ~uint64_t{0};
  // Parameters(), built from flat_ (names point into the same caches).
  ParameterTable parameter_table_;
  bool parameter_table_valid_ = false;
  std::vector<std::pair<std::string, std::unique_ptr<Parameter>>> parameters_;
  std::vector<std::pair<std::string, std::unique_ptr<TensorSlot>>> buffers_;
  std::vector<std::unique_ptr<Module>> children_;
};

// A module that only groups children (torch.nn.ModuleList, or a plain
// container).
class ModuleList : public Module {
 public:
  using Module::Module;
  template <typename M>
  M* Append(std::unique_ptr<M> child) {
    return AddChild(std::move(child));
  }
};

}  // namespace normgraph

#endif  // NORMGRAPH_LAYERS_MODULE_H_
