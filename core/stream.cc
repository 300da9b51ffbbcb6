#include "core/stream.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace normgraph {
namespace {

const void* PointerAt(const void* params, size_t offset) {
  const void* p;
  std::memcpy(&p, static_cast<const char*>(params) + offset, sizeof p);
  return p;
}

}  // namespace

absl::Status ExecutableGraph::RebindArg(size_t node, size_t arg,
                                        const Tensor& tensor) {
  if (node >= nodes_.size() || arg >= nodes_[node].args.size()) {
    return absl::OutOfRangeError(
        absl::StrFormat("rebind: no argument %d of node %d", arg, node));
  }
  LaunchRecord& record = nodes_[node];
  RecordedArg& recorded = record.args[arg];
  TensorIdentity fresh = tensor.Identity();
  if (!fresh.SameLayout(recorded.identity)) {
    return absl::FailedPreconditionError(
        absl::StrFormat("rebind of node %d (%s) argument %d: new tensor %s "
                        "does not match recorded layout %s",
                        node, record.kernel->name, arg, fresh.ToString(),
                        recorded.identity.ToString()));
  }
  // Patch the record, write it to the backend, and put the record back if the
  // backend refused: the record then still says what the launcher last wrote
  // successfully (the backend's copy may be half written; callers stop
  // replaying this graph on any error).
  void* address = tensor.data();
  void* before;
  std::memcpy(&before, record.params.data() + recorded.offset, sizeof before);
  std::memcpy(record.params.data() + recorded.offset, &address, sizeof address);
  std::swap(recorded.identity, fresh);
  absl::Status written = WriteNodeParams(node);
  if (!written.ok()) {
    std::memcpy(record.params.data() + recorded.offset, &before, sizeof before);
    std::swap(recorded.identity, fresh);
  }
  return written;
}

absl::Status Stream::Validate(const KernelDef& kernel, const void* params,
                              size_t params_size,
                              absl::Span<const ArgBinding> args) const {
  if (params_size != kernel.params_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("kernel %s: params are %d bytes, expected %d",
                        kernel.name, params_size, kernel.params_size));
  }
  const char* base = static_cast<const char*>(params);
  absl::InlinedVector<bool, 8> bound(kernel.pointer_offsets.size(), false);
  // Each binding's pointer field (its index in pointer_offsets).
  absl::InlinedVector<size_t, 8> fields;
  for (const ArgBinding& arg : args) {
    const ptrdiff_t offset = static_cast<const char*>(arg.field) - base;
    size_t index = 0;
    while (index < kernel.pointer_offsets.size() &&
           static_cast<ptrdiff_t>(kernel.pointer_offsets[index]) != offset) {
      ++index;
    }
    if (index == kernel.pointer_offsets.size()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "kernel %s: binding at byte offset %d is not a pointer field",
          kernel.name, offset));
    }
    if (bound[index]) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "kernel %s: pointer field at byte offset %d bound twice", kernel.name,
          offset));
    }
    bound[index] = true;
    fields.push_back(index);
    if (arg.tensor == nullptr || !arg.tensor->defined()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("kernel %s: pointer field at byte offset %d bound to "
                          "an undefined tensor",
                          kernel.name, offset));
    }
    if (arg.tensor->storage()->device() != device()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "kernel %s: tensor %s is on %s, the stream on %s", kernel.name,
          arg.tensor->DebugString(), arg.tensor->storage()->device().ToString(),
          device().ToString()));
    }
    if (PointerAt(params, offset) != arg.tensor->data()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("kernel %s: pointer field at byte offset %d holds %p "
                          "but is bound to %s at %p",
                          kernel.name, offset, PointerAt(params, offset),
                          arg.tensor->DebugString(), arg.tensor->data()));
    }
  }
  if (kernel.validate != nullptr) {
    absl::Status ok = kernel.validate(params);
    if (!ok.ok()) {
      return absl::Status(
          ok.code(), absl::StrCat("kernel ", kernel.name, ": ", ok.message()));
    }
  }
  if (kernel.arg_bytes != nullptr) {
    // The bound tensor must cover every byte the kernel touches from its
    // address (params whose sizes exceed their tensors would read or write
    // past them).
    for (size_t i = 0; i < args.size(); ++i) {
      const size_t needed = kernel.arg_bytes(params, fields[i]);
      const size_t spanned = args[i].tensor->span_bytes();
      if (needed > spanned) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "kernel %s: the pointer field at byte offset %d reaches %d bytes "
            "from its address, but is bound to %s, which spans %d",
            kernel.name, kernel.pointer_offsets[fields[i]], needed,
            args[i].tensor->DebugString(), spanned));
      }
    }
  }
  for (size_t i = 0; i < kernel.pointer_offsets.size(); ++i) {
    const void* p = PointerAt(params, kernel.pointer_offsets[i]);
    if (!bound[i] && p != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrFormat("kernel %s: pointer field at byte offset %d holds "
                          "%p, an address no tensor owns",
                          kernel.name, kernel.pointer_offsets[i], p));
    }
  }
  return absl::OkStatus();
}

absl::Status Stream::LaunchRaw(const KernelDef& kernel, const void* params,
                               size_t params_size,
                               absl::Span<const ArgBinding> args) {
  absl::Status valid = Validate(kernel, params, params_size, args);
  if (!capturing_) {
    if (!valid.ok()) return valid;
    absl::Status run = Execute(kernel, params);
    if (!run.ok()) return run;
    ++eager_launches_;
    for (const ArgBinding& arg : args) {
      if (Writes(arg.access)) arg.tensor->storage()->BumpWriteVersion();
    }
    return absl::OkStatus();
  }
  if (!valid.ok()) {
    if (capture_error_.ok()) capture_error_ = valid;
    return valid;
  }
  absl::Status captured = CaptureLaunch(kernel, params);
  if (!captured.ok()) {
    if (capture_error_.ok()) capture_error_ = captured;
    return captured;
  }
  LaunchRecord record;
  record.kernel = &kernel;
  const auto* bytes = static_cast<const uint8_t*>(params);
  record.params.assign(bytes, bytes + params_size);
  for (const ArgBinding& arg : args) {
    record.args.push_back(RecordedArg{
        static_cast<uint16_t>(static_cast<const char*>(arg.field) -
                              static_cast<const char*>(params)),
        arg.access, arg.tensor->Identity(), arg.tensor, arg.tensor->storage()});
  }
  captured_.push_back(std::move(record));
  return absl::OkStatus();
}

absl::Status Stream::BeginCapture() {
  if (capturing_)
    return absl::FailedPreconditionError("stream is already capturing");
  absl::Status begun = BeginBackendCapture();
  if (!begun.ok()) return begun;
  capturing_ = true;
  capture_error_ = absl::OkStatus();
  captured_.clear();
  captured_.reserve(last_capture_size_);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ExecutableGraph>> Stream::EndCapture() {
  if (!capturing_)
    return absl::FailedPreconditionError("EndCapture without BeginCapture");
  capturing_ = false;
  last_capture_size_ = captured_.size();
  std::vector<LaunchRecord> nodes = std::move(captured_);
  captured_.clear();
  if (!capture_error_.ok()) {
    AbortBackendCapture();
    absl::Status error = capture_error_;
    capture_error_ = absl::OkStatus();
    return absl::Status(error.code(),
                        absl::StrCat("capture invalidated by a failed launch: ",
                                     error.message()));
  }
  return Instantiate(std::move(nodes));
}

absl::Status Stream::Copy(const Tensor& src, const Tensor& dst) {
  if (capturing_)
    return absl::FailedPreconditionError("Stream::Copy while capturing");
  if (!src.defined() || !dst.defined() || src.shape() != dst.shape() ||
      src.dtype() != dst.dtype() || !src.is_contiguous() ||
      !dst.is_contiguous() || src.storage()->device() != device() ||
      dst.storage()->device() != device()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Stream::Copy: ", src.DebugString(), " -> ", dst.DebugString()));
  }
  const size_t bytes = src.numel() * DTypeSize(src.dtype());
  if (bytes > 0) {
    absl::Status ok = CopyBytes(dst.data(), src.data(), bytes);
    if (!ok.ok()) return ok;
  }
  dst.storage()->BumpWriteVersion();
  return absl::OkStatus();
}

absl::Status Stream::Zero(const Tensor& dst) {
  if (capturing_)
    return absl::FailedPreconditionError("Stream::Zero while capturing");
  if (!dst.defined() || !dst.is_contiguous() ||
      dst.storage()->device() != device()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Stream::Zero: ", dst.DebugString()));
  }
  const size_t bytes = dst.numel() * DTypeSize(dst.dtype());
  if (bytes > 0) {
    absl::Status ok = ZeroBytes(dst.data(), bytes);
    if (!ok.ok()) return ok;
  }
  dst.storage()->BumpWriteVersion();
  return absl::OkStatus();
}

}  // namespace normgraph
