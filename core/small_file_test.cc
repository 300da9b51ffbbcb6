#include "core/small_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace normgraph {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/small_file_test_", name);
}

TEST(SmallFileTest, ReadsARegularFileWhole) {
  const std::string path = TempPath("config.json");
  std::ofstream(path, std::ios::binary) << std::string("{\"a\":\0}", 7);
  absl::StatusOr<std::string> text = ReadSmallFile(path, 64, "config");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, std::string("{\"a\":\0}", 7));
  absl::StatusOr<std::string> small = ReadSmallFile(path, 6, "config");
  EXPECT_EQ(small.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(small.status().message(),
              HasSubstr(absl::StrCat("config ", path, ": 7 bytes, more than")));
}

TEST(SmallFileTest, AMissingFileIsNotFound) {
  absl::StatusOr<std::string> text =
      ReadSmallFile("/nonexistent/index.json", 64, "checkpoint index");
  EXPECT_EQ(text.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(text.status().message(),
              HasSubstr("checkpoint index /nonexistent/index.json: "));
}

// A FIFO in a config's place (nothing writing it) would block a plain open
// for ever: refused at once, as a directory is.
TEST(SmallFileTest, AFifoOrADirectoryIsRefusedWithoutBlocking) {
  const std::string fifo = TempPath("fifo");
  std::remove(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  absl::StatusOr<std::string> text = ReadSmallFile(fifo, 64, "config");
  EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(text.status().message(), HasSubstr("not a regular file"));
  const std::string dir = TempPath("dir");
  ::mkdir(dir.c_str(), 0700);
  text = ReadSmallFile(dir, 64, "config");
  EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(text.status().message(), HasSubstr("a directory"));
}

}  // namespace
}  // namespace normgraph
