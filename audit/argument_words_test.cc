#include "audit/argument_words.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"

namespace normgraph::audit {
namespace {

// A kernel's parameters as a compiler lays them out:
//   (int n @0, const float* x @8, struct { float* a; int64 k; void* b; } @16,
//    float alpha @40, char tag @44, short s @46)
struct Args {
  int32_t n;
  int32_t pad0;
  uint64_t x;
  uint64_t a, k, b;
  float alpha;
  char tag;
  char pad1;
  int16_t s;
};

const std::vector<ParamLayout> kLayout = {{0, 4},  {8, 8},  {16, 24},
                                          {40, 4}, {44, 1}, {46, 2}};

Args MakeArgs() {
  Args args{};
  args.n = 1000;
  args.x = 0x7f0000001000;
  args.a = 0x7f0000002000;
  args.k = 42;
  args.b = 0x7f0000003000;
  args.alpha = 2.5f;
  args.tag = 'q';
  args.s = 9;
  return args;
}

void ExpectWords(const std::vector<ArgumentWord>& words) {
  ASSERT_EQ(words.size(), 4u);
  EXPECT_EQ(words[0].param_index, 1);
  EXPECT_EQ(words[0].word_offset, 8u);
  EXPECT_EQ(words[0].value, 0x7f0000001000u);
  EXPECT_EQ(words[1].param_index, 2);
  EXPECT_EQ(words[1].param_offset, 16u);
  EXPECT_EQ(words[1].word_offset, 16u);
  EXPECT_EQ(words[1].value, 0x7f0000002000u);
  EXPECT_EQ(words[2].word_offset, 24u);
  EXPECT_EQ(words[2].value, 42u);
  EXPECT_EQ(words[3].word_offset, 32u);
  EXPECT_EQ(words[3].value, 0x7f0000003000u);
}

TEST(ArgumentWordsTest, ReadsEveryAlignedWordFromPerParameterPointers) {
  const Args args = MakeArgs();
  const unsigned char* bytes = reinterpret_cast<const unsigned char*>(&args);
  std::vector<void*> per_param;
  for (const ParamLayout& p : kLayout) {
    per_param.push_back(const_cast<unsigned char*>(bytes + p.offset));
  }
  ArgumentValues values;
  values.per_param = per_param.data();
  std::vector<ArgumentWord> words;
  ASSERT_TRUE(ReadArgumentWords(kLayout, values, &words).ok());
  ExpectWords(words);
}

TEST(ArgumentWordsTest, ReadsEveryAlignedWordFromAPackedBuffer) {
  const Args args = MakeArgs();
  ArgumentValues values;
  values.buffer = &args;
  values.buffer_bytes = sizeof args;
  std::vector<ArgumentWord> words;
  ASSERT_TRUE(ReadArgumentWords(kLayout, values, &words).ok());
  ExpectWords(words);
}

TEST(ArgumentWordsTest, OnlyWholeAlignedWordsInsideAParameterCount) {
  // 12 bytes at offset 4: the word at 8 is inside, the one at 0 is not.
  unsigned char buffer[16];
  for (int i = 0; i < 16; ++i) buffer[i] = static_cast<unsigned char>(i);
  ArgumentValues values;
  values.buffer = buffer;
  values.buffer_bytes = sizeof buffer;
  std::vector<ArgumentWord> words;
  ASSERT_TRUE(ReadArgumentWords({{4, 12}}, values, &words).ok());
  ASSERT_EQ(words.size(), 1u);
  EXPECT_EQ(words[0].word_offset, 8u);
  uint64_t expected;
  std::memcpy(&expected, buffer + 8, 8);
  EXPECT_EQ(words[0].value, expected);
  words.clear();
  ASSERT_TRUE(ReadArgumentWords({{8, 7}}, values, &words).ok());
  EXPECT_TRUE(words.empty()) << "a 7-byte tail is no word";
}

TEST(ArgumentWordsTest, RefusesLayoutsBeyondTheBuffers) {
  unsigned char buffer[16] = {};
  ArgumentValues values;
  values.buffer = buffer;
  values.buffer_bytes = sizeof buffer;
  std::vector<ArgumentWord> words;
  EXPECT_EQ(ReadArgumentWords({{8, 16}}, values, &words).code(),
            NGAUDIT_INVALID_ARGUMENT);
  EXPECT_EQ(ReadArgumentWords({{kMaxArgumentBytes, 8}}, values, &words).code(),
            NGAUDIT_INVALID_ARGUMENT);
  EXPECT_EQ(ReadArgumentWords({{0, 8}}, ArgumentValues(), &words).code(),
            NGAUDIT_INVALID_ARGUMENT);
  EXPECT_TRUE(ReadArgumentWords({}, ArgumentValues(), &words).ok());
  EXPECT_TRUE(words.empty());
}

TEST(ArgumentWordsTest, ParsesTheExtraLaunchOptions) {
  unsigned char buffer[24] = {};
  size_t size = sizeof buffer;
  void* extra[] = {reinterpret_cast<void*>(kLaunchParamBufferPointer), buffer,
                   reinterpret_cast<void*>(kLaunchParamBufferSize), &size,
                   reinterpret_cast<void*>(kLaunchParamEnd)};
  ArgumentValues values;
  ASSERT_TRUE(ParseLaunchExtra(extra, &values).ok());
  EXPECT_EQ(values.buffer, buffer);
  EXPECT_EQ(values.buffer_bytes, sizeof buffer);
  EXPECT_EQ(values.per_param, nullptr);

  void* no_size[] = {reinterpret_cast<void*>(kLaunchParamBufferPointer), buffer,
                     reinterpret_cast<void*>(kLaunchParamEnd)};
  EXPECT_EQ(ParseLaunchExtra(no_size, &values).code(),
            NGAUDIT_INVALID_ARGUMENT);
  void* unknown[] = {reinterpret_cast<void*>(uintptr_t{0x77}), buffer,
                     reinterpret_cast<void*>(kLaunchParamEnd)};
  EXPECT_EQ(ParseLaunchExtra(unknown, &values).code(),
            NGAUDIT_INVALID_ARGUMENT);
}

}  // namespace
}  // namespace normgraph::audit
