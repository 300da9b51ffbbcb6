#ifndef NORMGRAPH_GRAPH_GRAPH_STATS_H_
#define NORMGRAPH_GRAPH_GRAPH_STATS_H_

// Counters and timings of a captured graph (or of several, added together).

#include <cstdint>
#include <map>
#include <string>

namespace normgraph {

struct GraphStats {
  int64_t captures = 0;  // the first capture and every recapture
  int64_t replays = 0;   // launches of the graph
  int64_t checks = 0;    // identity + freshness checks (one per checked replay)
  int64_t fast_checks = 0;  // of those, the ones nothing had moved before
                            // (IdentitySnapshot::VerifyFast's fast path)
  int64_t refused = 0;      // replays refused under the fail policy
  int64_t violations =
      0;  // moved, stale or freed tensors found, summed over checks
  int64_t recaptures = 0;    // repairs by recapture
  int64_t rebinds = 0;       // repairs by rebind
  int64_t rebound_args = 0;  // node arguments patched by those rebinds
  int64_t refreshes = 0;     // stale derived buffers refreshed
  std::map<std::string, int64_t> violations_by_tensor;
  int64_t check_ns = 0;
  int64_t fast_check_ns = 0;  // the fast checks' share of check_ns
  int64_t replay_ns = 0;
  int64_t capture_ns = 0;  // first captures and recaptures, including snapshots
  int64_t rebind_ns = 0;

  void Add(const GraphStats& o) {
    captures += o.captures;
    replays += o.replays;
    checks += o.checks;
    fast_checks += o.fast_checks;
    refused += o.refused;
    violations += o.violations;
    recaptures += o.recaptures;
    rebinds += o.rebinds;
    rebound_args += o.rebound_args;
    refreshes += o.refreshes;
    for (const auto& [name, n] : o.violations_by_tensor)
      violations_by_tensor[name] += n;
    check_ns += o.check_ns;
    fast_check_ns += o.fast_check_ns;
    replay_ns += o.replay_ns;
    capture_ns += o.capture_ns;
    rebind_ns += o.rebind_ns;
  }
};

}  // namespace normgraph

#endif  // NORMGRAPH_GRAPH_GRAPH_STATS_H_
