#include "dpv2/datapath_config.h"

#include <catch2/catch.hpp>

TEST_CASE("the default datapath config is valid", "[config]") {
  REQUIRE(dpv2::DatapathConfig{}.Validate().ok());
}

TEST_CASE("a maglev table size that is not a prime is rejected by name", "[config]") {
  absl::Status s = dpv2::DatapathConfig{.maglev_table_size = 16380}.Validate();
  REQUIRE_FALSE(s.ok());
  REQUIRE(s.message() == "datapath config: maglev_table_size 16380 is not a prime");
}

TEST_CASE("a zero capacity is rejected by field name", "[config]") {
  absl::Status s = dpv2::DatapathConfig{.ct_tcp_entries = 0}.Validate();
  REQUIRE_FALSE(s.ok());
  REQUIRE(s.message() == "datapath config: ct_tcp_entries must be greater than 0");
}
