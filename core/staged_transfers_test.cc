#include "core/staged_transfers.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace normgraph {
namespace {

using Kind = StagedTransfers::Kind;

// Device addresses are only compared, never dereferenced.
const void* At(uintptr_t address) {
  return reinterpret_cast<const void*>(address);
}

TEST(StagedTransfersTest, AnswersRangesInsideARecordWithTheirArenaOffset) {
  StagedTransfers t;
  t.Add(At(0x1000), 256, 64, Kind::kWritten);
  const auto whole = t.Find(At(0x1000), 256);
  ASSERT_TRUE(whole.has_value());
  EXPECT_EQ(whole->arena_offset, 64u);
  EXPECT_EQ(whole->kind, Kind::kWritten);
  const auto inner = t.Find(At(0x1010), 32);
  ASSERT_TRUE(inner.has_value());
  EXPECT_EQ(inner->arena_offset, 64u + 0x10);
}

TEST(StagedTransfersTest, RangesReachingOutsideEveryRecordAreNotAnswered) {
  StagedTransfers t;
  t.Add(At(0x1000), 256, 0, Kind::kWritten);
  EXPECT_FALSE(t.Find(At(0x0FFF), 2).has_value());   // starts before
  EXPECT_FALSE(t.Find(At(0x10FF), 2).has_value());   // ends after
  EXPECT_FALSE(t.Find(At(0x2000), 16).has_value());  // elsewhere
  EXPECT_TRUE(t.Find(At(0x10FF), 1).has_value());    // the last byte
}

TEST(StagedTransfersTest, TheNewestRecordOfARangeAnswers) {
  StagedTransfers t;
  t.Add(At(0x1000), 256, 0, Kind::kFetched);
  t.Add(At(0x1000), 256, 512, Kind::kWritten);
  const auto hit = t.Find(At(0x1000), 256);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->arena_offset, 512u);
  EXPECT_EQ(hit->kind, Kind::kWritten);
}

TEST(StagedTransfersTest, APartialOverwriteHidesTheOlderRecord) {
  StagedTransfers t;
  t.Add(At(0x1000), 256, 0, Kind::kWritten);
  t.Add(At(0x1080), 16, 512, Kind::kWritten);  // overwrites bytes 128-143
  // The whole range mixes both copies: neither record holds it.
  EXPECT_FALSE(t.Find(At(0x1000), 256).has_value());
  // The part the newer copy wrote is its bytes; a part it did not touch is
  // still the older record's.
  const auto newer = t.Find(At(0x1080), 16);
  ASSERT_TRUE(newer.has_value());
  EXPECT_EQ(newer->arena_offset, 512u);
  const auto untouched = t.Find(At(0x1000), 128);
  ASSERT_TRUE(untouched.has_value());
  EXPECT_EQ(untouched->arena_offset, 0u);
}

TEST(StagedTransfersTest, ClearForgetsEverything) {
  StagedTransfers t;
  t.Add(At(0x1000), 256, 0, Kind::kWritten);
  t.Add(At(0x3000), 0, 0, Kind::kWritten);  // empty copies are not recorded
  EXPECT_FALSE(t.empty());
  t.Clear();
  EXPECT_TRUE(t.empty());
  EXPECT_FALSE(t.Find(At(0x1000), 256).has_value());
}

}  // namespace
}  // namespace normgraph
