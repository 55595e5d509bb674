// Catch2 assertions for absl::Status values in tests: the status is printed
// when the check fails, and the value is handed back when it does not.
//
//   netlab::Netns ns = netlab::Must(netlab::Netns::Create("node"));
//   netlab::RequireOk(ns.Ip("link set lo up"));
#ifndef DPV2_TESTS_SUPPORT_NETLAB_REQUIRE_OK_H_
#define DPV2_TESTS_SUPPORT_NETLAB_REQUIRE_OK_H_

#include <catch2/catch.hpp>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dpv2::netlab {

template <typename T>
T Must(absl::StatusOr<T> v) {
  INFO(v.status().ToString());
  REQUIRE(v.ok());
  return *std::move(v);
}

inline void RequireOk(const absl::Status& s) {
  INFO(s.ToString());
  REQUIRE(s.ok());
}

}  // namespace dpv2::netlab

#endif  // DPV2_TESTS_SUPPORT_NETLAB_REQUIRE_OK_H_
