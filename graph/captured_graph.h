#ifndef NORMGRAPH_GRAPH_CAPTURED_GRAPH_H_
#define NORMGRAPH_GRAPH_CAPTURED_GRAPH_H_

// CapturedGraph: a graph captured from a callable, plus the identity snapshot
// of everything it touches, checked before every replay.
//
// Replay() verifies, for every tensor any node reads or writes, that its owner
// slot still holds the captured tensor (same storage id, address, size, dtype,
// shape, strides) and, for derived buffers, that they are fresh. What happens
// on a mismatch is the policy's choice (replay_policy.h). When nothing moved,
// the check is a pass over the snapshot that allocates nothing.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "core/stream.h"
#include "core/tensor_slot.h"
#include "graph/graph_stats.h"
#include "graph/identity_snapshot.h"
#include "graph/replay_policy.h"

namespace normgraph {

struct GraphOptions {
  ReplayPolicy policy = ReplayPolicy::kFail;
  // Allow kernel arguments that no owner claims (tracked by storage liveness
  // only). Off by default: an unowned address cannot be checked by name, so
  // capture refuses it.
  bool allow_unowned = false;
  // Check derived buffers for freshness. Only the fuzzers' self-test turns this
  // off, to prove the fuzzer finds the stale-buffer fault when nothing guards
  // against it.
  bool check_freshness = true;
};

using CaptureFunction = std::function<absl::Status(Stream&)>;

class CapturedGraph {
 public:
  // Runs `capture` under stream capture, instantiates the graph and snapshots
  // the identity of every tensor it touches; `owners` are everything those
  // tensors may belong to.
  static absl::StatusOr<std::unique_ptr<CapturedGraph>> Capture(
      std::string name, Stream& stream, CaptureFunction capture,
      std::vector<TensorOwner*> owners, GraphOptions options = {});

  // Checks, repairs or refuses per the policy, then launches the graph. A
  // replay that launched bumps the write version of every storage the graph
  // writes, as eager launches do (under every policy, kUnchecked included).
  // Under kRebind, a moved tensor whose rebind the backend refuses (a launch
  // planned differently now) is repaired by a recapture instead. An error if
  // the stream is capturing: graphs do not nest.
  absl::Status Replay();
  // The same, running `before_launch` after the check (and any repair) and
  // before the launch, so that a refused replay runs it not at all: for
  // writing the graph's static inputs (BucketedGraphs::Run), and nothing
  // else the check looks at.
  absl::Status Replay(absl::FunctionRef<absl::Status()> before_launch);

  // Recaptures now (re-runs the capture function), whatever the policy.
  absl::Status Recapture();
  // Makes the next Replay recapture first, whatever the policy: for changes
  // the graph cannot see (a forward-path switch the module does not report).
  void Invalidate() { invalidated_ = true; }
  bool invalidated() const { return invalidated_; }

  // The violations a replay would see now (no side effects).
  std::vector<Violation> Check() const;

  void set_policy(ReplayPolicy policy) { options_.policy = policy; }
  ReplayPolicy policy() const { return options_.policy; }
  const GraphStats& stats() const { return stats_; }
  const std::string& name() const { return name_; }
  const ExecutableGraph& graph() const { return *exec_; }
  const IdentitySnapshot& snapshot() const { return snapshot_; }

 private:
  CapturedGraph(std::string name, Stream& stream, CaptureFunction capture,
                std::vector<TensorOwner*> owners, GraphOptions options);

  absl::Status DoCapture();
  absl::Status Repair();
  // Points every node argument that uses `tracked` at its slot's current
  // tensor; appends the patched nodes to `patched`.
  absl::Status RebindUses(const TrackedTensor& tracked,
                          std::vector<uint32_t>& patched);
  // The kernel's own parameter check (KernelDef::validate, what every eager
  // launch and capture runs) on each patched node: a rebind must not launch
  // what the launcher would refuse (an output moved over an input, say).
  // Errors make the repair recapture instead, which reports the refusal.
  absl::Status ValidatePatchedNodes(absl::Span<const uint32_t> patched) const;
  // Launches the graph and bumps the write version of what it writes.
  absl::Status Launch();
  // `status` with "graph '<name>': " in front (OK stays OK).
  absl::Status Named(const absl::Status& status) const;

  const std::string name_;
  Stream& stream_;
  const CaptureFunction capture_;
  const std::vector<TensorOwner*> owners_;
  GraphOptions options_;
  std::unique_ptr<ExecutableGraph> exec_;
  IdentitySnapshot snapshot_;
  std::vector<Violation> violations_;  // reused across checks
  GraphStats stats_;
  bool invalidated_ = false;
};

}  // namespace normgraph

#endif  // NORMGRAPH_GRAPH_CAPTURED_GRAPH_H_
