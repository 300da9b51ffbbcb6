// A checked replay allocates nothing once warm: the identity check, the replay
// of the recorded launches and the bucket's input/output copies all run on
// memory allocated at capture.

#include <atomic>
#include <cstdlib>
#include <new>

#include "core/cpu_stream.h"
#include "core/step_buffers.h"
#include "core/tensor_util.h"
#include "graph/bucketed_graphs.h"
#include "gtest/gtest.h"
#include "layers/qwen3_5_norm_stack.h"

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace normgraph {
namespace {

TEST(ReplayAllocationTest, WarmCheckedReplayAllocatesNothing) {
  Qwen35NormStackConfig c;
  c.num_hidden_layers = 4;
  c.hidden_size = 64;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 16;
  c.linear_num_value_heads = 2;
  c.linear_value_head_dim = 16;
  auto model = *Qwen35NormStack::Create(c);
  CpuStream stream;
  StepFunction step;
  step.specs = [&](int64_t batch) { return model->StepSpecs(batch); };
  step.forward = [&](Stream& s, const StepBuffers& b) {
    return model->Forward(s, b);
  };
  step.owners = {model.get()};
  auto graphs =
      *BucketedGraphs::Create("decode", stream, step, {4}, {}, CpuAllocator());
  auto io = *StepBuffers::Create("io", model->StepSpecs(3), CpuAllocator());
  for (size_t i = 0; i < io->size(); ++i) {
    ASSERT_TRUE(FillNormal(io->tensor(i), i, 0.0f, 1.0f).ok());
  }
  ASSERT_TRUE(graphs->Run(*io).ok());  // warm-up

  counting = true;
  const absl::Status replayed = graphs->graph(4).Replay();
  const absl::Status ran = graphs->Run(*io);
  counting = false;
  ASSERT_TRUE(replayed.ok()) << replayed;
  ASSERT_TRUE(ran.ok()) << ran;
  EXPECT_EQ(allocations.load(), 0);
  EXPECT_EQ(graphs->TotalStats().checks, 3);
}

}  // namespace
}  // namespace normgraph
