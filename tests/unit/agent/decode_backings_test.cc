// The two backings of JsonField decode alike: every object here, most of
// them invalid in one field or several, is decoded from an nlohmann::json
// tree (manifests) and from simdjson's DOM (the API server's objects), and
// both give the same errors, in the same order, the same warnings and the
// same objects.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "agent/k8s/objects.h"
#include "nlohmann/json.hpp"
#include "simdjson.h"

namespace dpv2::agent::k8s {
namespace {

ClusterObjects FromTree(const std::string& json) {
  ClusterObjects out;
  AddObject(nlohmann::json::parse(json), "test", &out);
  return out;
}

ClusterObjects FromElement(const std::string& json, const TypeMeta& defaults = {}) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  REQUIRE(parser.parse(json).get(root) == simdjson::SUCCESS);
  ClusterObjects out;
  AddApiObject(root, defaults, "test", &out);
  return out;
}

template <typename Map>
std::vector<std::string> Keys(const Map& map) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : map) {
    keys.push_back(key);
  }
  return keys;
}

void CheckSame(const ClusterObjects& tree, const ClusterObjects& element) {
  CHECK(element.errors == tree.errors);
  CHECK(element.warnings == tree.warnings);
  CHECK(Keys(element.services) == Keys(tree.services));
  CHECK(Keys(element.endpoint_slices) == Keys(tree.endpoint_slices));
  CHECK(Keys(element.pods) == Keys(tree.pods));
  CHECK(Keys(element.namespaces) == Keys(tree.namespaces));
  CHECK(Keys(element.nodes) == Keys(tree.nodes));
  CHECK(Keys(element.network_policies) == Keys(tree.network_policies));
  CHECK(Keys(element.admin_network_policies) == Keys(tree.admin_network_policies));
  CHECK(element.baseline_admin_network_policy.has_value() ==
        tree.baseline_admin_network_policy.has_value());
  CHECK(element.network_logging.has_value() == tree.network_logging.has_value());
}

// Objects that read every kind of field wrong: wrong types at every level,
// integers that are not whole or out of range, non-string map values, null
// items, repeated keys, values long enough to be cut in messages, escapes.
const std::vector<std::string> kBadObjects = {
    // Service: member of a list, list of an object, typed reads.
    R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"a","namespace":"shop"},
        "spec":[1,2]})",
    R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"b","namespace":"shop",
        "labels":{"z":"1","a":2,"m":null,"b":{"deep":[1,2]},"n":true,"f":1.5,
          "long":["aaaaaaaaaaaaaaaaaaaa","bbbbbbbbbbbbbbbbbbbbbbbb","cccccccccccccccccccccc"]},
        "annotations":["x"]},
        "spec":{"clusterIP":5,"ports":{"port":80},"publishNotReadyAddresses":"yes",
        "externalIPs":["10.0.0.1",null,7,"not an ip"],"selector":{"app":{"x":1}}}})",
    R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"c","namespace":"shop"},
        "spec":{"type":"NodePort","clusterIP":"10.96.0.9","ports":[
          {"name":"p0","port":"80"},
          {"name":"p1","port":1.0,"targetPort":true},
          {"name":"p2","port":18446744073709551615,"targetPort":18446744073709551615},
          {"name":"p3","port":-1,"targetPort":"bad_name!"},
          {"name":"p4","port":81,"targetPort":70000,"nodePort":-0.0},
          {"name":"p5","port":82,"targetPort":0,"nodePort":9223372036854775808},
          {"name":"p6","port":83,"targetPort":"","protocol":["TCP"]},
          {"name":"p7","port":84,"targetPort":{"port":8080}},
          {"name":"p8","port":85,"targetPort":-9223372036854775808}]}})",
    R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"d","namespace":"shop"},
        "spec":{"clusterIP":"10.96.0.10","ports":[],"sessionAffinity":"\u00e9\"q\\\n"}})",
    // Repeated keys: the last counts in both.
    R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"e","namespace":"shop",
        "labels":{"k":"1","k":2}},
        "spec":{"clusterIP":"10.96.0.11","ports":[{"port":80,"port":"eighty"}]}})",
    // EndpointSlice: addresses of the wrong shape, items that are not objects.
    R"({"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",
        "metadata":{"name":"s","namespace":"shop","labels":{"kubernetes.io/service-name":"a"}},
        "addressType":"IPv4","ports":[{"port":70000,"protocol":7}],
        "endpoints":[{"addresses":{}},{"addresses":[]},1,
          {"addresses":["10.0.0.1"],"conditions":{"ready":"true"},"zone":3}]})",
    // Pod and Node.
    R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"shop"},
        "spec":{"hostNetwork":1,"containers":[{"name":"c","ports":[{"containerPort":1.5},
          {"containerPort":"80"}]}],"nodeName":["n"]},
        "status":{"podIP":"10.0.0.300","podIPs":[{"ip":null},"x"]}})",
    R"({"apiVersion":"v1","kind":"Node","metadata":{"name":"n","labels":[]},
        "spec":{"podCIDRs":"10.0.0.0/24"},
        "status":{"addresses":[{"type":1,"address":"10.0.0.1"},{"type":"InternalIP"}]}})",
    // Policies: selectors, peers, ports, an empty list of networks.
    R"({"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy",
        "metadata":{"name":"np","namespace":"shop"},
        "spec":{"podSelector":{"matchLabels":{"a":1},"matchExpressions":[{"key":"k",
          "operator":"In","values":"v"}]},"policyTypes":"Ingress",
          "ingress":[{"from":[{"ipBlock":{"cidr":10}}],"ports":[{"port":true,"endPort":"x"}]}]}})",
    R"({"apiVersion":"policy.networking.k8s.io/v1alpha1","kind":"AdminNetworkPolicy",
        "metadata":{"name":"anp"},
        "spec":{"priority":1e2,"subject":{"namespaces":{}},
          "egress":[{"action":"Allow","to":[{"networks":[]},{"networks":"10.0.0.0/8"},
            {"networks":["10.0.0.0/33",null]}],
            "ports":[{"portNumber":{"port":"80","protocol":"TCP"}},{"portRange":{"start":2}}]}]}})",
    R"({"apiVersion":"networking.gke.io/v1alpha1","kind":"NetworkLogging",
        "metadata":{"name":"default"},"spec":{"cluster":{"allow":{"log":"yes","delegate":0}}}})",
    // The envelope: no kind, wrong types, unknown kinds, not an object.
    R"({"metadata":{"name":"x"}})",
    R"({"apiVersion":7,"kind":"Service","metadata":{"name":"y","namespace":"shop"}})",
    R"({"apiVersion":"v1","kind":["Service"],"metadata":"y"})",
    R"({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"}})",
    R"([1,2])",
    R"(null)",
    R"("text")",
};

TEST_CASE("JsonField: both backings decode bad objects to the same errors") {
  size_t errors = 0;
  for (const std::string& json : kBadObjects) {
    INFO(json);
    const ClusterObjects tree = FromTree(json);
    CheckSame(tree, FromElement(json));
    CHECK(tree.errors.size() + tree.warnings.size() > 0);
    errors += tree.errors.size();
  }
  CHECK(errors >= 60);
  // What the cases above are for, in one backing's words (both agree).
  const ClusterObjects repeated = FromElement(kBadObjects[4]);
  REQUIRE(repeated.errors.size() == 2);
  CHECK(repeated.errors[0] ==
        "Service shop/e: metadata.labels[k]: must be a string, got 2 "
        "(quote it in YAML)");
  CHECK(repeated.errors[1] ==
        "Service shop/e: spec.ports[0].port: must be an integer, got "
        "\"eighty\"");
}

TEST_CASE("JsonField: both backings decode valid objects alike") {
  const std::vector<std::string> good = {
      R"({"apiVersion":"v1","kind":"Service","metadata":{"name":"web","namespace":"shop",
          "labels":{"b":"2","a":"1"}},
          "spec":{"clusterIP":"10.96.0.10","selector":{"app":"web"},
          "ports":[{"name":"http","port":80,"targetPort":"http"},
                   {"name":"dns","port":53,"protocol":"UDP","targetPort":0}]}})",
      R"({"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",
          "metadata":{"name":"web-1","namespace":"shop",
          "labels":{"kubernetes.io/service-name":"web"}},"addressType":"IPv4",
          "ports":[{"name":"http","port":8080}],
          "endpoints":[{"addresses":["10.0.0.1"],"conditions":{"ready":true},"nodeName":"n1"}]})",
      R"({"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice",
          "metadata":{"name":"names","namespace":"shop"},"addressType":"FQDN",
          "endpoints":[{"addresses":["a.example"]}]})",
      R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop"}})",
  };
  for (const std::string& json : good) {
    INFO(json);
    const ClusterObjects tree = FromTree(json);
    CheckSame(tree, FromElement(json));
    CHECK(tree.errors.empty());
  }
}

TEST_CASE("JsonField: an API object without kind and apiVersion takes the defaults") {
  const std::string bare = R"({"metadata":{"name":"web","namespace":"shop"},
      "spec":{"clusterIP":"10.96.0.10","ports":[{"port":80,"targetPort":70000}]}})";
  const std::string typed = R"({"apiVersion":"v1","kind":"Service",)" + bare.substr(1);
  const ClusterObjects tree = FromTree(typed);
  REQUIRE(tree.errors.size() == 1);
  CheckSame(tree, FromElement(bare, {.kind = "Service", .api_version = "v1"}));
  // What the object says wins over the defaults.
  CheckSame(FromTree(typed), FromElement(typed, {.kind = "Pod", .api_version = "v2"}));
  // Not an object: no defaults.
  CheckSame(FromTree("[1]"), FromElement("[1]", {.kind = "Service", .api_version = "v1"}));
}

}  // namespace
}  // namespace dpv2::agent::k8s
