#ifndef NORMGRAPH_CORE_ERRNO_STATUS_H_
#define NORMGRAPH_CORE_ERRNO_STATUS_H_

// A failed file operation as the status its cause calls for.

#include <cerrno>
#include <string>
#include <utility>

#include "absl/status/status.h"

namespace normgraph {

// `err` (an errno value) with `message`: a missing file, or a directory on
// its way, is NotFound; one the process may not read, PermissionDenied;
// anything else (too many open files, an I/O error, ...) Unavailable.
inline absl::Status ErrnoStatus(int err, std::string message) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(std::move(message));
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(std::move(message));
    default:
      return absl::UnavailableError(std::move(message));
  }
}

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_ERRNO_STATUS_H_
