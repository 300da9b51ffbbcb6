#ifndef NORMGRAPH_FUZZ_GRAPH_REPLAY_HARNESS_H_
#define NORMGRAPH_FUZZ_GRAPH_REPLAY_HARNESS_H_

// The stateful differential oracle of docs/fuzz_oracle.md, over a Qwen3.5-,
// Gemma3- or Qwen3 (Llama)-shaped norm stack captured into bucketed graphs.
//
// An input is a 2-byte header (stack kind, loader, dtype, rounding order and
// initial policy; one byte that picks every size) and a byte-coded sequence of
// operations (BoringSSL style: one byte picks the op, each op reads its own
// arguments and stops cleanly when the input runs short): weight loads in
// place (subsets, from memory or a safetensors image, with dtype conversion,
// in either order, rejected loads that must change nothing), A -> B -> A
// swaps, input writes, batch sizes, replays, eager runs, recaptures, policy
// changes, injected faults (rebind while the old storage lives, free and
// reallocate with or without another tensor taking the block, a source weight
// written without refreshing its derived buffer, a view re-sliced within its
// storage, the same memory wrapped in a new storage, tied weights, packed
// views of parameters, derived buffers packed alone or with their sources),
// UPDATES (a trainer's update loop: up to 128 full loads from one byte) and
// REPEAT, which runs the next few ops up to 128 times (so one input loads the
// same modules hundreds of times, up to kMaxSteps ops in all). A final replay
// ends every input. See make_seed_corpus.py for the byte format. The captured
// step also copies hidden_states into the middle of a harness-owned slot, so
// that a rebind patches an argument at an offset inside its slot.
//
// Every input builds its own model and graphs and drops them at the end:
// nothing carries over from one input to the next, so every finding
// reproduces from its file alone.
//
// The harness keeps its own model of the state, independent of the product:
// - the value of every parameter, in a byte image of every storage the
//   parameters live in (tied and packed views alias there as they do in
//   memory, so a write through one changes the others), computed with the
//   harness's own round-to-nearest-even from the values it generated;
// - the identity (storage, address, layout) every slot must have: only the
//   harness's own faults move slots (and, with the pre-fix loader, the
//   loader's refresh moves derived buffers, which is its known bug);
// - per bucket, what moved since that bucket's graph captured or repaired it,
//   and which derived buffers are stale.
// After every load it checks that no slot moved, that every parameter holds
// exactly the harness's value and that every derived buffer holds 1 + w. At
// every replay (outputs poisoned first) and every eager run it computes the
// reference step itself, with the CPU reference kernel (RmsNormCpu) on
// buffers it fills from its own value image, in each stack's forward order:
// no loader or module of the product is involved. Then:
// - fail policy: if the harness expects violations, the replay must be
//   refused with an error naming exactly those tensors, and must have
//   launched nothing (outputs still poisoned); otherwise it must succeed and
//   match the reference;
// - recapture / rebind: the replay must succeed, find exactly the expected
//   violations (by tensor name), and match the reference bit for bit;
// - unchecked (self-test only): the replay must match the reference.
// Every finding names the tensors involved.

#include <cstdint>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace normgraph::fuzz {

enum class FuzzMode {
  kDefault,  // policies fail / recapture / rebind; either loader; all faults
  // Self-tests: a bug put back that the oracle must find.
  kUncheckedLegacy,  // unchecked policy and the pre-fix loader
  kNoFreshness,      // fail policy with the freshness check off
  kReallocRmsNorm,   // plain RmsNorm's loader re-allocates its weight
  kSkipRefreshNth,   // every 50th load of a zero-centred norm skips the
                     // refresh of its derived buffer (but marks it fresh)
  kReallocNth,       // the 40th load of any parameter re-allocates it
  kCorruptLoad,      // the loader's copy is off by one: the last element keeps
                     // its old value (corrupts a shadow model loaded the same
                     // way equally)
};

// Decoded ops per input, and ops executed per input (REPEAT included; an
// UPDATES op is one step however many loads it runs).
inline constexpr int kMaxOps = 512;
inline constexpr int kMaxSteps = 512;
// Replays in bursts per input (a burst is one step of up to 1021 replays).
inline constexpr int kMaxBurstReplays = 2048;
// Loads per input: enough for a fault on the 1000th load of a module (a
// REPEAT of UPDATES reaches it from a few bytes).
inline constexpr int kMaxLoads = 2048;
// Elements loaded per input, over every load: an input stops (with its final
// replay) once it has loaded this many. 2048 loads of the narrow models stay
// under it; the widest rows (1040 elements) get about 50 loads. Without it,
// long runs of wide loads took 100-200 ms an input (a thousand narrow inputs'
// time), most of the fuzzer's time.
inline constexpr int64_t kMaxLoadedElements = int64_t{1} << 19;

// NORMGRAPH_FUZZ_MODE = "" | "unchecked-legacy" | "no-freshness" |
// "realloc-rms-norm" | "skip-refresh-50th" | "realloc-40th-load" |
// "corrupt-load". An unknown name stops the process.
FuzzMode FuzzModeFromEnv();
// The name NORMGRAPH_FUZZ_MODE uses for `mode`.
const char* FuzzModeName(FuzzMode mode);

// Runs one input. Returns OK, or the oracle's finding (a silent mismatch, a
// wrong or missing refusal, a moved or wrongly loaded tensor, a repair that
// did not converge) as an error describing it.
absl::Status RunGraphReplayInput(absl::Span<const uint8_t> data, FuzzMode mode);

}  // namespace normgraph::fuzz

#endif  // NORMGRAPH_FUZZ_GRAPH_REPLAY_HARNESS_H_
