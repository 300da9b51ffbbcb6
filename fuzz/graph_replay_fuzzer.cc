// libFuzzer entry point of the graph replay oracle (graph_replay_harness.h).
// Any finding aborts, so libFuzzer saves the input. NORMGRAPH_FUZZ_MODE selects
// the self-test modes.

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "fuzz/graph_replay_harness.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const normgraph::fuzz::FuzzMode mode =
      normgraph::fuzz::FuzzModeFromEnv();
  const absl::Status status =
      normgraph::fuzz::RunGraphReplayInput({data, size}, mode);
  if (!status.ok()) {
    std::fprintf(stderr, "graph_replay_fuzzer: %s\n",
                 status.ToString().c_str());
    std::abort();
  }
  return 0;
}
