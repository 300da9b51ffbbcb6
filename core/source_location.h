#ifndef NORMGRAPH_CORE_SOURCE_LOCATION_H_
#define NORMGRAPH_CORE_SOURCE_LOCATION_H_

// Where in the source an API call was made, captured by default arguments. Used
// to say which line moved a buffer when a graph replay is refused. (Abseil
// 20220623 has no public SourceLocation.)

#include <string>

#include "absl/strings/str_cat.h"

namespace normgraph {

class SourceLocation {
 public:
  constexpr SourceLocation() = default;

  // `SourceLocation::Current()` as a default argument records the caller's file
  // and line.
  static constexpr SourceLocation Current(const char* file = __builtin_FILE(),
                                          int line = __builtin_LINE()) {
    return SourceLocation(file, line);
  }

  bool known() const { return file_ != nullptr; }
  const char* file() const { return file_ != nullptr ? file_ : "<unknown>"; }
  int line() const { return line_; }
  std::string ToString() const { return absl::StrCat(file(), ":", line_); }

 private:
  constexpr SourceLocation(const char* file, int line)
      : file_(file), line_(line) {}
  const char* file_ = nullptr;
  int line_ = 0;
};

}  // namespace normgraph

#endif  // NORMGRAPH_CORE_SOURCE_LOCATION_H_
