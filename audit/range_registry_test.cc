#include "audit/range_registry.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace normgraph::audit {
namespace {

std::vector<uint64_t> Ids(const RangeRegistry& registry, uint64_t address) {
  std::vector<RangeMatch> matches;
  registry.Find(address, &matches);
  std::vector<uint64_t> ids;
  for (const RangeMatch& m : matches) ids.push_back(m.id);
  return ids;
}

TEST(RangeRegistryTest, FindsTheRangeHoldingAnAddressWithItsOffset) {
  RangeRegistry registry;
  ASSERT_TRUE(registry.Add(7, 0x1000, 0x100).ok());
  ASSERT_TRUE(registry.Add(8, 0x2000, 0x10).ok());
  std::vector<RangeMatch> matches;
  registry.Find(0x1040, &matches);
  ASSERT_EQ(matches.size(), 1u);
  EXPECT_EQ(matches[0].id, 7u);
  EXPECT_EQ(matches[0].offset, 0x40u);
  EXPECT_EQ(Ids(registry, 0x1000), std::vector<uint64_t>{7});
  EXPECT_EQ(Ids(registry, 0x10ff), std::vector<uint64_t>{7});
  EXPECT_TRUE(Ids(registry, 0x1100).empty()) << "the end is exclusive";
  EXPECT_TRUE(Ids(registry, 0xfff).empty());
  EXPECT_EQ(Ids(registry, 0x200f), std::vector<uint64_t>{8});
  EXPECT_TRUE(Ids(registry, 0x2010).empty());
  EXPECT_TRUE(Ids(registry, 0).empty());
  EXPECT_TRUE(Ids(registry, UINT64_MAX).empty());
}

TEST(RangeRegistryTest, OverlappingRangesAllMatch) {
  RangeRegistry registry;
  // A buffer, a view of its second half, and a huge range covering both.
  ASSERT_TRUE(registry.Add(1, 0x1000, 0x100).ok());
  ASSERT_TRUE(registry.Add(2, 0x1080, 0x80).ok());
  ASSERT_TRUE(registry.Add(3, 0x0, 0x100000).ok());
  ASSERT_TRUE(registry.Add(4, 0x5000, 0x10).ok());
  EXPECT_EQ(Ids(registry, 0x1090), (std::vector<uint64_t>{3, 1, 2}));
  EXPECT_EQ(Ids(registry, 0x1010), (std::vector<uint64_t>{3, 1}));
  EXPECT_EQ(Ids(registry, 0x5008), (std::vector<uint64_t>{3, 4}));
  EXPECT_EQ(Ids(registry, 0x9000), (std::vector<uint64_t>{3}));
  EXPECT_TRUE(Ids(registry, 0x100000).empty());
}

TEST(RangeRegistryTest, AgreesWithABruteForceSearch) {
  RangeRegistry registry;
  struct R {
    uint64_t start, bytes;
  };
  std::vector<R> ranges;
  uint64_t state = 12345;
  auto next = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 33;
  };
  for (uint64_t id = 0; id < 300; ++id) {
    const R r{(next() % 100000) * 8, 1 + next() % 3000};
    ranges.push_back(r);
    ASSERT_TRUE(registry.Add(id, r.start, r.bytes).ok());
  }
  for (int probe = 0; probe < 5000; ++probe) {
    const uint64_t address = next() % 810000;
    std::vector<uint64_t> expected;
    for (uint64_t id = 0; id < ranges.size(); ++id) {
      if (address >= ranges[id].start &&
          address < ranges[id].start + ranges[id].bytes) {
        expected.push_back(id);
      }
    }
    std::vector<uint64_t> got = Ids(registry, address);
    std::sort(got.begin(), got.end());
    ASSERT_EQ(got, expected) << "address " << address;
  }
}

TEST(RangeRegistryTest, RefusesEmptyWrappingAndDuplicateRanges) {
  RangeRegistry registry;
  EXPECT_EQ(registry.Add(1, 0x1000, 0).code(), NGAUDIT_INVALID_ARGUMENT);
  const Status wrap = registry.Add(2, UINT64_MAX - 4, 8);
  EXPECT_EQ(wrap.code(), NGAUDIT_INVALID_ARGUMENT);
  EXPECT_NE(wrap.message().find("wraps"), std::string::npos);
  ASSERT_TRUE(registry.Add(3, 0x1000, 8).ok());
  const Status duplicate = registry.Add(3, 0x2000, 8);
  EXPECT_EQ(duplicate.code(), NGAUDIT_INVALID_ARGUMENT);
  EXPECT_NE(duplicate.message().find("already registered"), std::string::npos);
  EXPECT_EQ(registry.size(), 1u);
}

TEST(RangeRegistryTest, ClearForgetsEverythingAndIdsCanBeReused) {
  RangeRegistry registry;
  ASSERT_TRUE(registry.Add(1, 0x1000, 8).ok());
  EXPECT_EQ(Ids(registry, 0x1000), std::vector<uint64_t>{1});
  registry.Clear();
  EXPECT_EQ(registry.size(), 0u);
  EXPECT_TRUE(Ids(registry, 0x1000).empty());
  ASSERT_TRUE(registry.Add(1, 0x3000, 8).ok());
  EXPECT_EQ(Ids(registry, 0x3004), std::vector<uint64_t>{1});
}

}  // namespace
}  // namespace normgraph::audit
