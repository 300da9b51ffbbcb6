#include "core/small_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/errno_status.h"

namespace normgraph {

absl::StatusOr<std::string> ReadSmallFile(const std::string& path,
                                          size_t max_bytes,
                                          absl::string_view what) {
  const std::string where = absl::StrCat(what, " ", path, ": ");
  // O_NONBLOCK: a FIFO in the file's place must not block the open (it is
  // refused below, as anything but a regular file is).
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    return ErrnoStatus(
        err,
        absl::StrCat(where, "cannot open for reading: ", std::strerror(err)));
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoStatus(err, absl::StrCat(where, "fstat: ", std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(
        where, "not a regular file (",
        S_ISDIR(st.st_mode) ? "a directory" : "a device, FIFO or socket", ")"));
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(where, st.st_size, " bytes, more than the ", max_bytes,
                     " bytes such a file may have"));
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::read(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  if (done != text.size()) {
    return absl::DataLossError(absl::StrCat(where, "short read (", done, " of ",
                                            text.size(), " bytes)"));
  }
  return text;
}

}  // namespace normgraph
