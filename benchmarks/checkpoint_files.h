#ifndef NORMGRAPH_BENCHMARKS_CHECKPOINT_FILES_H_
#define NORMGRAPH_BENCHMARKS_CHECKPOINT_FILES_H_

// Files for the weight-loading benchmarks (weight_load_benchmark on the CPU,
// cuda_graph_benchmark's BM_WeightUpdate / BM_FileRead on the GPU).

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "layers/module.h"

namespace normgraph {

// `name` in $TEST_TMPDIR, else $TMPDIR, else /tmp.
std::string BenchmarkTempPath(const std::string& name);

// Writes `model`'s parameters, with `seed`-random values (RandomWeights), to
// a safetensors file at `path`; returns the file's size in bytes.
absl::StatusOr<int64_t> WriteRandomCheckpoint(Module& model,
                                              const std::string& path,
                                              uint64_t seed);

}  // namespace normgraph

#endif  // NORMGRAPH_BENCHMARKS_CHECKPOINT_FILES_H_
