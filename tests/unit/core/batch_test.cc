#include "dpv2/batch.h"

#include <catch2/catch.hpp>

TEST_CASE("an empty batch says so", "[batch]") {
  dpv2::ChangeBatch b;
  REQUIRE(b.empty());
  REQUIRE(b.Summary() == "empty");
}

TEST_CASE("a batch counts and summarises its operations", "[batch]") {
  dpv2::ChangeBatch b;
  b.backends_upsert.push_back({.id = 1, .value = {}});
  b.tables_upsert.push_back({.id = 1, .slots = {1, 1, 1}});
  b.services_delete.push_back({});
  REQUIRE(b.size() == 3);
  REQUIRE(b.Summary() == "1 backends +, 1 tables +, 1 services -");
  dpv2::ChangeBatch c;
  c.Append(b);
  c.Append(b);
  REQUIRE(c.size() == 6);
}
