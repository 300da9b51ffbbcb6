#include "graph/captured_graph.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status_macros.h"

namespace normgraph {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

absl::Status CapturedGraph::Named(const absl::Status& status) const {
  if (status.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrCat("graph '", name_, "': ", status.message()));
}

CapturedGraph::CapturedGraph(std::string name, Stream& stream,
                             CaptureFunction capture,
                             std::vector<TensorOwner*> owners,
                             GraphOptions options)
    : name_(std::move(name)),
      stream_(stream),
      capture_(std::move(capture)),
      owners_(std::move(owners)),
      options_(options) {}

absl::StatusOr<std::unique_ptr<CapturedGraph>> CapturedGraph::Capture(
    std::string name, Stream& stream, CaptureFunction capture,
    std::vector<TensorOwner*> owners, GraphOptions options) {
  std::unique_ptr<CapturedGraph> g(new CapturedGraph(
      std::move(name), stream, std::move(capture), std::move(owners), options));
  NG_RETURN_IF_ERROR(g->DoCapture());
  return g;
}

absl::Status CapturedGraph::DoCapture() {
  const int64_t start = NowNs();
  NG_RETURN_IF_ERROR(Named(stream_.BeginCapture()));
  absl::Status captured = capture_(stream_);
  absl::StatusOr<std::unique_ptr<ExecutableGraph>> exec = stream_.EndCapture();
  if (!captured.ok()) {
    return absl::Status(captured.code(),
                        absl::StrCat("graph '", name_, "': capture failed: ",
                                     captured.message()));
  }
  if (!exec.ok()) return Named(exec.status());
  absl::StatusOr<IdentitySnapshot> snapshot =
      IdentitySnapshot::Take(**exec, owners_, options_.allow_unowned);
  if (!snapshot.ok()) return Named(snapshot.status());
  NG_RETURN_IF_ERROR(Named(CrossCheckNodePointers(**exec)));
  exec_ = *std::move(exec);
  snapshot_ = *std::move(snapshot);
  ++stats_.captures;
  stats_.capture_ns += NowNs() - start;
  return absl::OkStatus();
}

std::vector<Violation> CapturedGraph::Check() const {
  std::vector<Violation> out;
  snapshot_.Verify(out, options_.check_freshness);
  return out;
}

absl::Status CapturedGraph::Launch() {
  const int64_t start = NowNs();
  NG_RETURN_IF_ERROR(Named(exec_->Replay()));
  ++stats_.replays;
  stats_.replay_ns += NowNs() - start;
  // What the graph wrote is newer than any buffer derived from it, whatever
  // the policy (other graphs' freshness checks depend on it).
  snapshot_.MarkWritten();
  return absl::OkStatus();
}

absl::Status CapturedGraph::Recapture() {
  NG_RETURN_IF_ERROR(DoCapture());
  ++stats_.recaptures;
  invalidated_ = false;
  return absl::OkStatus();
}

absl::Status CapturedGraph::Replay() {
  return Replay([] { return absl::OkStatus(); });
}

absl::Status CapturedGraph::Replay(
    absl::FunctionRef<absl::Status()> before_launch) {
  if (stream_.is_capturing()) {
    // Graphs do not nest: a replay now would run (CPU) or be refused at
    // instantiation (CUDA) instead of becoming part of the capture.
    return Named(absl::FailedPreconditionError(
        "replay while its stream is capturing (graphs do not nest)"));
  }
  if (invalidated_) NG_RETURN_IF_ERROR(Recapture());
  if (options_.policy == ReplayPolicy::kUnchecked) {
    NG_RETURN_IF_ERROR(before_launch());
    return Launch();
  }
  const int64_t start = NowNs();
  // Nothing moved since the last clean check (graph/identity_snapshot.h): no
  // per-tensor work.
  const bool fast = snapshot_.VerifyFast(violations_, options_.check_freshness);
  const int64_t elapsed = NowNs() - start;
  ++stats_.checks;
  stats_.check_ns += elapsed;
  if (fast) {
    ++stats_.fast_checks;
    stats_.fast_check_ns += elapsed;
  }
  if (!violations_.empty()) {
    stats_.violations += static_cast<int64_t>(violations_.size());
    for (const Violation& v : violations_)
      ++stats_.violations_by_tensor[v.name];
    if (options_.policy == ReplayPolicy::kFail) {
      ++stats_.refused;
      return absl::FailedPreconditionError(
          DescribeViolations(name_, violations_));
    }
    NG_RETURN_IF_ERROR(Repair());
  }
  NG_RETURN_IF_ERROR(before_launch());
  return Launch();
}

absl::Status CapturedGraph::Repair() {
  // A stale derived buffer holds the wrong values at the right address: neither
  // rebinding nor recapturing fixes that, refreshing it does.
  for (const Violation& v : violations_) {
    if (v.kind != ViolationKind::kStale) continue;
    absl::Status refreshed = snapshot_.tensors()[v.tracked].slot->Refresh();
    if (!refreshed.ok()) {
      return absl::Status(
          refreshed.code(),
          absl::StrCat("graph '", name_, "': refreshing stale ", v.name,
                       " failed: ", refreshed.message()));
    }
    ++stats_.refreshes;
  }
  // A refresh may itself have moved the buffer (a module that reallocates on
  // refresh, like the pre-fix loader): look again before repairing addresses.
  snapshot_.Verify(violations_, options_.check_freshness);
  bool recapture = false;
  const int64_t rebind_start = NowNs();
  std::vector<uint32_t> patched;
  absl::Status rebind_error;
  for (const Violation& v : violations_) {
    if (v.kind == ViolationKind::kStale) continue;
    if (options_.policy != ReplayPolicy::kRebind || !rebind_error.ok() ||
        v.kind != ViolationKind::kMoved || !v.current.SameLayout(v.captured)) {
      // Freed, structure changed, another device or layout, or an earlier
      // rebind failed.
      recapture = true;
      continue;
    }
    const TrackedTensor& tracked = snapshot_.tensors()[v.tracked];
    bool ambiguous = false;
    for (const NodeArgUse& use : tracked.uses) ambiguous |= use.ambiguous;
    if (ambiguous) {
      // A node may have read another slot sharing these bytes: only a new
      // capture knows which slot each argument now comes from.
      recapture = true;
      continue;
    }
    rebind_error = RebindUses(tracked, patched);
    if (!rebind_error.ok()) {
      recapture = true;
      continue;
    }
    snapshot_.Accept(v.tracked);
  }
  if (!patched.empty() && rebind_error.ok()) {
    rebind_error = ValidatePatchedNodes(patched);
    if (!rebind_error.ok()) recapture = true;
  }
  if (!patched.empty() && rebind_error.ok()) {
    rebind_error = CrossCheckNodePointers(*exec_, patched);
    if (rebind_error.ok()) {
      ++stats_.rebinds;
      stats_.rebind_ns += NowNs() - rebind_start;
    } else {
      recapture = true;
    }
  }
  if (!rebind_error.ok()) {
    // The graph may hold some patched nodes and not others: it must never be
    // launched again. A recapture replaces it (and clears this).
    invalidated_ = true;
  }
  if (recapture) {
    absl::Status recaptured = Recapture();
    if (!recaptured.ok()) {
      if (rebind_error.ok()) return recaptured;
      return absl::Status(
          recaptured.code(),
          absl::StrCat(recaptured.message(), " (recapturing because a rebind ",
                       "failed: ", rebind_error.message(), ")"));
    }
  }
  snapshot_.Verify(violations_, options_.check_freshness);
  if (!violations_.empty()) {
    return absl::InternalError(absl::StrCat(
        "repair did not converge: ", DescribeViolations(name_, violations_)));
  }
  return absl::OkStatus();
}

absl::Status CapturedGraph::ValidatePatchedNodes(
    absl::Span<const uint32_t> patched) const {
  for (uint32_t n : patched) {
    const LaunchRecord& node = exec_->nodes()[n];
    if (node.kernel->validate == nullptr) continue;
    absl::Status valid = node.kernel->validate(node.params.data());
    if (!valid.ok()) {
      return Named(absl::Status(
          valid.code(),
          absl::StrFormat("node %d (%s) rebound to parameters its kernel "
                          "refuses: %s",
                          n, node.kernel->name, valid.message())));
    }
  }
  return absl::OkStatus();
}

absl::Status CapturedGraph::RebindUses(const TrackedTensor& tracked,
                                       std::vector<uint32_t>& patched) {
  const Tensor& now = tracked.slot->tensor();
  for (const NodeArgUse& use : tracked.uses) {
    const LaunchRecord& node = exec_->nodes()[use.node];
    const TensorIdentity& arg = node.args[use.arg].identity;
    absl::StatusOr<Tensor> view = Tensor::FromStorage(
        now.storage(), now.offset_bytes() + use.offset_in_slot, arg.shape,
        arg.strides, arg.dtype);
    absl::Status rebound =
        view.ok() ? exec_->RebindArg(use.node, use.arg, *view) : view.status();
    if (!rebound.ok()) {
      return Named(absl::Status(
          rebound.code(),
          absl::StrFormat("rebinding %s in node %d (%s) failed: %s",
                          tracked.name, use.node, node.kernel->name,
                          rebound.message())));
    }
    patched.push_back(use.node);
    ++stats_.rebound_args;
  }
  return absl::OkStatus();
}

}  // namespace normgraph
