#include "agent/control/protocol.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace dpv2::agent {
namespace {

// absl::StatusCode by its canonical name ("INVALID_ARGUMENT"); Unknown if none.
absl::StatusCode CodeFromName(const std::string& name) {
  for (int c = 0; c <= static_cast<int>(absl::StatusCode::kUnauthenticated); ++c) {
    if (absl::StatusCodeToString(static_cast<absl::StatusCode>(c)) == name) {
      return static_cast<absl::StatusCode>(c);
    }
  }
  return absl::StatusCode::kUnknown;
}

}  // namespace

nlohmann::json ErrorResponse(const absl::Status& status) {
  return {{"ok", false},
          {"code", absl::StatusCodeToString(status.code())},
          {"error", std::string(status.message())}};
}

absl::Status ResponseStatus(const nlohmann::json& response) {
  if (!response.is_object() || !response.contains("ok") || !response["ok"].is_boolean()) {
    return absl::InternalError(
        absl::StrCat("control protocol: response without \"ok\": ", response.dump()));
  }
  if (response["ok"].get<bool>()) {
    return absl::OkStatus();
  }
  std::string code = response.value("code", std::string("UNKNOWN"));
  std::string message = response.value("error", std::string("(no message)"));
  absl::StatusCode c = CodeFromName(code);
  if (c == absl::StatusCode::kOk) {
    c = absl::StatusCode::kUnknown;
  }
  return absl::Status(c, message);
}

}  // namespace dpv2::agent
