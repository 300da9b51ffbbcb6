#include "graph/captured_graph.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace normgraph {
namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

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
  NG_RETURN_IF_ERROR(stream_.BeginCapture());
  absl::Status captured = capture_(stream_);
  absl::StatusOr<std::unique_ptr<ExecutableGraph>> exec = stream_.EndCapture();
  if (!captured.ok()) {
    return absl::Status(captured.code(),
                        absl::StrCat("graph '", name_, "': capture failed: ",
                                     captured.message()));
  }
  if (!exec.ok()) return exec.status();
  absl::StatusOr<IdentitySnapshot> snapshot =
      IdentitySnapshot::Take(**exec, owners_, options_.allow_unowned);
  if (!snapshot.ok()) {
    return absl::Status(
        snapshot.status().code(),
        absl::StrCat("graph '", name_, "': ", snapshot.status().message()));
  }
  NG_RETURN_IF_ERROR(CrossCheckNodePointers(**exec));
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
  NG_RETURN_IF_ERROR(exec_->Replay());
  ++stats_.replays;
  stats_.replay_ns += NowNs() - start;
  return absl::OkStatus();
}

absl::Status CapturedGraph::Recapture() {
  NG_RETURN_IF_ERROR(DoCapture());
  ++stats_.recaptures;
  invalidated_ = false;
  return absl::OkStatus();
}

absl::Status CapturedGraph::Replay() {
  if (invalidated_) NG_RETURN_IF_ERROR(Recapture());
  if (options_.policy == ReplayPolicy::kUnchecked) return Launch();
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
  NG_RETURN_IF_ERROR(Launch());
  snapshot_.MarkWritten();
  return absl::OkStatus();
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
  for (const Violation& v : violations_) {
    if (v.kind == ViolationKind::kStale) continue;
    if (options_.policy != ReplayPolicy::kRebind ||
        v.kind != ViolationKind::kMoved || !v.current.SameLayout(v.captured)) {
      recapture = true;  // freed, structure changed, or a new layout
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
    const Tensor& now = tracked.slot->tensor();
    for (const NodeArgUse& use : tracked.uses) {
      const TensorIdentity& arg =
          exec_->nodes()[use.node].args[use.arg].identity;
      NG_ASSIGN_OR_RETURN(
          Tensor view,
          Tensor::FromStorage(now.storage(),
                              now.offset_bytes() + use.offset_in_slot,
                              arg.shape, arg.strides, arg.dtype));
      NG_RETURN_IF_ERROR(exec_->RebindArg(use.node, use.arg, view));
      patched.push_back(use.node);
      ++stats_.rebound_args;
    }
    snapshot_.Accept(v.tracked);
  }
  if (!patched.empty()) {
    NG_RETURN_IF_ERROR(CrossCheckNodePointers(*exec_, patched));
    ++stats_.rebinds;
    stats_.rebind_ns += NowNs() - rebind_start;
  }
  if (recapture) NG_RETURN_IF_ERROR(Recapture());
  snapshot_.Verify(violations_, options_.check_freshness);
  if (!violations_.empty()) {
    return absl::InternalError(absl::StrCat(
        "repair did not converge: ", DescribeViolations(name_, violations_)));
  }
  return absl::OkStatus();
}

}  // namespace normgraph
