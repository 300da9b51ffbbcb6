#include "graph/replay_policy.h"

namespace normgraph {

absl::string_view ReplayPolicyName(ReplayPolicy policy) {
  switch (policy) {
    case ReplayPolicy::kFail:
      return "fail";
    case ReplayPolicy::kRecapture:
      return "recapture";
    case ReplayPolicy::kRebind:
      return "rebind";
    case ReplayPolicy::kUnchecked:
      return "unchecked";
  }
  return "?";
}

std::optional<ReplayPolicy> ParseReplayPolicy(absl::string_view name) {
  for (ReplayPolicy p : {ReplayPolicy::kFail, ReplayPolicy::kRecapture,
                         ReplayPolicy::kRebind, ReplayPolicy::kUnchecked}) {
    if (ReplayPolicyName(p) == name) return p;
  }
  return std::nullopt;
}

}  // namespace normgraph
