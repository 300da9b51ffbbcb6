#include "layers/module.h"

#include "absl/strings/str_cat.h"

namespace normgraph {

absl::Status Parameter::CheckLoadable(absl::string_view name, const HostView& src,
                                      bool allow_conversion) const {
  if (src.shape != tensor().shape()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": shape ", ShapeToString(src.shape),
                                                   " does not match the parameter's ",
                                                   ShapeToString(tensor().shape())));
  }
  if (src.dtype != tensor().dtype() && !allow_conversion) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": dtype ", DTypeName(src.dtype),
                                                   " differs from the parameter's ",
                                                   DTypeName(tensor().dtype()),
                                                   " and conversion is off"));
  }
  return absl::OkStatus();
}

absl::Status Parameter::Load(const HostView& src) {
  absl::Status copied = CopyInto(src, tensor());
  if (!copied.ok()) return copied;
  return RunAfterLoad();
}

std::string Module::full_name() const {
  if (parent_ == nullptr) return name_;
  return absl::StrCat(parent_->full_name(), ".", name_);
}

void Module::Visit(const std::string& prefix,
                   absl::FunctionRef<void(const std::string&, Parameter*, TensorSlot&)> visit) {
  const std::string here = prefix.empty() ? name_ : absl::StrCat(prefix, ".", name_);
  for (auto& [name, p] : parameters_) visit(absl::StrCat(here, ".", name), p.get(), p->slot());
  for (auto& [name, b] : buffers_) visit(absl::StrCat(here, ".", name), nullptr, *b);
  for (auto& child : children_) child->Visit(here, visit);
}

void Module::ForEachParameter(absl::FunctionRef<void(const std::string&, Parameter&)> visit) {
  const std::string prefix = parent_ == nullptr ? "" : parent_->full_name();
  Visit(prefix, [&](const std::string& name, Parameter* p, TensorSlot&) {
    if (p != nullptr) visit(name, *p);
  });
}

void Module::ForEachSlot(SlotVisitor visit) {
  const std::string prefix = parent_ == nullptr ? "" : parent_->full_name();
  Visit(prefix, [&](const std::string& name, Parameter*, TensorSlot& slot) { visit(name, slot); });
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

Parameter* Module::AddParameter(std::string name, Tensor tensor) {
  parameters_.emplace_back(std::move(name), std::make_unique<Parameter>(std::move(tensor)));
  return parameters_.back().second.get();
}

TensorSlot* Module::AddBuffer(std::string name, Tensor tensor) {
  buffers_.emplace_back(std::move(name),
                        std::make_unique<TensorSlot>(SlotKind::kBuffer, std::move(tensor)));
  return buffers_.back().second.get();
}

}  // namespace normgraph
