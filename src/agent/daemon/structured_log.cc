#include "agent/daemon/structured_log.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace dpv2::agent::daemon {
namespace {

std::string TimeText(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
}

bool NeedsQuotes(absl::string_view v) {
  if (v.empty()) {
    return true;
  }
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      return true;
    }
  }
  return false;
}

std::string TextValue(const LogValue& value) {
  if (const std::string* s = std::get_if<std::string>(&value)) {
    // JSON string escaping is also a readable quoting for text logs.
    return NeedsQuotes(*s) ? nlohmann::json(*s).dump() : *s;
  }
  if (const int64_t* i = std::get_if<int64_t>(&value)) {
    return absl::StrCat(*i);
  }
  if (const double* d = std::get_if<double>(&value)) {
    return absl::StrFormat("%.6g", *d);
  }
  return std::get<bool>(value) ? "true" : "false";
}

nlohmann::json JsonValue(const LogValue& value) {
  return std::visit([](const auto& v) { return nlohmann::json(v); }, value);
}

}  // namespace

absl::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

std::string FormatLogLine(LogFormat format, absl::Time time, LogLevel level,
                          absl::string_view msg, const std::vector<LogField>& fields) {
  if (format == LogFormat::kJson) {
    // Ordered keys: time, level, msg first, then the fields as given.
    nlohmann::ordered_json line;
    line["time"] = TimeText(time);
    line["level"] = std::string(LogLevelName(level));
    line["msg"] = std::string(msg);
    for (const LogField& f : fields) {
      line[f.key] = JsonValue(f.value);
    }
    return line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  std::string out = absl::StrFormat("%s %-5s %s", TimeText(time), LogLevelName(level), msg);
  for (const LogField& f : fields) {
    absl::StrAppend(&out, " ", f.key, "=", TextValue(f.value));
  }
  return out;
}

StructuredLog::StructuredLog(LogFormat format, Sink sink, std::function<absl::Time()> clock)
    : format_(format), sink_(std::move(sink)), clock_(std::move(clock)) {
  if (!sink_) {
    sink_ = [](absl::string_view line) {
      std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
      std::fflush(stderr);
    };
  }
  if (!clock_) {
    clock_ = [] { return absl::Now(); };
  }
}

void StructuredLog::Log(LogLevel level, absl::string_view msg,
                        const std::vector<LogField>& fields) {
  std::string line = FormatLogLine(format_, clock_(), level, msg, fields);
  std::lock_guard<std::mutex> lock(mu_);
  sink_(line);
}

}  // namespace dpv2::agent::daemon
