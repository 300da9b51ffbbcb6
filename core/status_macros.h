#ifndef NORMGRAPH_CORE_STATUS_MACROS_H_
#define NORMGRAPH_CORE_STATUS_MACROS_H_

// Early-return helpers for absl::Status / absl::StatusOr (Abseil 20220623 has
// none public).

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define NG_STATUS_CONCAT_INNER_(a, b) a##b
#define NG_STATUS_CONCAT_(a, b) NG_STATUS_CONCAT_INNER_(a, b)

// Returns from the current function if `expr` (an absl::Status) is not OK.
#define NG_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::absl::Status ng_status_ = (expr);      \
    if (!ng_status_.ok()) return ng_status_; \
  } while (false)

// `NG_ASSIGN_OR_RETURN(auto x, StatusOrExpr());` declares/assigns x or returns
// the error.
#define NG_ASSIGN_OR_RETURN(lhs, expr)                                      \
  NG_ASSIGN_OR_RETURN_IMPL_(NG_STATUS_CONCAT_(ng_statusor_, __LINE__), lhs, \
                            expr)
#define NG_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr)     \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()

#endif  // NORMGRAPH_CORE_STATUS_MACROS_H_
