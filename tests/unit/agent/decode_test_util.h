// Shared by the decoding tests: load manifest text and look at its errors.
#ifndef DPV2_TESTS_UNIT_AGENT_DECODE_TEST_UTIL_H_
#define DPV2_TESTS_UNIT_AGENT_DECODE_TEST_UTIL_H_

#include <algorithm>
#include <string>

#include "agent/k8s/objects.h"

namespace dpv2::agent::k8s {

inline ClusterObjects Load(const std::string& yaml) {
  ClusterObjects objects;
  AddManifestText(yaml, "test.yaml", &objects);
  return objects;
}

inline bool HasError(const ClusterObjects& o, const std::string& text) {
  return std::find(o.errors.begin(), o.errors.end(), text) != o.errors.end();
}

inline std::string Errors(const ClusterObjects& o) {
  std::string all;
  for (const std::string& e : o.errors) {
    all += e + "\n";
  }
  return all;
}

}  // namespace dpv2::agent::k8s

#endif  // DPV2_TESTS_UNIT_AGENT_DECODE_TEST_UTIL_H_
