// dpv2-lb without a NIC: its configuration file (what it accepts, how it maps
// to Services, malformed files refused naming the field), its Kubernetes input
// (which Services and frontends a box in front of the cluster serves, compiled
// and run through the sim datapath) and its backend health checks (hysteresis,
// real TCP connect probes on loopback).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include <catch2/catch.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/k8s/objects.h"
#include "backends/dpdk/neighbor_reply.h"
#include "dpv2/checksum.h"
#include "backend_health.h"
#include "dpv2/lb_state.h"
#include "dpv2/packet.h"
#include "dpv2/sim.h"
#include "k8s_services.h"
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
  conntrack_reserve: 200000
  neighbors:
    - {ip: 10.0.0.2, mac: "aa:bb:cc:dd:ee:ff"}
selection: random
maglev_table_size: 251
maglev_slots_per_backend: 20
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
  CHECK(cfg->dpdk.conntrack_reserve == 200000);
  REQUIRE(cfg->dpdk.neighbors.size() == 1);
  CHECK(cfg->dpdk.neighbors[0].mac == MacAddr{0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff});
  CHECK(cfg->selection == BackendSelection::kRandom);
  CHECK(cfg->dpdk.config.maglev_table_size == 251);
  CHECK(cfg->dpdk.config.maglev_slots_per_backend == 20);
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
  CHECK(web.Key() == "lb.config/web");
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

struct Refusal {
  std::string text;
  std::string message;  // a part of the error
};

void CheckRefused(const std::vector<Refusal>& cases) {
  for (const Refusal& c : cases) {
    INFO(c.text);
    CHECK_THAT(ErrorOf(c.text), Catch::Contains(c.message));
  }
}

TEST_CASE("malformed config files are refused naming the field") {
  CheckRefused({
      {"dpdk: [unclosed",
       "line 1"},
      {"services: []",
       "dpdk: section is missing"},
      {"dpdk: {ports: []}",
       "dpdk.ports: at least one port"},
      {"dpdk: {ports: [{device: a, gateway_mac: \"zz:00:00:00:00:00\"}]}",
       "dpdk.ports[0].gateway_mac: \"zz:00:00:00:00:00\" is not a MAC"},
      {kPorts + "colour: blue",
       "unknown field \"colour\""},
      {kPorts + "maglev_table_size: 100",
       "maglev_table_size"},
      {kPorts + "maglev_slots_per_backend: 65537",
       "maglev_slots_per_backend: \"65537\" is not an integer in 0-65536"},
      {kPorts + "maglev_slots_per_backend: -3",
       "maglev_slots_per_backend: \"-3\" is not an integer in 0-65536"},
      {kPorts + "services: [{name: w, vip: 10.0.0.1, port: 0}]",
       "services[0] \"w\": port 0 out of range"},
      {kPorts + "services: [{name: w, vip: 10.0.0.999, port: 80}]",
       "services[0] \"w\": vip"},
      {kPorts + "services: [{name: w, vip: 10.0.0.1, port: 80, protocol: ICMP}]",
       "protocol \"ICMP\" is not TCP, UDP or SCTP"},
      {kPorts + "services: [{name: w, vip: 10.0.0.1, port: 80, "
                "backends: [{address: 10.0.1.1, state: sleepy}]}]",
       "backends[0]: state \"sleepy\""},
      {kPorts + "services: [{name: w, vip: 10.0.0.1, port: 80, "
                "backends: [{address: \"fd00::1\"}]}]",
       "not of the VIP's family"},
      {kPorts + "services: [{name: w, vip: 10.0.0.1, port: 80}, "
                "{name: w, vip: 10.0.0.2, port: 80}]",
       "name \"w\" is also services[0]"},
      {kPorts + "services: [{name: a, vip: 10.0.0.1, port: 80}, "
                "{name: b, vip: 10.0.0.1, port: 80}]",
       "is also served by services[0]"},
      {kPorts + "services: [{name: w, vip: 10.0.0.1, port: 80, "
                "affinity_timeout_s: 90000}]",
       "affinity_timeout_s"},
  });
}

TEST_CASE("the kubernetes and health_checks sections parse, with manifests relative to the file") {
  absl::StatusOr<LbConfig> cfg = ParseLbConfig(
      kPorts + "kubernetes: {manifests: k8s}\n"
               "health_checks: {interval_ms: 500, timeout_ms: 200, rise: 1, fall: 4}\n");
  INFO(cfg.status().ToString());
  REQUIRE(cfg.ok());
  CHECK(cfg->kubernetes.manifests == "k8s");
  CHECK(cfg->health_checks.interval_ms == 500);
  CHECK(cfg->health_checks.timeout_ms == 200);
  CHECK(cfg->health_checks.rise == 1);
  CHECK(cfg->health_checks.fall == 4);
  CHECK(ParseLbConfig(kPorts)->health_checks.interval_ms == 0);  // no probes unless asked

  const std::string path = absl::StrCat("/tmp/dpv2-lb-config-", getpid(), ".yaml");
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f != nullptr);
    std::fputs((kPorts + "kubernetes: {manifests: k8s/services}\n").c_str(), f);
    std::fclose(f);
  }
  absl::StatusOr<LbConfig> loaded = LoadLbConfig(path);
  std::remove(path.c_str());
  REQUIRE(loaded.ok());
  CHECK(loaded->kubernetes.manifests == "/tmp/k8s/services");
}

TEST_CASE("malformed kubernetes and health_checks sections are refused naming the field") {
  CheckRefused({
      {kPorts + "kubernetes: {}",
       "kubernetes: manifests is missing"},
      {kPorts + "kubernetes: {manifests: \"-\"}",
       "kubernetes.manifests: needs a file or directory"},
      {kPorts + "kubernetes: {manifests: a, watch: true}",
       "unknown field \"watch\""},
      {kPorts + "health_checks: {interval_ms: 100, timeout_ms: 0}",
       "health_checks.timeout_ms: 0 is below the minimum 1"},
      {kPorts + "health_checks: {interval_ms: 100, timeout_ms: 500}",
       "health_checks.timeout_ms: 500 is longer than interval_ms 100"},
      {kPorts + "health_checks: {rise: many}",
       "health_checks.rise: \"many\" is not an integer"},
      {kPorts + "health_checks: {fall: 0}",
       "health_checks.fall: 0 is below the minimum 1"},
  });
}

// ---- Kubernetes input ----

// A LoadBalancer Service (ingress 203.0.113.10, Local, ClientIP, a source
// range), its slice (ready, serving+terminating, not ready), an
// externalIPs ClusterIP Service, a plain ClusterIP one and an ExternalName.
constexpr char kManifests[] = R"(
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.10
  externalTrafficPolicy: Local
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 300}}
  loadBalancerSourceRanges: ["198.51.100.0/24"]
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}]
status:
  loadBalancer: {ingress: [{ip: 203.0.113.10}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
  - {addresses: [10.1.0.1], nodeName: n1, conditions: {ready: true}}
  - {addresses: [10.1.0.2], nodeName: n2, conditions: {ready: false, serving: true, terminating: true}}
  - {addresses: [10.1.0.3], nodeName: n2, conditions: {ready: false, serving: false}}
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: shop}
spec:
  clusterIP: 10.96.0.11
  externalIPs: [192.0.2.50]
  ports: [{port: 443}]
---
apiVersion: v1
kind: Service
metadata: {name: internal, namespace: shop}
spec:
  clusterIP: 10.96.0.12
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: alias, namespace: shop}
spec: {type: ExternalName, externalName: example.com}
)";

agent::k8s::ClusterObjects Decode(const std::string& text) {
  agent::k8s::ClusterObjects objects;
  agent::k8s::AddManifestText(text, "test.yaml", &objects);
  return objects;
}

const ServiceSpec* Find(const KubernetesServices& k8s, const std::string& key) {
  for (const ServiceSpec& s : k8s.specs) {
    if (s.Key() == key) {
      return &s;
    }
  }
  return nullptr;
}

// `specs` compiled as the appliance compiles them (a node hosting no pod).
std::unique_ptr<LbState> CompileForBox(const std::vector<ServiceSpec>& specs) {
  absl::StatusOr<LbState> lb = LbState::Create({.maglev_seed = 1});
  REQUIRE(lb.ok());
  REQUIRE(lb->SetNode({.name = "dpv2-lb"}).ok());
  for (const ServiceSpec& s : specs) {
    INFO(s.Key());
    REQUIRE(lb->UpsertService(s).ok());
  }
  return std::make_unique<LbState>(std::move(*lb));
}

TEST_CASE("LoadBalancer and externalIPs Services are served, ClusterIP-only and ExternalName ones are not") {
  KubernetesServices k8s = ServicesForAppliance(Decode(kManifests));
  INFO(absl::StrJoin(k8s.problems, "\n"));
  CHECK(k8s.problems.empty());
  REQUIRE(k8s.specs.size() == 2);
  const ServiceSpec* web = Find(k8s, "shop/web");
  REQUIRE(web != nullptr);
  CHECK(web->load_balancer_ips == std::vector<IpAddr>{*IpAddr::Parse("203.0.113.10")});
  CHECK(web->session_affinity == SessionAffinity::kClientIP);
  CHECK(web->affinity_timeout_s == 300);
  CHECK(web->load_balancer_source_ranges.size() == 1);
  // The box forwards to pods directly and keeps the client address: Local is served as Cluster.
  CHECK(web->external_traffic_policy == TrafficPolicy::kCluster);
  REQUIRE(web->endpoint_slices.size() == 1);
  CHECK(web->endpoint_slices[0].endpoints.size() == 3);
  REQUIRE(Find(k8s, "shop/ext") != nullptr);
  CHECK(FrontendAddresses(k8s.specs) ==
        std::vector<IpAddr>{*IpAddr::Parse("192.0.2.50"), *IpAddr::Parse("203.0.113.10")});
}

TEST_CASE("the LB frontend selects ready endpoints only, keeps the others' backend records, and NodePorts need node addresses the box has not") {
  KubernetesServices k8s = ServicesForAppliance(Decode(kManifests));
  std::unique_ptr<LbState> lb = CompileForBox(k8s.specs);
  bool saw_lb = false;
  for (const FrontendView& f : lb->Frontends()) {
    CHECK(f.kind != FrontendKind::kNodePort);
    if (f.kind == FrontendKind::kLoadBalancer && f.service == "shop/web") {
      saw_lb = true;
      CHECK(f.address == *IpAddr::Parse("203.0.113.10"));
      CHECK(f.port == 80);
      CHECK(f.backends == std::vector<std::string>{"10.1.0.1:8080"});
      CHECK((f.flags & DPV2_LB_F_SOURCE_RANGES) != 0);
      CHECK((f.flags & DPV2_LB_F_LOCAL) == 0);
    }
  }
  CHECK(saw_lb);
  // Every endpoint's backend stays known, so established flows keep it.
  std::set<std::string> backends;
  for (const BackendView& b : lb->Backends()) {
    backends.insert(absl::StrCat(b.address.ToString(), ":", b.port));
  }
  CHECK(backends.count("10.1.0.2:8080") == 1);
  CHECK(backends.count("10.1.0.3:8080") == 1);
}

TEST_CASE("spec.loadBalancerIP is the LB address while the status has none; the status wins once set") {
  const std::string base = R"(
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.10
  loadBalancerIP: 203.0.113.20
  ports: [{port: 80}]
)";
  KubernetesServices only_spec = ServicesForAppliance(Decode(base));
  REQUIRE(only_spec.specs.size() == 1);
  CHECK(only_spec.specs[0].load_balancer_ips == std::vector<IpAddr>{*IpAddr::Parse("203.0.113.20")});
  KubernetesServices with_status =
      ServicesForAppliance(Decode(base + "status: {loadBalancer: {ingress: [{ip: 203.0.113.21}]}}\n"));
  REQUIRE(with_status.specs.size() == 1);
  CHECK(with_status.specs[0].load_balancer_ips ==
        std::vector<IpAddr>{*IpAddr::Parse("203.0.113.21")});
  // A pending LoadBalancer (no status, no loadBalancerIP) has no frontend on the box yet.
  CHECK(ServicesForAppliance(Decode(R"(
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {type: LoadBalancer, clusterIP: 10.96.0.10, ports: [{port: 80}]}
)")).specs.empty());
}

TEST_CASE("malformed Kubernetes objects are reported and left out, the valid ones around them are served") {
  KubernetesServices k8s = ServicesForAppliance(Decode(std::string(kManifests) + R"(
---
apiVersion: v1
kind: Service
metadata: {name: broken, namespace: shop}
spec:
  type: LoadBalancer
  clusterIP: 10.96.0.20
  loadBalancerSourceRanges: ["not-a-cidr"]
  ports: [{port: 80}]
status: {loadBalancer: {ingress: [{ip: 203.0.113.30}]}}
---
apiVersion: v1
kind: Service
metadata: {name: wrongtype, namespace: shop}
spec: {clusterIP: 10.96.0.21, loadBalancerIP: 203.0.113.31, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: shop}
spec: {clusterIP: None, externalIPs: [192.0.2.60], ports: [{port: 80}]}
---
- this is not an object
)"));
  const std::string problems = absl::StrJoin(k8s.problems, "\n");
  INFO(problems);
  CHECK_THAT(problems, Catch::Contains("Service shop/broken") &&
                           Catch::Contains("loadBalancerSourceRanges[0]"));
  CHECK_THAT(problems, Catch::Contains("Service shop/wrongtype") &&
                           Catch::Contains("spec.loadBalancerIP: Forbidden"));
  CHECK_THAT(problems, Catch::Contains("Service shop/headless: headless"));
  CHECK(Find(k8s, "shop/broken") == nullptr);
  CHECK(Find(k8s, "shop/web") != nullptr);
  CHECK(Find(k8s, "shop/ext") != nullptr);
}

// Runs one TCP SYN from `client` to the LB IP through a sim datapath holding
// `k8s`'s Services as the appliance compiles them.
PacketOutcome SynToWeb(const KubernetesServices& k8s, const std::string& client) {
  std::unique_ptr<LbState> lb = CompileForBox(k8s.specs);
  auto sim = MakeSimBackend({});
  REQUIRE(sim.ok());
  REQUIRE((*sim)->Apply(lb->Diff()).ok());
  absl::StatusOr<PacketOutcome> out = (*sim)->RunPacket(
      {.entry = Entry::kFromNetwork,
       .ifindex = 1,
       .frame = PacketBuilder().IPv4(client, "203.0.113.10").Tcp(40000, 80, kTcpSyn).Build()});
  REQUIRE(out.ok());
  return *out;
}

TEST_CASE("loadBalancerSourceRanges are enforced by the core datapath at the LB IP") {
  KubernetesServices k8s = ServicesForAppliance(Decode(kManifests));
  const PacketOutcome inside = SynToWeb(k8s, "198.51.100.7");
  CHECK(inside.verdict == Verdict::kPass);
  REQUIRE(inside.outputs.size() == 1);
  ParseResult r = ParsePacket(inside.outputs[0].frame);
  CHECK(r.pkt.tuple().dst == *IpAddr::Parse("10.1.0.1"));  // the only ready endpoint
  const PacketOutcome outside = SynToWeb(k8s, "192.0.2.7");
  CHECK(outside.verdict == Verdict::kDrop);
  CHECK(outside.drop_reason == DPV2_DROP_SOURCE_RANGE);
}

// ---- Health checks ----

const HealthTarget kA{.address = *IpAddr::Parse("10.0.1.1"), .port = 8080};
const HealthTarget kB{.address = *IpAddr::Parse("fd00::1"), .port = 80};

TEST_CASE("a backend goes down after `fall` failed probes in a row and up after `rise` successes") {
  HealthTable table(/*rise=*/2, /*fall=*/3);
  table.SetTargets({kA, kB});
  CHECK(table.Down().empty());  // new targets start up
  CHECK_FALSE(table.Record(kA, false));
  CHECK_FALSE(table.Record(kA, false));
  CHECK_FALSE(table.Record(kA, true));  // a success breaks the streak
  CHECK_FALSE(table.Record(kA, false));
  CHECK_FALSE(table.Record(kA, false));
  CHECK(table.Record(kA, false));  // the third in a row
  CHECK(table.Down() == std::set<HealthTarget>{kA});
  CHECK_FALSE(table.Record(kA, true));
  CHECK_FALSE(table.Record(kA, false));  // a failure breaks the rise streak
  CHECK_FALSE(table.Record(kA, true));
  CHECK(table.Record(kA, true));
  CHECK(table.Down().empty());
  CHECK_FALSE(table.Record({.address = *IpAddr::Parse("10.9.9.9"), .port = 1}, false));  // unknown
}

TEST_CASE("targets that stay keep their health state across SetTargets, removed ones are forgotten") {
  HealthTable table(1, 1);
  table.SetTargets({kA, kB});
  CHECK(table.Record(kA, false));
  CHECK(table.Record(kB, false));
  table.SetTargets({kA});
  CHECK(table.Down() == std::set<HealthTarget>{kA});
  table.SetTargets({kA, kB});
  CHECK(table.Down() == std::set<HealthTarget>{kA});  // kB came back as new: up
  CHECK(kB.ToString() == "[fd00::1]:80");
  CHECK(kA.ToString() == "10.0.1.1:8080");
}

TEST_CASE("health targets are the selectable TCP backends; an unhealthy one is left unready on its port only") {
  std::vector<ServiceSpec> specs = ServicesForAppliance(Decode(kManifests)).specs;
  ServiceSpec two_ports{.namespace_name = "shop", .name = "mail", .cluster_ips = {*IpAddr::Parse("10.96.0.30")},
                        .external_ips = {*IpAddr::Parse("192.0.2.70")}};
  two_ports.ports = {{.name = "smtp", .port = 25}, {.name = "dns", .protocol = L4Proto::kUDP, .port = 53},
                     {.name = "imap", .port = 143}};
  two_ports.endpoint_slices.push_back(
      {.name = "mail-1",
       .ports = {{.name = "smtp", .port = 2525}, {.name = "dns", .protocol = L4Proto::kUDP, .port = 5353},
                 {.name = "imap", .port = 1143}},
       .endpoints = {{.addresses = {*IpAddr::Parse("10.2.0.1")}}}});
  specs.push_back(two_ports);
  const std::vector<HealthTarget> targets = HealthTargets(specs);
  std::vector<std::string> names;
  for (const HealthTarget& t : targets) {
    names.push_back(t.ToString());
  }
  // 10.1.0.3 is neither ready nor serving; UDP 5353 is not probed.
  CHECK(names == std::vector<std::string>{"10.1.0.1:8080", "10.1.0.2:8080", "10.2.0.1:1143",
                                          "10.2.0.1:2525"});

  MarkUnhealthy({{.address = *IpAddr::Parse("10.2.0.1"), .port = 2525}}, &specs);
  const ServiceSpec& mail = specs.back();
  REQUIRE(mail.endpoint_slices.size() == 3);  // one slice per port now
  for (const EndpointSliceSpec& slice : mail.endpoint_slices) {
    REQUIRE(slice.ports.size() == 1);
    INFO(slice.name);
    CHECK(slice.endpoints.at(0).conditions.IsReady() == (slice.ports[0].port != 2525));
    CHECK(slice.endpoints.at(0).conditions.IsServing() == (slice.ports[0].port != 2525));
  }
  std::unique_ptr<LbState> lb = CompileForBox({mail});
  std::map<std::string, std::vector<std::string>> selected;
  for (const FrontendView& f : lb->Frontends()) {
    if (f.kind == FrontendKind::kExternalIP) {
      selected[f.port_name] = f.backends;
    }
  }
  CHECK(selected["smtp"].empty());  // no new flows
  CHECK(selected["imap"] == std::vector<std::string>{"10.2.0.1:1143"});
  CHECK(selected["dns"] == std::vector<std::string>{"10.2.0.1:5353"});
  bool smtp_backend_kept = false;  // established flows keep it
  for (const BackendView& b : lb->Backends()) {
    smtp_backend_kept = smtp_backend_kept || b.port == 2525;
  }
  CHECK(smtp_backend_kept);
}

// A TCP listener on 127.0.0.1 (an ephemeral port), closed when destroyed.
class Listener {
 public:
  explicit Listener(uint16_t port = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in sa{.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&sa), len) != 0 || listen(fd_, 16) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
      close(fd_);
      fd_ = -1;
      return;
    }
    port_ = ntohs(sa.sin_port);
  }
  ~Listener() {
    if (fd_ >= 0) {
      close(fd_);
    }
  }
  bool ok() const { return fd_ >= 0; }
  HealthTarget target() const { return {.address = *IpAddr::Parse("127.0.0.1"), .port = port_}; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

TEST_CASE("a TCP connect probe succeeds on a listening port and fails on a closed one") {
  auto open = std::make_unique<Listener>();
  REQUIRE(open->ok());
  HealthTarget closed;
  {
    Listener gone;
    REQUIRE(gone.ok());
    closed = gone.target();
  }
  const std::vector<bool> ok = ProbeTcp({open->target(), closed}, absl::Milliseconds(500));
  CHECK(ok == std::vector<bool>{true, false});
  CHECK(ProbeTcp({}, absl::Milliseconds(10)).empty());
}

TEST_CASE("the health checker marks a backend down when it stops listening and up when it listens again") {
  auto listener = std::make_unique<Listener>();
  REQUIRE(listener->ok());
  const HealthTarget target = listener->target();
  HealthChecker checker({.interval_ms = 30, .timeout_ms = 20, .rise = 2, .fall = 2});
  checker.SetTargets({target});
  auto wait_for = [&](bool down) {
    for (int i = 0; i < 100; ++i) {
      if ((checker.Down().count(target) != 0) == down) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  CHECK(checker.Down().empty());
  const uint64_t changes = checker.changes();
  listener.reset();
  CHECK(wait_for(true));
  CHECK(checker.changes() == changes + 1);
  listener = std::make_unique<Listener>(target.port);
  REQUIRE(listener->ok());
  CHECK(wait_for(false));
  CHECK(checker.changes() == changes + 2);
  CHECK(checker.States().at(target));
}

// ---- ARP and neighbour discovery for the VIPs (the worker's replies) ----

const std::array<uint8_t, 6> kBoxMac = {0x02, 0xbb, 0, 0, 0, 1};
const std::array<uint8_t, 6> kAskerMac = {0x02, 0xaa, 0, 0, 0, 9};

// An Ethernet ARP request from 10.0.0.9 (kAskerMac) for `target`.
std::vector<uint8_t> ArpRequest(const std::string& target, bool vlan = false) {
  std::vector<uint8_t> f = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  f.insert(f.end(), kAskerMac.begin(), kAskerMac.end());
  if (vlan) {
    f.insert(f.end(), {0x81, 0x00, 0x00, 0x0a});
  }
  f.insert(f.end(), {0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01});
  f.insert(f.end(), kAskerMac.begin(), kAskerMac.end());
  f.insert(f.end(), {10, 0, 0, 9, 0, 0, 0, 0, 0, 0});
  const IpAddr t = *IpAddr::Parse(target);
  f.insert(f.end(), t.bytes().begin(), t.bytes().begin() + 4);
  return f;
}

TEST_CASE("an ARP request for a VIP gets a reply from the port's MAC, others get none") {
  dpdk::NeighborAnswers answers({*IpAddr::Parse("10.0.0.100"), *IpAddr::Parse("fd00::100")});
  std::optional<std::vector<uint8_t>> reply = answers.Reply(ArpRequest("10.0.0.100"), kBoxMac);
  REQUIRE(reply.has_value());
  const std::vector<uint8_t>& r = *reply;
  REQUIRE(r.size() == 42);
  CHECK(std::equal(kAskerMac.begin(), kAskerMac.end(), r.begin()));       // eth dst
  CHECK(std::equal(kBoxMac.begin(), kBoxMac.end(), r.begin() + 6));       // eth src
  CHECK((r[20] == 0 && r[21] == 2));                                      // oper reply
  CHECK(std::equal(kBoxMac.begin(), kBoxMac.end(), r.begin() + 22));      // sha
  CHECK(std::vector<uint8_t>(r.begin() + 28, r.begin() + 32) == std::vector<uint8_t>{10, 0, 0, 100});
  CHECK(std::equal(kAskerMac.begin(), kAskerMac.end(), r.begin() + 32));  // tha
  CHECK(std::vector<uint8_t>(r.begin() + 38, r.begin() + 42) == std::vector<uint8_t>{10, 0, 0, 9});

  std::optional<std::vector<uint8_t>> tagged = answers.Reply(ArpRequest("10.0.0.100", true), kBoxMac);
  REQUIRE(tagged.has_value());
  CHECK(tagged->size() == 46);
  CHECK(((*tagged)[12] == 0x81 && (*tagged)[15] == 0x0a));  // the tag is kept

  CHECK_FALSE(answers.Reply(ArpRequest("10.0.0.101"), kBoxMac).has_value());  // not a VIP
  std::vector<uint8_t> gratuitous = ArpRequest("10.0.0.100");
  std::copy_n(gratuitous.end() - 4, 4, gratuitous.begin() + 28);  // spa == tpa
  CHECK_FALSE(answers.Reply(gratuitous, kBoxMac).has_value());
  std::vector<uint8_t> is_reply = ArpRequest("10.0.0.100");
  is_reply[21] = 2;
  CHECK_FALSE(answers.Reply(is_reply, kBoxMac).has_value());
  std::vector<uint8_t> runt = ArpRequest("10.0.0.100");
  runt.resize(40);
  CHECK_FALSE(answers.Reply(runt, kBoxMac).has_value());
  CHECK_FALSE(answers.Reply(std::vector<uint8_t>(10, 0), kBoxMac).has_value());
  CHECK_FALSE(dpdk::NeighborAnswers({}).Reply(ArpRequest("10.0.0.100"), kBoxMac).has_value());
}

// A neighbour solicitation from `src` for `target` with a source link-layer option.
PacketBuilder Solicitation(const std::string& src, const std::string& target) {
  std::vector<uint8_t> body(IpAddr::Parse(target)->bytes().begin(),
                            IpAddr::Parse(target)->bytes().end());
  body.insert(body.end(), {1, 1});
  body.insert(body.end(), kAskerMac.begin(), kAskerMac.end());
  return PacketBuilder()
      .Eth(kAskerMac, {0x33, 0x33, 0xff, 0, 1, 0})
      .IPv6(src, "ff02::1:ff00:100")
      .Ttl(255)
      .Icmp(135, 0)
      .Payload(body);
}

TEST_CASE("a neighbour solicitation for a VIP gets a solicited advertisement with a valid checksum") {
  dpdk::NeighborAnswers answers({*IpAddr::Parse("fd00::100")});
  std::optional<std::vector<uint8_t>> reply =
      answers.Reply(Solicitation("fd00::9", "fd00::100").Build(), kBoxMac);
  REQUIRE(reply.has_value());
  ParseResult parsed = ParsePacket(*reply);
  REQUIRE(parsed.drop == DPV2_DROP_NONE);
  const std::vector<uint8_t>& r = *reply;
  REQUIRE(r.size() == 14 + 40 + 32);
  CHECK(std::equal(kAskerMac.begin(), kAskerMac.end(), r.begin()));
  CHECK(std::equal(kBoxMac.begin(), kBoxMac.end(), r.begin() + 6));
  CHECK(parsed.pkt.tuple().src == *IpAddr::Parse("fd00::100"));
  CHECK(parsed.pkt.tuple().dst == *IpAddr::Parse("fd00::9"));
  CHECK(r[14 + 7] == 255);  // hop limit
  const uint8_t* na = r.data() + 54;
  CHECK(na[0] == 136);
  CHECK(na[4] == 0x60);  // solicited, override
  CHECK(IpAddr::V6Bytes(na + 8) == *IpAddr::Parse("fd00::100"));
  CHECK((na[24] == 2 && na[25] == 1));
  CHECK(std::equal(kBoxMac.begin(), kBoxMac.end(), na + 26));
  CHECK(InternetChecksum(absl::MakeConstSpan(na, 32),
                         PseudoHeaderSum(*IpAddr::Parse("fd00::100"), *IpAddr::Parse("fd00::9"),
                                         58, 32)) == 0);

  // Duplicate address detection (from ::) is answered to all nodes, unsolicited.
  std::optional<std::vector<uint8_t>> dad =
      answers.Reply(Solicitation("::", "fd00::100").Build(), kBoxMac);
  REQUIRE(dad.has_value());
  CHECK(ParsePacket(*dad).pkt.tuple().dst == *IpAddr::Parse("ff02::1"));
  CHECK(((*dad)[0] == 0x33 && (*dad)[5] == 1));
  CHECK((*dad)[54 + 4] == 0x20);

  CHECK_FALSE(answers.Reply(Solicitation("fd00::9", "fd00::101").Build(), kBoxMac).has_value());
  CHECK_FALSE(answers.Reply(Solicitation("fd00::9", "fd00::100").Ttl(64).Build(), kBoxMac)
                  .has_value());  // off-link: hop limit not 255
  CHECK_FALSE(answers.Reply(Solicitation("fd00::9", "fd00::100").BadChecksum().Build(), kBoxMac)
                  .has_value());
  std::vector<uint8_t> cut = Solicitation("fd00::9", "fd00::100").Build();
  cut.resize(14 + 40 + 20);
  CHECK_FALSE(answers.Reply(cut, kBoxMac).has_value());
  CHECK_FALSE(answers.Reply(PacketBuilder().IPv6("fd00::9", "fd00::100").Ttl(255).Icmp(128, 0).Build(),
                            kBoxMac)
                  .has_value());  // an echo request is the datapath's
}

}  // namespace
}  // namespace dpv2::lb
