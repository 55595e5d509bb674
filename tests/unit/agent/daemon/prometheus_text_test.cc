#include "agent/daemon/prometheus_text.h"

#include <catch2/catch.hpp>
#include <cmath>

#include "agent/daemon/structured_log.h"

namespace dpv2::agent::daemon {
namespace {

TEST_CASE("a family is HELP, TYPE, then samples with labels in the given order") {
  PrometheusText out;
  out.Family("dpv2_drop_count_total", "counter", "Drops by reason.");
  out.Sample("dpv2_drop_count_total", {{"reason", "policy_deny"}, {"node", "a"}}, 3);
  out.Sample("dpv2_drop_count_total", {}, 0);
  CHECK(out.text() ==
        "# HELP dpv2_drop_count_total Drops by reason.\n"
        "# TYPE dpv2_drop_count_total counter\n"
        "dpv2_drop_count_total{reason=\"policy_deny\",node=\"a\"} 3\n"
        "dpv2_drop_count_total 0\n");
}

TEST_CASE("label values and help text are escaped as the exposition format requires") {
  CHECK(EscapeLabelValue("a\"b\\c\nd") == "a\\\"b\\\\c\\nd");
  PrometheusText out;
  out.Family("m", "gauge", "two\nlines \\ here");
  CHECK(out.text() == "# HELP m two\\nlines \\\\ here\n# TYPE m gauge\n");
}

TEST_CASE("sample values: integers exact, reals, and the special values") {
  CHECK(FormatSampleValue(42) == "42");
  CHECK(FormatSampleValue(1e12) == "1000000000000");
  CHECK(FormatSampleValue(0.25) == "0.25");
  CHECK(FormatSampleValue(INFINITY) == "+Inf");
  CHECK(FormatSampleValue(-INFINITY) == "-Inf");
  CHECK(FormatSampleValue(NAN) == "NaN");
}

TEST_CASE("histogram buckets are cumulative, inclusive, and end with +Inf") {
  LatencyHistogram h({0.001, 0.01});
  h.Observe(0.001);   // le 0.001 (inclusive)
  h.Observe(0.005);   // le 0.01
  h.Observe(3);       // only +Inf
  PrometheusText out;
  h.Write(out, "lat", {{"kind", "x"}});
  CHECK(out.text() ==
        "lat_bucket{kind=\"x\",le=\"0.001\"} 1\n"
        "lat_bucket{kind=\"x\",le=\"0.01\"} 2\n"
        "lat_bucket{kind=\"x\",le=\"+Inf\"} 3\n"
        "lat_sum{kind=\"x\"} 3.006\n"
        "lat_count{kind=\"x\"} 3\n");
  CHECK(h.count() == 3);
}

TEST_CASE("json log lines start with time, level, msg and escape values") {
  absl::Time t = absl::FromUnixMillis(1764187262123);
  std::string line = FormatLogLine(LogFormat::kJson, t, LogLevel::kWarn, "pod \"held\"",
                                   {{"pod", "default/web"}, {"n", 3}, {"ok", true}, {"x", 0.5}});
  CHECK(line ==
        "{\"time\":\"2025-11-26T20:01:02.123Z\",\"level\":\"warn\",\"msg\":\"pod \\\"held\\\"\","
        "\"pod\":\"default/web\",\"n\":3,\"ok\":true,\"x\":0.5}");
}

TEST_CASE("text log lines quote values with spaces, quotes or equals signs") {
  absl::Time t = absl::FromUnixMillis(1764187262123);
  std::string line = FormatLogLine(LogFormat::kText, t, LogLevel::kInfo, "reconciled",
                                   {{"batch", "3 services +"}, {"gen", 7}, {"empty", ""},
                                    {"eq", "a=b"}, {"plain", "node-a"}});
  CHECK(line ==
        "2025-11-26T20:01:02.123Z info  reconciled batch=\"3 services +\" gen=7 empty=\"\" "
        "eq=\"a=b\" plain=node-a");
}

TEST_CASE("a structured log writes each line whole to its sink") {
  std::vector<std::string> lines;
  StructuredLog log(LogFormat::kText, [&lines](absl::string_view l) { lines.emplace_back(l); },
                    [] { return absl::UnixEpoch(); });
  log.Info("one", {{"k", "v"}});
  log.Error("two");
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == "1970-01-01T00:00:00.000Z info  one k=v");
  CHECK(lines[1] == "1970-01-01T00:00:00.000Z error two");
}

}  // namespace
}  // namespace dpv2::agent::daemon
