// dpv2-lb's configuration file: what it accepts, how it maps to Services,
// and that malformed files are refused naming the field.
#include <catch2/catch.hpp>

#include "lb_config.h"

namespace dpv2::lb {
namespace {

constexpr char kGood[] = R"(
dpdk:
  eal: ["-l", "0-1", "--no-huge", "--vdev", "net_ring0"]
  ports:
    - device: net_ring0
      gateway_mac: "02:00:00:00:00:fe"
  idle_sleep_us: 50
  neighbors:
    - {ip: 10.0.0.2, mac: "aa:bb:cc:dd:ee:ff"}
selection: random
maglev_table_size: 251
services:
  - name: web
    vip: 10.0.0.100
    port: 80
    affinity_timeout_s: 600
    backends:
      - {address: 10.0.1.1, port: 8080}
      - {address: 10.0.1.2, port: 8080, state: draining}
      - {address: 10.0.1.3, port: 9090, state: down}
  - name: dns
    vip: fd00::53
    port: 53
    protocol: UDP
    backends:
      - {address: "fd00::1"}
)";

TEST_CASE("a complete config parses into DPDK options and virtual services") {
  absl::StatusOr<LbConfig> cfg = ParseLbConfig(kGood);
  INFO(cfg.status().ToString());
  REQUIRE(cfg.ok());
  CHECK(cfg->dpdk.eal_args.size() == 5);
  REQUIRE(cfg->dpdk.ports.size() == 1);
  CHECK(cfg->dpdk.ports[0].device == "net_ring0");
  CHECK(cfg->dpdk.ports[0].gateway_mac == MacAddr{2, 0, 0, 0, 0, 0xfe});
  CHECK(cfg->dpdk.idle_sleep_us == 50);
  REQUIRE(cfg->dpdk.neighbors.size() == 1);
  CHECK(cfg->dpdk.neighbors[0].mac == MacAddr{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff});
  CHECK(cfg->selection == BackendSelection::kRandom);
  CHECK(cfg->dpdk.config.maglev_table_size == 251);
  REQUIRE(cfg->services.size() == 2);
  CHECK(cfg->services[0].backends[1].health == BackendHealth::kDraining);
  CHECK(cfg->services[0].backends[2].health == BackendHealth::kDown);
  CHECK(cfg->services[1].protocol == L4Proto::kUDP);
  CHECK(cfg->services[1].backends[0].port == 53);  // defaults to the VIP's port
}

TEST_CASE("JSON config files are accepted") {
  absl::StatusOr<LbConfig> cfg = ParseLbConfig(R"({"dpdk": {"ports": [{"device": "net_ring0"}]},
      "services": [{"name": "a", "vip": "10.0.0.1", "port": 443,
                    "backends": [{"address": "10.0.1.1", "port": 8443}]}]})");
  INFO(cfg.status().ToString());
  REQUIRE(cfg.ok());
  CHECK(cfg->services.at(0).backends.at(0).port == 8443);
}

TEST_CASE("virtual services become ClusterIP-shaped ServiceSpecs whose endpoint conditions carry backend health, down backends left out") {
  absl::StatusOr<LbConfig> cfg = ParseLbConfig(kGood);
  REQUIRE(cfg.ok());
  std::vector<ServiceSpec> specs = ToServiceSpecs(cfg->services);
  REQUIRE(specs.size() == 2);
  const ServiceSpec& web = specs[0];
  CHECK(web.Key() == "lb/web");
  CHECK(web.Validate().ok());
  CHECK(web.cluster_ips == std::vector<IpAddr>{*IpAddr::Parse("10.0.0.100")});
  CHECK(web.session_affinity == SessionAffinity::kClientIP);
  CHECK(web.affinity_timeout_s == 600);
  // The down backend (the only one on port 9090) is left out entirely.
  REQUIRE(web.endpoint_slices.size() == 1);
  const EndpointSliceSpec& s8080 = web.endpoint_slices[0];
  CHECK(s8080.ports.at(0).port == 8080);
  REQUIRE(s8080.endpoints.size() == 2);
  CHECK(s8080.endpoints[0].conditions.IsReady());
  CHECK_FALSE(s8080.endpoints[1].conditions.IsReady());
  CHECK(s8080.endpoints[1].conditions.IsServing());
  CHECK(s8080.endpoints[1].conditions.IsTerminating());
  CHECK(specs[1].endpoint_slices.at(0).address_type == Family::kV6);
}

std::string ErrorOf(const std::string& text) {
  absl::StatusOr<LbConfig> cfg = ParseLbConfig(text);
  REQUIRE_FALSE(cfg.ok());
  return std::string(cfg.status().message());
}

const std::string kPorts = "dpdk: {ports: [{device: net_ring0}]}\n";

TEST_CASE("malformed config files are refused naming the field") {
  CHECK_THAT(ErrorOf("dpdk: [unclosed"), Catch::Contains("line 1"));
  CHECK_THAT(ErrorOf("services: []"), Catch::Contains("dpdk: section is missing"));
  CHECK_THAT(ErrorOf("dpdk: {ports: []}"), Catch::Contains("dpdk.ports: at least one port"));
  CHECK_THAT(ErrorOf("dpdk: {ports: [{device: a, gateway_mac: \"zz:00:00:00:00:00\"}]}"),
             Catch::Contains("dpdk.ports[0].gateway_mac: \"zz:00:00:00:00:00\" is not a MAC"));
  CHECK_THAT(ErrorOf(kPorts + "colour: blue"), Catch::Contains("unknown field \"colour\""));
  CHECK_THAT(ErrorOf(kPorts + "maglev_table_size: 100"), Catch::Contains("maglev_table_size"));
  CHECK_THAT(ErrorOf(kPorts + "services: [{name: w, vip: 10.0.0.1, port: 0}]"),
             Catch::Contains("services[0] \"w\": port 0 out of range"));
  CHECK_THAT(ErrorOf(kPorts + "services: [{name: w, vip: 10.0.0.999, port: 80}]"),
             Catch::Contains("services[0] \"w\": vip"));
  CHECK_THAT(ErrorOf(kPorts + "services: [{name: w, vip: 10.0.0.1, port: 80, protocol: ICMP}]"),
             Catch::Contains("protocol \"ICMP\" is not TCP, UDP or SCTP"));
  CHECK_THAT(ErrorOf(kPorts + "services: [{name: w, vip: 10.0.0.1, port: 80, "
                              "backends: [{address: 10.0.1.1, state: sleepy}]}]"),
             Catch::Contains("backends[0]: state \"sleepy\""));
  CHECK_THAT(ErrorOf(kPorts + "services: [{name: w, vip: 10.0.0.1, port: 80, "
                              "backends: [{address: \"fd00::1\"}]}]"),
             Catch::Contains("not of the VIP's family"));
  CHECK_THAT(ErrorOf(kPorts + "services: [{name: w, vip: 10.0.0.1, port: 80}, "
                              "{name: w, vip: 10.0.0.2, port: 80}]"),
             Catch::Contains("name \"w\" is also services[0]"));
  CHECK_THAT(ErrorOf(kPorts + "services: [{name: a, vip: 10.0.0.1, port: 80}, "
                              "{name: b, vip: 10.0.0.1, port: 80}]"),
             Catch::Contains("is also served by services[0]"));
  CHECK_THAT(ErrorOf(kPorts + "services: [{name: w, vip: 10.0.0.1, port: 80, "
                              "affinity_timeout_s: 90000}]"),
             Catch::Contains("affinity_timeout_s"));
}

}  // namespace
}  // namespace dpv2::lb
