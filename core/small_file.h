#ifndef NORMGRAPH_CORE_SMALL_FILE_H_
#define NORMGRAPH_CORE_SMALL_FILE_H_

// Reading a small text file whole (a config.json, a checkpoint index), as
// untrusted input.

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace normgraph {

// The bytes of the regular file at `path`, which may hold at most
// `max_bytes`. Anything else in its place (a directory, a FIFO, a device, a
// socket) is refused without blocking on it. Errors start with
// "<what> <path>: ": a missing file is NotFound (core/errno_status.h), one of
// another kind or too large InvalidArgument, a short read DataLoss.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          size_t max_bytes,
                                          absl::string_view what);

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_SMALL_FILE_H_
