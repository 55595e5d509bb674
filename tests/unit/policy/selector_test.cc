#include <catch2/catch.hpp>

#include "dpv2/policy.h"

namespace dpv2 {
namespace {

TEST_CASE("selector: an empty selector matches every label set", "[selector]") {
  LabelSelector s;
  CHECK(s.Matches({}));
  CHECK(s.Matches({{"a", "b"}}));
}

TEST_CASE("selector: matchLabels needs every pair", "[selector]") {
  LabelSelector s{.match_labels = {{"app", "web"}, {"tier", "fe"}}};
  CHECK(s.Matches({{"app", "web"}, {"tier", "fe"}, {"x", "y"}}));
  CHECK_FALSE(s.Matches({{"app", "web"}}));
  CHECK_FALSE(s.Matches({{"app", "web"}, {"tier", "be"}}));
}

TEST_CASE("selector: In, NotIn, Exists, DoesNotExist", "[selector]") {
  LabelSelector in{.match_expressions = {{.key = "pod", .op = LabelSelectorOperator::kIn,
                                          .values = {"a", "b"}}}};
  CHECK(in.Matches({{"pod", "a"}}));
  CHECK_FALSE(in.Matches({{"pod", "c"}}));
  CHECK_FALSE(in.Matches({}));
  LabelSelector notin{.match_expressions = {{.key = "pod", .op = LabelSelectorOperator::kNotIn,
                                             .values = {"a"}}}};
  CHECK(notin.Matches({{"pod", "b"}}));
  CHECK(notin.Matches({}));  // absent key satisfies NotIn
  CHECK_FALSE(notin.Matches({{"pod", "a"}}));
  LabelSelector exists{.match_expressions = {{.key = "pod", .op = LabelSelectorOperator::kExists}}};
  CHECK(exists.Matches({{"pod", ""}}));
  CHECK_FALSE(exists.Matches({{"x", "y"}}));
  LabelSelector absent{
      .match_expressions = {{.key = "pod", .op = LabelSelectorOperator::kDoesNotExist}}};
  CHECK(absent.Matches({{"x", "y"}}));
  CHECK_FALSE(absent.Matches({{"pod", "a"}}));
}

TEST_CASE("selector: labels and expressions are ANDed", "[selector]") {
  LabelSelector s{.match_labels = {{"ns", "x"}},
                  .match_expressions = {{.key = "pod", .op = LabelSelectorOperator::kIn,
                                         .values = {"a"}}}};
  CHECK(s.Matches({{"ns", "x"}, {"pod", "a"}}));
  CHECK_FALSE(s.Matches({{"ns", "y"}, {"pod", "a"}}));
  CHECK_FALSE(s.Matches({{"ns", "x"}, {"pod", "b"}}));
}

TEST_CASE("selector: malformed requirements are rejected naming the field", "[selector]") {
  LabelSelector no_values{.match_expressions = {{.key = "k", .op = LabelSelectorOperator::kIn}}};
  absl::Status s = no_values.Validate("spec.podSelector");
  REQUIRE_FALSE(s.ok());
  CHECK(std::string(s.message()).find("spec.podSelector.matchExpressions[0].values") !=
        std::string::npos);
  LabelSelector values_on_exists{.match_expressions = {
                                     {.key = "k", .op = LabelSelectorOperator::kExists, .values = {"v"}}}};
  CHECK_FALSE(values_on_exists.Validate("x").ok());
  LabelSelector empty_key{.match_expressions = {{.key = "", .op = LabelSelectorOperator::kExists}}};
  CHECK_FALSE(empty_key.Validate("x").ok());
  CHECK_FALSE(ParseLabelSelectorOperator("in").ok());
  CHECK(ParseLabelSelectorOperator("DoesNotExist").value() == LabelSelectorOperator::kDoesNotExist);
}

TEST_CASE("selector: canonical text ignores expression and value order", "[selector]") {
  LabelSelector a{.match_expressions = {
                      {.key = "b", .op = LabelSelectorOperator::kIn, .values = {"2", "1"}},
                      {.key = "a", .op = LabelSelectorOperator::kExists}}};
  LabelSelector b{.match_expressions = {
                      {.key = "a", .op = LabelSelectorOperator::kExists},
                      {.key = "b", .op = LabelSelectorOperator::kIn, .values = {"1", "2"}}}};
  CHECK(a.ToString() == b.ToString());
}

}  // namespace
}  // namespace dpv2
