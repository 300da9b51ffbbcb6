#include "core/errno_status.h"

#include <cerrno>

#include "gtest/gtest.h"

namespace normgraph {
namespace {

TEST(ErrnoStatusTest, MapsTheCauseToTheCode) {
  EXPECT_EQ(ErrnoStatus(ENOENT, "m").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrnoStatus(ENOTDIR, "m").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrnoStatus(EACCES, "m").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoStatus(EPERM, "m").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoStatus(EMFILE, "m").code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ErrnoStatus(EIO, "read failed").message(), "read failed");
}

}  // namespace
}  // namespace normgraph
