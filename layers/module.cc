#include "layers/module.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace normgraph {

absl::Status Parameter::CheckLoadable(absl::string_view name,
                                      const HostView& src,
                                      bool allow_conversion) const {
  if (src.shape != tensor().shape()) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": shape ", ShapeToString(src.shape),
        " does not match the parameter's ", ShapeToString(tensor().shape())));
  }
  if (src.dtype != tensor().dtype() && !allow_conversion) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": dtype ", DTypeName(src.dtype),
                     " differs from the parameter's ",
                     DTypeName(tensor().dtype()), " and conversion is off"));
  }
  return absl::OkStatus();
}

absl::Status Parameter::Load(const HostView& src) {
  absl::Status copied = CopyInto(src, tensor());
  if (!copied.ok()) return copied;
  return RunAfterLoad();
}

const std::string& Module::full_name() const {
  if (full_name_.empty()) {
    full_name_ = parent_ == nullptr
                     ? name_
                     : absl::StrCat(parent_->full_name(), ".", name_);
  }
  return full_name_;
}

void Module::ResetNameCaches() {
  full_name_.clear();
  parameter_names_.clear();
  buffer_names_.clear();
  flat_.clear();
  flat_version_ = ~uint64_t{0};
  parameter_table_valid_ = false;
  for (auto& child : children_) child->ResetNameCaches();
}

void Module::Flatten(std::vector<FlatSlot>& out) {
  if (parameter_names_.size() != parameters_.size() ||
      buffer_names_.size() != buffers_.size()) {
    parameter_names_.clear();
    buffer_names_.clear();
    for (auto& [name, p] : parameters_)
      parameter_names_.push_back(absl::StrCat(full_name(), ".", name));
    for (auto& [name, b] : buffers_)
      buffer_names_.push_back(absl::StrCat(full_name(), ".", name));
  }
  for (size_t i = 0; i < parameters_.size(); ++i) {
    out.push_back({&parameter_names_[i], parameters_[i].second.get(),
                   &parameters_[i].second->slot()});
  }
  for (size_t i = 0; i < buffers_.size(); ++i) {
    out.push_back({&buffer_names_[i], nullptr, buffers_[i].second.get()});
  }
  for (auto& child : children_) child->Flatten(out);
}

void Module::EnsureFlat() {
  // Any slot, child or name change below this module moves its subtree's
  // structure version (MarkStructureChanged, AddChild); re-attaching the
  // subtree clears the caches (ResetNameCaches).
  if (flat_version_ != subtree_structure_version_) {
    flat_.clear();
    Flatten(flat_);
    flat_version_ = subtree_structure_version_;
    parameter_table_valid_ = false;
  }
}

void Module::Visit(
    absl::FunctionRef<void(const std::string&, Parameter*, TensorSlot&)>
        visit) {
  EnsureFlat();
  for (const FlatSlot& s : flat_) visit(*s.name, s.parameter, *s.slot);
}

const Module::ParameterTable& Module::Parameters() {
  EnsureFlat();
  if (!parameter_table_valid_) {
    parameter_table_.ordered.clear();
    parameter_table_.position.clear();
    for (const FlatSlot& s : flat_) {
      if (s.parameter == nullptr) continue;
      parameter_table_.position.try_emplace(*s.name,
                                            parameter_table_.ordered.size());
      parameter_table_.ordered.emplace_back(*s.name, s.parameter);
    }
    parameter_table_valid_ = true;
  }
  return parameter_table_;
}

void Module::ForEachParameter(
    absl::FunctionRef<void(const std::string&, Parameter&)> visit) {
  Visit([&](const std::string& name, Parameter* p, TensorSlot&) {
    if (p != nullptr) visit(name, *p);
  });
}

void Module::ForEachSlot(SlotVisitor visit) {
  Visit([&](const std::string& name, Parameter*, TensorSlot& slot) {
    visit(name, slot);
  });
}

Parameter* Module::FindParameter(absl::string_view path) {
  Parameter* found = nullptr;
  const std::string full = absl::StrCat(full_name(), ".", path);
  ForEachParameter([&](const std::string& name, Parameter& p) {
    if (name == full) found = &p;
  });
  return found;
}

TensorSlot* Module::FindSlot(absl::string_view path) {
  TensorSlot* found = nullptr;
  const std::string full = absl::StrCat(full_name(), ".", path);
  ForEachSlot([&](absl::string_view name, TensorSlot& slot) {
    if (name == full) found = &slot;
  });
  return found;
}

Module* Module::FindModule(absl::string_view path) {
  Module* m = this;
  if (path.empty()) return m;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    Module* next = nullptr;
    for (const auto& child : m->children_) {
      if (child->name() == part) next = child.get();
    }
    if (next == nullptr) return nullptr;
    m = next;
  }
  return m;
}

void Module::RequireNewName(absl::string_view name, const char* what) const {
  const char* taken = nullptr;
  for (const auto& [n, p] : parameters_) {
    if (n == name) taken = "a parameter";
  }
  for (const auto& [n, b] : buffers_) {
    if (n == name) taken = "a buffer";
  }
  for (const auto& child : children_) {
    if (child->name() == name) taken = "a child module";
  }
  if (taken == nullptr) return;
  std::fprintf(stderr,
               "normgraph: module '%s' already has %s named '%.*s'; adding %s "
               "of that name would give two slots one dotted name\n",
               full_name().c_str(), taken, static_cast<int>(name.size()),
               name.data(), what);
  std::abort();
}

Parameter* Module::AddParameter(std::string name, Tensor tensor) {
  RequireNewName(name, "a parameter");
  parameters_.emplace_back(std::move(name),
                           std::make_unique<Parameter>(std::move(tensor)));
  MarkStructureChanged();
  return parameters_.back().second.get();
}

TensorSlot* Module::AddBuffer(std::string name, Tensor tensor) {
  RequireNewName(name, "a buffer");
  buffers_.emplace_back(
      std::move(name),
      std::make_unique<TensorSlot>(SlotKind::kBuffer, std::move(tensor)));
  MarkStructureChanged();
  return buffers_.back().second.get();
}

void Module::MarkStructureChanged() {
  ++local_structure_version_;
  for (Module* m = this; m != nullptr; m = m->parent_) {
    ++m->subtree_structure_version_;
  }
}

void Module::ForEachStructure(StructureVisitor visit) const {
  visit(full_name(), local_structure_version_);
  for (const auto& child : children_) child->ForEachStructure(visit);
}

}  // namespace normgraph
