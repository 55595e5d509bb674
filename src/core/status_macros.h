// Status propagation macros (Abseil's public release has none).
//
//   DPV2_RETURN_IF_ERROR(backend.Apply(batch));
//   DPV2_ASSIGN_OR_RETURN(IpAddr addr, IpAddr::Parse(text));
#ifndef DPV2_CORE_STATUS_MACROS_H_
#define DPV2_CORE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DPV2_RETURN_IF_ERROR(expr)                 \
  do {                                             \
    ::absl::Status dpv2_status_ = (expr);          \
    if (!dpv2_status_.ok()) return dpv2_status_;   \
  } while (0)

#define DPV2_STATUS_CONCAT_INNER_(a, b) a##b
#define DPV2_STATUS_CONCAT_(a, b) DPV2_STATUS_CONCAT_INNER_(a, b)

#define DPV2_ASSIGN_OR_RETURN(lhs, expr) \
  DPV2_ASSIGN_OR_RETURN_IMPL_(DPV2_STATUS_CONCAT_(dpv2_statusor_, __LINE__), lhs, expr)

#define DPV2_ASSIGN_OR_RETURN_IMPL_(var, lhs, expr) \
  auto var = (expr);                                \
  if (!var.ok()) return std::move(var).status();    \
  lhs = std::move(var).value()

#endif  // DPV2_CORE_STATUS_MACROS_H_
