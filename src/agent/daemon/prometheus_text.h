// Prometheus text exposition (format 0.0.4) for the agent's /metrics: metric
// families with HELP and TYPE lines, samples with escaped label values, and a
// cumulative latency histogram. Building the text is separate from collecting
// the numbers so that the format is tested on its own.
//
//   PrometheusText out;
//   out.Family("dpv2_drops_total", "counter", "Packets dropped, by reason.");
//   out.Sample("dpv2_drops_total", {{"reason", "policy_deny"}}, 3);
#ifndef DPV2_AGENT_DAEMON_PROMETHEUS_TEXT_H_
#define DPV2_AGENT_DAEMON_PROMETHEUS_TEXT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace dpv2::agent::daemon {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

class PrometheusText {
 public:
  // Starts a family; its samples follow. `type`: counter, gauge, histogram.
  void Family(absl::string_view name, absl::string_view type, absl::string_view help);
  // `name` is the family name, or for histograms name_bucket/_sum/_count.
  void Sample(absl::string_view name, const MetricLabels& labels, double value);
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

// "a\"b" for label values: backslash, double quote and newline escaped.
std::string EscapeLabelValue(absl::string_view value);
// Integers print without a decimal point; +Inf, -Inf and NaN as Prometheus spells them.
std::string FormatSampleValue(double value);

// Cumulative histogram over fixed upper bounds (seconds), plus sum and count.
class LatencyHistogram {
 public:
  explicit LatencyHistogram(std::vector<double> upper_bounds);
  // 0.1 ms .. 10 s, roughly x2.5 apart: reconcile latency.
  static LatencyHistogram ForReconcile();

  void Observe(double seconds);
  // The _bucket (with le="+Inf"), _sum and _count samples of family `name`.
  void Write(PrometheusText& out, absl::string_view name, const MetricLabels& labels = {}) const;
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative
  uint64_t count_ = 0;
  double sum_ = 0;
};

}  // namespace dpv2::agent::daemon

#endif  // DPV2_AGENT_DAEMON_PROMETHEUS_TEXT_H_
