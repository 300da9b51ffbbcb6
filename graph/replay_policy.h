#ifndef NORMGRAPH_GRAPH_REPLAY_POLICY_H_
#define NORMGRAPH_GRAPH_REPLAY_POLICY_H_

// What a captured graph does when, at replay time, a tensor it touches has
// moved or gone stale.

#include <optional>

#include "absl/strings/string_view.h"

namespace normgraph {

enum class ReplayPolicy {
  // Refuse: return an error naming every moved or stale tensor; launch nothing.
  kFail,
  // Repair by re-running the capture function (stale derived buffers are
  // refreshed first:
  // recapturing cannot fix a stale value).
  kRecapture,
  // Repair by patching the affected node arguments of the instantiated graph in
  // place; fall back to recapture when the new tensor's device or layout
  // (dtype, shape, strides, bytes) differs, when its bytes are shared with
  // another slot, or when the backend refuses the patch. Stale derived buffers
  // are refreshed.
  kRebind,
  // Check nothing, as today's engines do (replays still bump the write
  // versions of what they write). Exists only to show what goes wrong (fuzzer
  // self-tests).
  kUnchecked,
};

absl::string_view ReplayPolicyName(ReplayPolicy policy);
std::optional<ReplayPolicy> ParseReplayPolicy(absl::string_view name);

}  // namespace normgraph

#endif  // NORMGRAPH_GRAPH_REPLAY_POLICY_H_
