#ifndef NORMGRAPH_FUZZ_GRAPH_REPLAY_HARNESS_H_
#define NORMGRAPH_FUZZ_GRAPH_REPLAY_HARNESS_H_

// The stateful differential oracle of DESIGN.md section 6, over a Qwen3.5- or
// Gemma3-shaped norm stack captured into bucketed graphs.
//
// An input is a 2-byte header (model kind, loader, dtype, rounding order and
// initial policy; one byte that picks every size) and a byte-coded sequence of
// operations (BoringSSL style: one byte picks the op, each op reads its own
// arguments and stops cleanly when the input runs short; at most kMaxOps ops):
// weight loads in place (subsets, from memory or from a safetensors image), A
// -> B -> A swaps, input writes, batch sizes, replays, eager runs, recaptures,
// policy changes, and injected faults (rebind while the old storage lives, free
// and reallocate with or without another tensor taking the block, a source
// weight written without refreshing its derived buffer, a view re-sliced within
// its storage). A final replay ends every input.
//
// The harness keeps its own model of what each fault did: for every bucket, the
// tensors that moved since that bucket's graph last captured or repaired them,
// and which derived buffers are stale. After every replay (outputs poisoned
// first):
// - fail policy: if that model expects violations, the replay must be refused
// with an error naming
//   exactly those tensors, and must have launched nothing (outputs still
//   poisoned); otherwise it must succeed and match the reference;
// - recapture / rebind: the replay must succeed, find exactly the expected
// violations, and match
//   the reference bit for bit;
// - unchecked: the replay must match the reference (it will not, once a fault
// is in: this is how the
//   self-test proves the oracle can fail).
// The reference is an eager run of a separate, correctly loaded model holding
// the same parameter values: "what the weights say", so a stale derived buffer
// shows as a mismatch too.

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace normgraph::fuzz {

enum class FuzzMode {
  kDefault,  // policies fail / recapture / rebind; either loader; all faults
  kUncheckedLegacy,  // self-test: unchecked policy and the pre-fix loader,
                     // which must be caught
  kNoFreshness,  // self-test: fail policy with the freshness check off, which
                 // must be caught
};

inline constexpr int kMaxOps = 48;

// NORMGRAPH_FUZZ_MODE = "" | "unchecked-legacy" | "no-freshness".
FuzzMode FuzzModeFromEnv();

// Runs one input. Returns OK, or the oracle's finding (a silent mismatch, a
// wrong or missing refusal, a repair that did not converge) as an error
// describing it.
absl::Status RunGraphReplayInput(absl::Span<const uint8_t> data, FuzzMode mode);

}  // namespace normgraph::fuzz

#endif  // NORMGRAPH_FUZZ_GRAPH_REPLAY_HARNESS_H_
