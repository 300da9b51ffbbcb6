#include "core/tensor.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "core/storage.h"
#include "core/tensor_slot.h"
#include "core/tensor_util.h"
#include "core/testing/backends.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace normgraph {
namespace {

using ::testing::HasSubstr;

// Storage and the host-side helpers on every backend (core/testing/backends.h).
class DeviceTensorTest : public BackendTest {};

TEST_P(DeviceTensorTest, StorageIdsAreUniqueEvenWhenTheAddressIsReused) {
  auto a = Storage::Allocate(allocator(), 4096);
  ASSERT_TRUE(a.ok());
  const uint64_t first_id = (*a)->id();
  void* const first_address = (*a)->data();
  EXPECT_TRUE(StorageIsLive(first_id));
  a->reset();  // free: the caching allocator keeps the block
  EXPECT_FALSE(StorageIsLive(first_id));
  auto b = Storage::Allocate(allocator(), 4096);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->data(), first_address)
      << "caching allocator hands the block out again";
  EXPECT_NE((*b)->id(), first_id) << "but it is a different storage";
  EXPECT_GT((*b)->id(), first_id);
}

TEST_P(DeviceTensorTest, WriteVersionCountsApiWrites) {
  Tensor t = Empty({4}, DType::kF32);
  const uint64_t v0 = t.storage()->write_version();
  ASSERT_TRUE(Fill(t, 1.0f).ok());
  ASSERT_TRUE(Poison(t).ok());
  EXPECT_EQ(t.storage()->write_version(), v0 + 2);
}

TEST(TensorTest, ViewsAndIdentity) {
  Tensor t = *Tensor::Empty(CpuAllocator(), {4, 8}, DType::kBF16);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.span_bytes(), 64u);
  absl::StatusOr<Tensor> rows = t.Narrow(0, 1, 2);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->offset_bytes(), 16u);
  EXPECT_EQ(rows->data(), static_cast<char*>(t.data()) + 16);
  EXPECT_EQ(rows->storage()->id(), t.storage()->id());
  // Same storage, different offset: a different identity (the "re-sliced view"
  // case).
  absl::StatusOr<Tensor> shifted = t.Narrow(0, 2, 2);
  ASSERT_TRUE(shifted.ok());
  EXPECT_NE(rows->Identity(), shifted->Identity());
  EXPECT_TRUE(rows->Identity().SameLayout(shifted->Identity()));
  EXPECT_EQ(rows->Identity(), t.Narrow(0, 1, 2)->Identity());

  absl::StatusOr<Tensor> cols = t.Narrow(1, 0, 3);
  ASSERT_TRUE(cols.ok());
  EXPECT_FALSE(cols->is_contiguous());
  EXPECT_FALSE(cols->Reshape({12}).ok());
  EXPECT_TRUE(t.Reshape({32})->is_contiguous());
  EXPECT_FALSE(t.Reshape({31}).ok());
  EXPECT_FALSE(t.Narrow(0, 3, 2).ok());
  EXPECT_FALSE(t.Narrow(2, 0, 1).ok());
}

// An empty tensor's columns narrow like anyone's (torch's
// empty(0, 8).narrow(1, 2, 4) is 0 x 4): the view stays at its start, which
// its storage of no bytes holds.
TEST(TensorTest, AnEmptyTensorNarrowsAlongItsOtherDimensions) {
  Tensor t = *Tensor::Empty(CpuAllocator(), {0, 8}, DType::kF32);
  absl::StatusOr<Tensor> cols = t.Narrow(1, 2, 4);
  ASSERT_TRUE(cols.ok()) << cols.status();
  EXPECT_EQ(cols->shape(), Shape({0, 4}));
  EXPECT_EQ(cols->numel(), 0);
  EXPECT_EQ(cols->offset_bytes(), t.offset_bytes());
  EXPECT_FALSE(t.Narrow(1, 6, 4).ok());  // still inside the dimension
}

TEST(TensorTest, ViewsMustStayInsideTheStorage) {
  auto storage = *Storage::Allocate(CpuAllocator(), 16);
  EXPECT_TRUE(Tensor::FromStorage(storage, 8, {2}, {1}, DType::kF32).ok());
  absl::Status past =
      Tensor::FromStorage(storage, 12, {2}, {1}, DType::kF32).status();
  EXPECT_EQ(past.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(past.message(), HasSubstr("past the end"));
  EXPECT_FALSE(Tensor::FromStorage(storage, 0, {2, 2}, {1}, DType::kF32).ok());
  EXPECT_FALSE(Tensor::FromStorage(storage, 0, {-1}, {1}, DType::kF32).ok());
  EXPECT_FALSE(Tensor::Empty(CpuAllocator(), {INT64_MAX, 4}, DType::kF32).ok());
}

// Sizes whose byte counts wrap around 2^64 are refused, not turned into a few
// bytes that every view then "fits" in.
TEST(TensorTest, SizesThatOverflowAreRefused) {
  absl::StatusOr<std::shared_ptr<Storage>> huge =
      Storage::Allocate(CpuAllocator(), SIZE_MAX - 3);
  ASSERT_FALSE(huge.ok()) << (*huge)->DebugString();
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted);
  absl::StatusOr<Tensor> empty =
      Tensor::Empty(CpuAllocator(), {int64_t{1} << 62}, DType::kF32);
  ASSERT_FALSE(empty.ok()) << empty->DebugString();
  EXPECT_THAT(empty.status().message(), HasSubstr("needs more bytes"));
  auto storage = *Storage::Allocate(CpuAllocator(), 64);
  absl::Status span =
      Tensor::FromStorage(storage, 0, {3}, {int64_t{1} << 61}, DType::kF32)
          .status();
  EXPECT_EQ(span.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(span.message(), HasSubstr("more bytes than an address space"));
  EXPECT_FALSE(Tensor::FromStorage(storage, 0, {2, 3},
                                   {INT64_MAX / 2, INT64_MAX / 2}, DType::kF32)
                   .ok());
  // A zero-size view may have any strides.
  EXPECT_TRUE(
      Tensor::FromStorage(storage, 0, {0, 3}, {INT64_MAX, 1}, DType::kF32)
          .ok());
}

// An empty narrow at the end of a strided dimension is a valid (empty) view.
TEST(TensorTest, EmptyNarrowAtTheEndOfAStridedDimension) {
  auto storage = *Storage::Allocate(CpuAllocator(), 20);
  Tensor t = *Tensor::FromStorage(storage, 0, {2}, {4}, DType::kF32);
  absl::StatusOr<Tensor> empty = t.Narrow(0, 2, 0);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->numel(), 0);
  EXPECT_FALSE(t.Narrow(0, 2, 1).ok());
}

TEST_P(DeviceTensorTest, CopyConvertsWithRoundToNearestEven) {
  const std::vector<float> src = {
      1.0f + 0x1.0p-8f,  // bf16 tie: rounds to even (1.0)
      1.0f + 0x3.0p-8f,  // tie: rounds up to even
      -2.5f};
  Tensor dst = FromFloats({3}, DType::kBF16, src);
  Tensor host = *ToHost(dst);
  EXPECT_EQ(host.data_as<uint16_t>()[0], 0x3F80);
  EXPECT_EQ(host.data_as<uint16_t>()[1], 0x3F82);
  EXPECT_EQ(host.data_as<uint16_t>()[2], 0xC020);
  Tensor wrong = Empty({4}, DType::kBF16);
  EXPECT_FALSE(CopyInto(HostView{src.data(), DType::kF32, {3}}, wrong).ok());
}

TEST_P(DeviceTensorTest, PoisonIsNanInEveryDtype) {
  for (DType d : {DType::kF32, DType::kBF16, DType::kF16}) {
    Tensor t = Empty({5}, d);
    ASSERT_TRUE(Poison(t).ok());
    const std::vector<float> values = ToFloats(t);
    ASSERT_EQ(values.size(), 5u);
    for (float f : values) EXPECT_TRUE(std::isnan(f)) << DTypeName(d);
  }
}

TEST_P(DeviceTensorTest, BitwiseEqualComparesBytesDtypeAndShape) {
  Tensor a = Random({6}, DType::kF16, 1);
  Tensor b = *Clone(a);
  EXPECT_EQ(b.storage()->device(), device()) << "Clone stays on the device";
  EXPECT_NE(b.storage()->id(), a.storage()->id());
  EXPECT_TRUE(BitwiseEqual(a, b));
  Tensor flipped = *ToHost(b);
  flipped.data_as<uint16_t>()[5] ^= 1;
  ASSERT_TRUE(CopyInto(ViewOf(flipped), b).ok());
  EXPECT_FALSE(BitwiseEqual(a, b));
  EXPECT_FALSE(BitwiseEqual(a, *a.Reshape({2, 3})));
  // Across devices: the same bytes compare equal wherever they live.
  EXPECT_TRUE(BitwiseEqual(a, *ToHost(a)));
}

TEST_P(DeviceTensorTest, FillNormalGivesTheSameValuesOnEveryDevice) {
  Tensor here = Random({257}, DType::kBF16, 42, 0.5f, 2.0f);
  Tensor cpu = *Tensor::Empty(CpuAllocator(), {257}, DType::kBF16);
  ASSERT_TRUE(FillNormal(cpu, 42, 0.5f, 2.0f).ok());
  EXPECT_TRUE(BitwiseEqual(here, cpu));
}

NG_INSTANTIATE_BACKEND_TEST(DeviceTensorTest);

// A source re-pointed to another view of the same storage (a tied or packed
// neighbour) keeps its storage id and write version, not its values: the
// derived slot is stale. (Found by the graph replay fuzzer.)
TEST(TensorSlotTest, SourceMovedWithinItsStorageMakesTheDerivedSlotStale) {
  auto storage = *Storage::Allocate(CpuAllocator(), 64);
  Tensor first = *Tensor::FromStorage(storage, 0, {4}, {1}, DType::kF32);
  Tensor second = *Tensor::FromStorage(storage, 16, {4}, {1}, DType::kF32);
  TensorSlot source(SlotKind::kParameter, first);
  TensorSlot derived(SlotKind::kBuffer,
                     *Tensor::Empty(CpuAllocator(), {4}, DType::kF32));
  derived.DeriveFrom(&source, [] { return absl::OkStatus(); });
  derived.MarkRefreshed();
  EXPECT_FALSE(derived.IsStale());
  source.Rebind(second);
  EXPECT_TRUE(derived.IsStale());
  EXPECT_THAT(derived.StaleReason(), HasSubstr("last refreshed from"));
  derived.MarkRefreshed();
  EXPECT_FALSE(derived.IsStale());
}

// A derived slot re-pointed to another view of its own storage (which its
// refresh never wrote) is stale, like one moved to another storage.
TEST(TensorSlotTest, DerivedSlotMovedWithinItsOwnStorageIsStale) {
  auto storage = *Storage::Allocate(CpuAllocator(), 64);
  TensorSlot source(SlotKind::kParameter,
                    *Tensor::Empty(CpuAllocator(), {4}, DType::kF32));
  TensorSlot derived(SlotKind::kBuffer,
                     *Tensor::FromStorage(storage, 0, {4}, {1}, DType::kF32));
  derived.DeriveFrom(&source, [] { return absl::OkStatus(); });
  derived.MarkRefreshed();
  EXPECT_FALSE(derived.IsStale());
  derived.Rebind(*Tensor::FromStorage(storage, 16, {4}, {1}, DType::kF32));
  EXPECT_TRUE(derived.IsStale());
  EXPECT_THAT(derived.StaleReason(), HasSubstr("not refreshed since"));
  derived.MarkRefreshed();
  EXPECT_FALSE(derived.IsStale());
}

// Derived buffers packed into one storage with their sources (views of one
// arena, as engines build for stacked norms): a refresh's writes
// (RefreshWrites) leave the other derived buffers and the sources there as
// they were, so refreshing them all converges; any other write to the storage
// makes every derived buffer in it stale (staleness has no byte ranges).
TEST(TensorSlotTest, RefreshesInOneStorageLeaveTheOtherDerivedSlotsFresh) {
  auto arena = *Storage::Allocate(CpuAllocator(), 96);
  auto view = [&](size_t offset) {
    return *Tensor::FromStorage(arena, offset, {4}, {1}, DType::kF32);
  };
  TensorSlot source_a(SlotKind::kParameter, view(0));
  TensorSlot source_b(SlotKind::kParameter, view(16));
  TensorSlot derived_a(SlotKind::kBuffer, view(32));
  TensorSlot derived_b(SlotKind::kBuffer, view(48));
  auto derive = [](TensorSlot& derived, TensorSlot& source) {
    derived.DeriveFrom(&source, [&derived, &source]() -> absl::Status {
      absl::Status copied =  // "1 + w"
          CopyInto(ViewOf(*ToHost(source.tensor())), derived.tensor());
      if (copied.ok()) derived.MarkRefreshed();
      return copied;
    });
  };
  derive(derived_a, source_a);
  derive(derived_b, source_b);
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(derived_a.Refresh().ok());
    ASSERT_TRUE(derived_b.Refresh().ok());
    EXPECT_FALSE(derived_a.IsStale()) << derived_a.StaleReason();
    EXPECT_FALSE(derived_b.IsStale()) << derived_b.StaleReason();
  }
  // A load into source_a (not a refresh): both derived slots go stale, as
  // their storage was written; each refresh then leaves the other fresh.
  const uint64_t version = arena->write_version();
  ASSERT_TRUE(Fill(source_a.tensor(), 2.0f).ok());
  EXPECT_EQ(arena->write_version(), version + 1);
  EXPECT_TRUE(derived_a.IsStale());
  EXPECT_TRUE(derived_b.IsStale());
  ASSERT_TRUE(derived_a.Refresh().ok());
  ASSERT_TRUE(derived_b.Refresh().ok());
  EXPECT_FALSE(derived_a.IsStale()) << derived_a.StaleReason();
  EXPECT_FALSE(derived_b.IsStale()) << derived_b.StaleReason();
  EXPECT_EQ(arena->write_version(), version + 3);  // refreshes still count
  // Written other than by a refresh, a derived buffer is stale (and so is
  // everything derived from or into its storage).
  ASSERT_TRUE(Fill(derived_b.tensor(), 5.0f).ok());
  EXPECT_TRUE(derived_b.IsStale());
  EXPECT_TRUE(derived_a.IsStale());
  EXPECT_THAT(derived_b.StaleReason(), HasSubstr("after the last refresh"));
}

// A derived buffer that shares bytes with its source (rebound onto it, or a
// view overlapping it) is never refreshed: the refresh would overwrite the
// values it reads, and no write count would show it. Disjoint views of one
// storage, interleaved column slices included, refresh as usual.
TEST(TensorSlotTest, ARefreshOverItsOwnSourceIsRefused) {
  auto arena = *Storage::Allocate(CpuAllocator(), 32);  // f32 [2, 4]
  auto columns = [&](size_t first) {
    return *Tensor::FromStorage(arena, 4 * first, {2, 2}, {4, 1}, DType::kF32);
  };
  TensorSlot source(SlotKind::kParameter, columns(0));
  TensorSlot derived(SlotKind::kBuffer, columns(2));
  int refreshes = 0;
  derived.DeriveFrom(&source, [&]() -> absl::Status {
    ++refreshes;
    derived.MarkRefreshed();
    return absl::OkStatus();
  });
  ASSERT_TRUE(derived.Refresh().ok());
  EXPECT_EQ(refreshes, 1);
  for (const Tensor& overlapping :
       {source.tensor(), columns(1),
        *Tensor::FromStorage(arena, 4, {1}, {1}, DType::kF32),
        *Tensor::FromStorage(arena, 0, {8}, {1}, DType::kF32)}) {
    derived.Rebind(overlapping);
    absl::Status s = derived.Refresh();
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_THAT(s.message(), HasSubstr("shares bytes with its source"));
    EXPECT_EQ(refreshes, 1);
    EXPECT_TRUE(derived.IsStale());
  }
  derived.Rebind(*Tensor::FromStorage(arena, 8, {2, 1}, {4, 1}, DType::kF32));
  EXPECT_TRUE(derived.Refresh().ok());
  EXPECT_EQ(refreshes, 2);
}

TEST(TensorSlotTest, RebindRecordsTheCallersLine) {
  TensorSlot slot(SlotKind::kBuffer,
                  *Tensor::Empty(CpuAllocator(), {4}, DType::kF32));
  const uint64_t old_id = slot.tensor().storage()->id();
  EXPECT_EQ(slot.rebind_count(), 0);
  EXPECT_FALSE(slot.last_rebind().known());
  const int line = __LINE__ + 1;
  slot.Rebind(*Tensor::Empty(CpuAllocator(), {4}, DType::kF32));
  EXPECT_EQ(slot.rebind_count(), 1);
  EXPECT_NE(slot.tensor().storage()->id(), old_id);
  EXPECT_THAT(slot.last_rebind().file(), HasSubstr("tensor_test.cc"));
  EXPECT_EQ(slot.last_rebind().line(), line);
}

// A derived slot refreshed while it held no tensor records nothing of its
// own: a tensor it is given back afterwards (an offloaded buffer restored)
// holds values of the old source and is stale.
TEST(TensorSlotTest, ABufferRestoredAfterARefreshWithoutOneIsStale) {
  TensorSlot weight(SlotKind::kParameter,
                    *Tensor::Empty(CpuAllocator(), {4}, DType::kF32));
  const Tensor buffer = *Tensor::Empty(CpuAllocator(), {4}, DType::kF32);
  TensorSlot derived(SlotKind::kBuffer, buffer);
  derived.DeriveFrom(&weight, [&] {
    if (derived.tensor().defined()) {
      absl::Status copied =
          CopyInto(ViewOf(*ToHost(weight.tensor())), derived.tensor());
      if (!copied.ok()) return copied;
    }
    derived.MarkRefreshed();
    return absl::OkStatus();
  });
  ASSERT_TRUE(Fill(weight.tensor(), 1.0f).ok());
  ASSERT_TRUE(derived.Refresh().ok());
  derived.Rebind(Tensor());  // offloaded
  ASSERT_TRUE(Fill(weight.tensor(), 9.0f).ok());
  ASSERT_TRUE(derived.Refresh().ok());  // nothing to write
  derived.Rebind(buffer);               // restored: still 1s
  EXPECT_TRUE(derived.IsStale());
  ASSERT_TRUE(derived.Refresh().ok());
  EXPECT_FALSE(derived.IsStale());
  EXPECT_THAT(ToFloats(derived.tensor()), ::testing::Each(9.0f));
}

// A refresh's writes make no slot stale, so a buffer derived from a derived
// buffer would never go stale: such chains stop the process at DeriveFrom.
TEST(TensorSlotDeathTest, ChainsOfDerivedBuffersAreRefused) {
  auto slot = [] {
    return std::make_unique<TensorSlot>(
        SlotKind::kBuffer, *Tensor::Empty(CpuAllocator(), {4}, DType::kF32));
  };
  auto refresh = [] { return absl::OkStatus(); };
  auto w = slot(), d1 = slot(), d2 = slot(), d3 = slot();
  d1->DeriveFrom(w.get(), refresh);
  d1->DeriveFrom(w.get(), refresh);  // declaring it again is fine
  d3->DeriveFrom(w.get(), refresh);  // so is a second buffer from one source
  EXPECT_DEATH(d2->DeriveFrom(d1.get(), refresh),
               "source that is derived itself");
  EXPECT_DEATH(w->DeriveFrom(d2.get(), refresh),
               "while another slot derives from this one");
  EXPECT_DEATH(d2->DeriveFrom(d2.get(), refresh), "with itself");
}

TEST(TensorSlotTest, DerivedSlotGoesStaleWhenItsSourceChanges) {
  TensorSlot weight(SlotKind::kParameter,
                    *Tensor::Empty(CpuAllocator(), {4}, DType::kBF16));
  TensorSlot derived(SlotKind::kBuffer,
                     *Tensor::Empty(CpuAllocator(), {4}, DType::kF32));
  int refreshes = 0;
  derived.DeriveFrom(&weight, [&] {
    ++refreshes;
    derived.MarkRefreshed();
    return absl::OkStatus();
  });
  ASSERT_TRUE(derived.Refresh().ok());
  EXPECT_FALSE(derived.IsStale());
  EXPECT_EQ(derived.StaleReason(), "");

  ASSERT_TRUE(
      Fill(weight.tensor(), 2.0f).ok());  // in-place write of the source
  EXPECT_TRUE(derived.IsStale());
  EXPECT_THAT(derived.StaleReason(), HasSubstr("after the last refresh"));
  ASSERT_TRUE(derived.Refresh().ok());
  EXPECT_FALSE(derived.IsStale());

  weight.Rebind(
      *Tensor::Empty(CpuAllocator(), {4}, DType::kBF16));  // source moved
  EXPECT_TRUE(derived.IsStale());
  EXPECT_THAT(derived.StaleReason(), HasSubstr("last refreshed from storage"));
  ASSERT_TRUE(derived.Refresh().ok());
  EXPECT_FALSE(derived.IsStale());
  EXPECT_EQ(refreshes, 3);

  TensorSlot plain(SlotKind::kBuffer,
                   *Tensor::Empty(CpuAllocator(), {1}, DType::kF32));
  EXPECT_FALSE(plain.IsStale());
  EXPECT_FALSE(plain.Refresh().ok());
}

}  // namespace
}  // namespace normgraph
