#ifndef NORMGRAPH_AUDIT_STATUS_H_
#define NORMGRAPH_AUDIT_STATUS_H_

// The audit library's error type: an ngaudit_status code and a message that
// says what failed. The C API hands the code to the caller and keeps the
// message for ngaudit_last_error.

#include <string>
#include <utility>

#include "audit/normgraph_audit.h"

namespace normgraph::audit {

class Status {
 public:
  Status() = default;  // OK
  Status(ngaudit_status code, std::string message)
      : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == NGAUDIT_OK; }
  ngaudit_status code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  ngaudit_status code_ = NGAUDIT_OK;
  std::string message_;
};

inline Status InvalidArgument(std::string message) {
  return Status(NGAUDIT_INVALID_ARGUMENT, std::move(message));
}

}  // namespace normgraph::audit

// Returns from the enclosing function if `expr` (a Status) is not OK.
#define NGAUDIT_RETURN_IF_ERROR(expr)               \
  do {                                              \
    ::normgraph::audit::Status ngaudit_s_ = (expr); \
    if (!ngaudit_s_.ok()) return ngaudit_s_;        \
  } while (false)

#endif  // NORMGRAPH_AUDIT_STATUS_H_
