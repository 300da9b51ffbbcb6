#include "graph/bucketed_graphs.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "core/tensor.h"

namespace normgraph {

absl::StatusOr<std::unique_ptr<BucketedGraphs>> BucketedGraphs::Create(
    std::string name, Stream& stream, StepFunction step,
    std::vector<int64_t> buckets, GraphOptions options, Allocator& allocator) {
  if (buckets.empty())
    return absl::InvalidArgumentError("no batch buckets given");
  std::sort(buckets.begin(), buckets.end());
  if (buckets.front() < 1 ||
      std::adjacent_find(buckets.begin(), buckets.end()) != buckets.end()) {
    return absl::InvalidArgumentError(
        "batch buckets must be distinct and >= 1");
  }
  std::unique_ptr<BucketedGraphs> graphs(new BucketedGraphs(stream, buckets));
  for (int64_t bucket : buckets) {
    Entry entry;
    NG_ASSIGN_OR_RETURN(entry.buffers,
                        StepBuffers::Create(absl::StrCat("graph.b", bucket),
                                            step.specs(bucket), allocator));
    // Capture writes nothing, but the buffers must hold defined values before
    // the first replay.
    for (size_t i = 0; i < entry.buffers->size(); ++i) {
      NG_RETURN_IF_ERROR(stream.Zero(entry.buffers->tensor(i)));
    }
    std::vector<TensorOwner*> owners = step.owners;
    owners.push_back(entry.buffers.get());
    const StepBuffers* buffers = entry.buffers.get();
    auto forward = step.forward;
    NG_ASSIGN_OR_RETURN(
        entry.graph,
        CapturedGraph::Capture(
            absl::StrCat(name, "/b", bucket), stream,
            [forward, buffers](Stream& s) { return forward(s, *buffers); },
            std::move(owners), options));
    graphs->entries_.emplace(bucket, std::move(entry));
  }
  return graphs;
}

absl::StatusOr<int64_t> BucketedGraphs::BucketFor(int64_t batch) const {
  auto it = std::lower_bound(buckets_.begin(), buckets_.end(), batch);
  if (batch < 1 || it == buckets_.end()) {
    return absl::OutOfRangeError(
        absl::StrCat("batch size ", batch, " fits no captured bucket (largest ",
                     buckets_.back(), ")"));
  }
  return *it;
}

absl::Status BucketedGraphs::Run(const StepBuffers& io) {
  const int64_t batch = io.batch();
  NG_ASSIGN_OR_RETURN(int64_t bucket, BucketFor(batch));
  Entry& entry = entries_.at(bucket);
  StepBuffers& statics = *entry.buffers;
  // Checked before anything is copied: the same tensors, by name and role,
  // in the captured order (two inputs of one shape must not trade places).
  const std::string graph = entry.graph->name();
  if (statics.size() != io.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("graph '", graph, "': ", io.size(),
                     " step tensors given, the step was ", "captured with ",
                     statics.size()));
  }
  for (size_t i = 0; i < io.size(); ++i) {
    if (io.spec(i).name != statics.spec(i).name ||
        io.spec(i).role != statics.spec(i).role) {
      return absl::InvalidArgumentError(
          absl::StrCat("graph '", graph, "': step tensor ", i, " is '",
                       io.spec(i).name, "', the step was captured with '",
                       statics.spec(i).name, "' there (or another role)"));
    }
    // And each the captured one's dtype and row shape, `batch` rows of it:
    // a mismatch found while copying would leave the inputs before it
    // written (and the graph checked, repaired and counted) for a step that
    // then does not run.
    const Tensor& given = io.tensor(i);
    const Tensor& captured = statics.tensor(i);
    Shape rows = captured.shape();
    if (!rows.empty()) rows[0] = batch;
    if (!given.defined() || given.dtype() != captured.dtype() ||
        given.shape() != rows) {
      return absl::InvalidArgumentError(absl::StrCat(
          "graph '", graph, "': step tensor '", io.spec(i).name, "' is ",
          given.defined() ? absl::StrCat(DTypeName(given.dtype()),
                                         ShapeToString(given.shape()))
                          : std::string("undefined"),
          ", the step was captured with ", DTypeName(captured.dtype()),
          ShapeToString(rows), " for a batch of ", batch));
    }
  }
  auto named = [&](size_t i, const absl::Status& s) {
    return s.ok() ? s
                  : absl::Status(
                        s.code(),
                        absl::StrCat("graph '", graph, "': step tensor '",
                                     io.spec(i).name, "': ", s.message()));
  };
  // Written after the graph's check: a refused step writes nothing (a static
  // input rebound onto other memory, a weight's say, would take the inputs).
  auto write_inputs = [&]() -> absl::Status {
    for (size_t i = 0; i < io.size(); ++i) {
      if (io.spec(i).role != StepRole::kInput) continue;
      const Tensor& s = statics.tensor(i);
      absl::StatusOr<Tensor> rows = s.Narrow(0, 0, batch);
      NG_RETURN_IF_ERROR(named(i, rows.status()));
      NG_RETURN_IF_ERROR(named(i, stream_.Copy(io.tensor(i), *rows)));
      if (batch < bucket) {
        absl::StatusOr<Tensor> pad = s.Narrow(0, batch, bucket - batch);
        NG_RETURN_IF_ERROR(named(i, pad.status()));
        NG_RETURN_IF_ERROR(named(i, stream_.Zero(*pad)));
      }
    }
    return absl::OkStatus();
  };
  NG_RETURN_IF_ERROR(entry.graph->Replay(write_inputs));
  for (size_t i = 0; i < io.size(); ++i) {
    if (io.spec(i).role != StepRole::kOutput) continue;
    absl::StatusOr<Tensor> rows = statics.tensor(i).Narrow(0, 0, batch);
    NG_RETURN_IF_ERROR(named(i, rows.status()));
    NG_RETURN_IF_ERROR(named(i, stream_.Copy(*rows, io.tensor(i))));
  }
  return absl::OkStatus();
}

void BucketedGraphs::set_policy(ReplayPolicy policy) {
  for (auto& [bucket, entry] : entries_) entry.graph->set_policy(policy);
}

void BucketedGraphs::Invalidate() {
  for (auto& [bucket, entry] : entries_) entry.graph->Invalidate();
}

absl::Status BucketedGraphs::Recapture() {
  for (auto& [bucket, entry] : entries_) {
    NG_RETURN_IF_ERROR(entry.graph->Recapture());
  }
  return absl::OkStatus();
}

GraphStats BucketedGraphs::TotalStats() const {
  GraphStats total;
  for (const auto& [bucket, entry] : entries_) total.Add(entry.graph->stats());
  return total;
}

}  // namespace normgraph
