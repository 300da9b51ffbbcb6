// A checked replay allocates nothing once warm, on every backend: the identity
// check, the replay of the recorded launches (the CPU backend's loop over them,
// or one cudaGraphLaunch) and the bucket's input/output copies all run on
// memory allocated at capture. Counted: host allocations through operator new
// (all of normgraph's host-side path), and device allocations through the
// allocator the model, the graphs' static buffers and the step buffers draw
// from. Not counted: whatever the CUDA runtime and driver allocate internally
// with malloc (they do not use operator new).

#include <atomic>
#include <cstdlib>
#include <new>

#include "core/step_buffers.h"
#include "core/tensor_util.h"
#include "core/testing/backends.h"
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

// Forwards to the device's allocator, counting the allocations made while
// `counting` is on.
class CountingAllocator final : public Allocator {
 public:
  explicit CountingAllocator(Allocator& base) : base_(base) {}
  Device device() const override { return base_.device(); }
  absl::StatusOr<void*> AllocateRaw(size_t bytes) override {
    if (counting.load(std::memory_order_relaxed))
      device_allocations_.fetch_add(1);
    return base_.AllocateRaw(bytes);
  }
  void FreeRaw(void* ptr, size_t bytes) override { base_.FreeRaw(ptr, bytes); }
  long device_allocations() const { return device_allocations_.load(); }

 private:
  Allocator& base_;
  std::atomic<long> device_allocations_{0};
};

class ReplayAllocationTest : public BackendTest {};

TEST_P(ReplayAllocationTest, WarmCheckedReplayAllocatesNothing) {
  // Declared first: it outlives every storage allocated from it.
  CountingAllocator device_memory(allocator());
  Qwen35NormStackConfig c;
  c.num_hidden_layers = 4;
  c.hidden_size = 64;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 16;
  c.linear_num_value_heads = 2;
  c.linear_value_head_dim = 16;
  c.allocator = &device_memory;
  auto model = *Qwen35NormStack::Create(c);
  StepFunction step;
  step.specs = [&](int64_t batch) { return model->StepSpecs(batch); };
  step.forward = [&](Stream& s, const StepBuffers& b) {
    return model->Forward(s, b);
  };
  step.owners = {model.get()};
  auto graphs =
      *BucketedGraphs::Create("decode", stream(), step, {4}, {}, device_memory);
  auto io = *StepBuffers::Create("io", model->StepSpecs(3), device_memory);
  for (size_t i = 0; i < io->size(); ++i) {
    ASSERT_TRUE(FillNormal(io->tensor(i), i, 0.0f, 1.0f).ok());
  }
  ASSERT_TRUE(graphs->Run(*io).ok());  // warm-up
  ASSERT_TRUE(stream().Synchronize().ok());
  const Tensor warm_out = *ToHost(*io->Get("out"));

  allocations = 0;
  counting = true;
  const absl::Status replayed = graphs->graph(4).Replay();
  const absl::Status ran = graphs->Run(*io);
  const absl::Status synced = stream().Synchronize();
  counting = false;
  ASSERT_TRUE(replayed.ok()) << replayed;
  ASSERT_TRUE(ran.ok()) << ran;
  ASSERT_TRUE(synced.ok()) << synced;
  EXPECT_EQ(allocations.load(), 0);
  EXPECT_EQ(device_memory.device_allocations(), 0);
  EXPECT_EQ(graphs->TotalStats().checks, 3);
  // The warm replays did run: the same inputs gave the same outputs.
  EXPECT_TRUE(BitwiseEqual(*io->Get("out"), warm_out));
}

NG_INSTANTIATE_BACKEND_TEST(ReplayAllocationTest);

}  // namespace
}  // namespace normgraph
