// Structured log lines for the agent: one line per event with the time, the
// level, a message and key/value fields, as text
//   2026-11-26T20:01:02.123Z info  reconciled generation=3 changes=12 ms=0.41
// or as JSON
//   {"time":"2026-11-26T20:01:02.123Z","level":"info","msg":"reconciled","generation":3,...}
// so that both a person tailing the log and a collector parsing it are
// served. Safe to call from any thread; each line is written whole.
//
//   StructuredLog log(LogFormat::kJson, [](absl::string_view l) { std::cerr << l << "\n"; });
//   log.Info("reconciled", {{"generation", 3}, {"changes", 12}});
//   log.Warn("pod interface missing", {{"pod", "default/web-1"}});
#ifndef DPV2_AGENT_DAEMON_STRUCTURED_LOG_H_
#define DPV2_AGENT_DAEMON_STRUCTURED_LOG_H_

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/daemon/agent_flags.h"

namespace dpv2::agent::daemon {

enum class LogLevel { kDebug, kInfo, kWarn, kError };
absl::string_view LogLevelName(LogLevel level);  // "info"

// A field value: text, integer, real or boolean.
using LogValue = std::variant<std::string, int64_t, double, bool>;

struct LogField {
  std::string key;
  LogValue value;

  LogField(std::string k, std::string v) : key(std::move(k)), value(std::move(v)) {}
  LogField(std::string k, const char* v) : key(std::move(k)), value(std::string(v)) {}
  LogField(std::string k, absl::string_view v) : key(std::move(k)), value(std::string(v)) {}
  template <typename I, typename = std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>>>
  LogField(std::string k, I v) : key(std::move(k)), value(static_cast<int64_t>(v)) {}
  LogField(std::string k, double v) : key(std::move(k)), value(v) {}
  LogField(std::string k, bool v) : key(std::move(k)), value(v) {}
};

// Formats one line (no newline). Text values with spaces, quotes or '=' are
// quoted in text format; JSON escapes per RFC 8259.
std::string FormatLogLine(LogFormat format, absl::Time time, LogLevel level,
                          absl::string_view msg, const std::vector<LogField>& fields);

class StructuredLog {
 public:
  using Sink = std::function<void(absl::string_view line)>;

  // Empty sink: stderr.
  explicit StructuredLog(LogFormat format, Sink sink = nullptr,
                         std::function<absl::Time()> clock = nullptr);

  void Log(LogLevel level, absl::string_view msg, const std::vector<LogField>& fields = {});
  void Debug(absl::string_view msg, const std::vector<LogField>& fields = {}) {
    Log(LogLevel::kDebug, msg, fields);
  }
  void Info(absl::string_view msg, const std::vector<LogField>& fields = {}) {
    Log(LogLevel::kInfo, msg, fields);
  }
  void Warn(absl::string_view msg, const std::vector<LogField>& fields = {}) {
    Log(LogLevel::kWarn, msg, fields);
  }
  void Error(absl::string_view msg, const std::vector<LogField>& fields = {}) {
    Log(LogLevel::kError, msg, fields);
  }

 private:
  LogFormat format_;
  Sink sink_;
  std::function<absl::Time()> clock_;
  std::mutex mu_;  // one line at a time
};

}  // namespace dpv2::agent::daemon

#endif  // DPV2_AGENT_DAEMON_STRUCTURED_LOG_H_
