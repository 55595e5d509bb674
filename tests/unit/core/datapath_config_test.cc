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

TEST_CASE("a maglev table size above 2^24 is rejected by name", "[config]") {
  absl::Status s = dpv2::DatapathConfig{.maglev_table_size = 16777259}.Validate();  // a prime
  REQUIRE_FALSE(s.ok());
  REQUIRE(s.message() == "datapath config: maglev_table_size 16777259 is above 16777216");
}

TEST_CASE("maglev slots per backend above 65536 are rejected by name, 0 and 65536 accepted",
          "[config]") {
  absl::Status s = dpv2::DatapathConfig{.maglev_slots_per_backend = 65537}.Validate();
  REQUIRE_FALSE(s.ok());
  REQUIRE(s.message() == "datapath config: maglev_slots_per_backend 65537 is above 65536");
  CHECK(dpv2::DatapathConfig{.maglev_slots_per_backend = 0}.Validate().ok());
  CHECK(dpv2::DatapathConfig{.maglev_slots_per_backend = 65536}.Validate().ok());
}
