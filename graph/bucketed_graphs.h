#ifndef NORMGRAPH_GRAPH_BUCKETED_GRAPHS_H_
#define NORMGRAPH_GRAPH_BUCKETED_GRAPHS_H_

// BucketedGraphs: one captured graph per batch-size bucket, as SGLang and vLLM
// capture their decode step. Each bucket has its own static step buffers
// (inputs, outputs and workspace, allocated once: replays allocate nothing).
// Run() copies a batch's inputs into the smallest bucket that fits, zero-pads
// the rows beyond the batch, replays (checking identities first), and copies
// the batch's output rows back out.
//
// graph/ knows nothing about norms or modules: the step is a function over
// StepBuffers and a list of TensorOwners whose slots the step may touch.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/step_buffers.h"
#include "core/stream.h"
#include "graph/captured_graph.h"

namespace normgraph {

struct StepFunction {
  // The step tensors for a batch of `batch` rows.
  std::function<std::vector<StepTensorSpec>(int64_t batch)> specs;
  // One step over the given buffers.
  std::function<absl::Status(Stream&, const StepBuffers&)> forward;
  // Owners of everything else the step touches (the model's modules).
  std::vector<TensorOwner*> owners;
};

// SGLang's and vLLM's small decode buckets.
inline const std::vector<int64_t>& DefaultBuckets() {
  static const auto* buckets = new std::vector<int64_t>{1, 2, 4, 8, 16, 32, 64};
  return *buckets;
}

class BucketedGraphs {
 public:
  // Allocates static buffers for every bucket (sorted, unique, >= 1) and
  // captures each graph.
  static absl::StatusOr<std::unique_ptr<BucketedGraphs>> Create(
      std::string name, Stream& stream, StepFunction step,
      std::vector<int64_t> buckets, GraphOptions options, Allocator& allocator);

  // The smallest bucket that holds `batch` rows.
  absl::StatusOr<int64_t> BucketFor(int64_t batch) const;

  // One step for io.batch() rows: inputs are read from `io`, outputs written
  // into it.
  absl::Status Run(const StepBuffers& io);

  const std::vector<int64_t>& buckets() const { return buckets_; }
  // The static buffers and the graph of `bucket`, which must be one of
  // buckets() (anything else throws std::out_of_range).
  StepBuffers& static_buffers(int64_t bucket) {
    return *entries_.at(bucket).buffers;
  }
  CapturedGraph& graph(int64_t bucket) { return *entries_.at(bucket).graph; }

  void set_policy(ReplayPolicy policy);
  // Every bucket's graph recaptures before its next replay (CapturedGraph::
  // Invalidate), or now.
  void Invalidate();
  absl::Status Recapture();
  // The stats of every bucket's graph, added together.
  GraphStats TotalStats() const;

 private:
  struct Entry {
    std::unique_ptr<StepBuffers> buffers;
    std::unique_ptr<CapturedGraph> graph;
  };
  BucketedGraphs(Stream& stream, std::vector<int64_t> buckets)
      : stream_(stream), buckets_(std::move(buckets)) {}

  Stream& stream_;
  std::vector<int64_t> buckets_;
  std::map<int64_t, Entry> entries_;
};

}  // namespace normgraph

#endif  // NORMGRAPH_GRAPH_BUCKETED_GRAPHS_H_
