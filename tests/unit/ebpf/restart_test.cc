// Restart adoption over pinned maps: an agent's backend instance goes away,
// a new one opens the same pins, dumps them (the Maglev tables of every size
// class included), and fresh LbState/PolicyState adopt the dump; a restart
// with other map sizes, a larger maglev_table_size or an older conntrack
// layout migrates the pins. Each case pins on a bpffs of its own in a
// Sandbox (sandbox.h). Needs root and BPF: exits 77 (skip) otherwise, unless
// CI=true (ebpf_test_main.cc).
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"

#include "core/datapath/datapath_tables.h"
#include "dpv2/ebpf.h"
#include "dpv2/lb_state.h"
#include "dpv2/packet.h"
#include "dpv2/policy_state.h"
#include "sandbox.h"

namespace dpv2 {
namespace {

IpAddr Ip(const char* s) { return *IpAddr::Parse(s); }

DatapathConfig Config() {
  return {.maglev_table_size = 251, .max_services = 256, .max_backends = 256, .max_tables = 256,
          .ct_tcp_entries = 4096, .ct_other_entries = 4096, .max_affinity = 256,
          .max_source_ranges = 64, .max_endpoints = 64, .max_ipcache = 256,
          .max_policy_entries = 1024};
}

constexpr uint32_t kPodIfindex = 11;

// Config() with tables of three size classes: 251, 509 and 1,021 slots
// (2, 3-5 and 6-10 backends at 100 slots a backend).
DatapathConfig ClassesConfig() {
  DatapathConfig c = Config();
  c.maglev_table_size = 1021;
  return c;
}

ServiceSpec Web(int backends, const char* name = "web", const char* cluster_ip = "10.96.0.10") {
  ServiceSpec s{.namespace_name = "default", .name = name, .cluster_ips = {Ip(cluster_ip)}};
  s.ports.push_back({.name = "http", .port = 80});
  EndpointSliceSpec slice{.name = "web-1", .address_type = Family::kV4};
  slice.ports.push_back({.name = "http", .protocol = L4Proto::kTCP, .port = 8080});
  for (int i = 1; i <= backends; ++i) {
    EndpointSpec e{.addresses = {Ip(("10.0.2." + std::to_string(i)).c_str())},
                   .node_name = "node-b"};
    e.conditions.ready = true;
    slice.endpoints.push_back(e);
  }
  s.endpoint_slices.push_back(std::move(slice));
  return s;
}

LbState NewLb(const std::vector<ServiceSpec>& services, const DatapathConfig& config = Config()) {
  absl::StatusOr<LbState> lb = LbState::Create({.datapath = config, .maglev_seed = 5});
  REQUIRE(lb.ok());
  REQUIRE(lb->SetNode({.name = "node-a", .addresses = {Ip("192.168.1.10")}}).ok());
  for (const ServiceSpec& s : services) {
    REQUIRE(lb->UpsertService(s).ok());
  }
  return *std::move(lb);
}

// One local client pod and a policy isolating it for egress to the Service's
// backends only: endpoints, ipcache and policy entries in the maps.
void GivePolicy(PolicyState& p) {
  REQUIRE(p.SetNamespace({.name = "default"}).ok());
  NetworkPolicy np{.metadata = {.name = "egress", .namespace_name = "default"}};
  np.spec.policy_types = std::vector<PolicyType>{PolicyType::kEgress};
  np.spec.egress.push_back({.to = {{.ip_block = IPBlock{.cidr = "10.0.2.0/24"}}}});
  REQUIRE(p.SetNetworkPolicy(np).ok());
  REQUIRE(p.SetPod({.namespace_name = "default", .name = "client", .labels = {{"app", "c"}},
                    .ips = {Ip("10.0.1.5")}, .node_name = "node-a"},
                   LocalEndpoint{.ifindex = kPodIfindex}).ok());
}

std::unique_ptr<Backend> Open(const std::string& pin, const DatapathConfig& config = Config()) {
  absl::StatusOr<std::unique_ptr<Backend>> b = MakeEbpfBackend({.config = config,
                                                                .pin_path = pin});
  INFO(b.status());
  REQUIRE(b.ok());
  return *std::move(b);
}

IpAddr Send(Backend& b, uint8_t flags, uint32_t seq, const char* vip = "10.96.0.10",
            uint16_t sport = 40000) {
  absl::StatusOr<PacketOutcome> out = b.RunPacket(
      {.entry = Entry::kFromPod,
       .ifindex = kPodIfindex,
       .frame = PacketBuilder().IPv4("10.0.1.5", vip).Tcp(sport, 80, flags).Seq(seq).Build()});
  INFO(out.status());
  REQUIRE(out.ok());
  REQUIRE(out->verdict == Verdict::kPass);
  REQUIRE(out->outputs.size() == 1);
  return ParsePacket(out->outputs[0].frame).pkt.dst;
}

// A private network and mount namespace with a bpffs of its own for the
// case: unmounted and left even when a check fails.
std::unique_ptr<testing::Sandbox> EnterSandbox() {
  absl::StatusOr<std::unique_ptr<testing::Sandbox>> box = testing::Sandbox::Enter();
  INFO(box.status().ToString());
  REQUIRE(box.ok());
  return *std::move(box);
}

bpf_map_info PinnedInfo(const std::string& path) {
  const int fd = bpf_obj_get(path.c_str());
  REQUIRE(fd >= 0);
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  REQUIRE(bpf_obj_get_info_by_fd(fd, &info, &len) == 0);
  close(fd);
  return info;
}

size_t PinnedEntries(const std::string& path) {
  const int fd = bpf_obj_get(path.c_str());
  REQUIRE(fd >= 0);
  size_t n = 0;
  uint32_t key = 0, next = 0;  // lookup-table maps: 4-byte keys
  for (void* prev = nullptr; bpf_map_get_next_key(fd, prev, &next) == 0; key = next, prev = &key) {
    ++n;
  }
  close(fd);
  return n;
}

// Replaces the pinned map at `path` by one of the same type, key and size
// whose values are `value_size` bytes: each entry's first bytes, as a build
// with a shorter value layout would have left them.
void RepinWithValueSize(const std::string& path, uint32_t value_size) {
  const int fd = bpf_obj_get(path.c_str());
  REQUIRE(fd >= 0);
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  REQUIRE(bpf_obj_get_info_by_fd(fd, &info, &len) == 0);
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = info.map_flags);
  const int shorter = bpf_map_create(static_cast<bpf_map_type>(info.type), info.name,
                                     info.key_size, value_size, info.max_entries, &opts);
  REQUIRE(shorter >= 0);
  std::vector<uint8_t> key(info.key_size), next(info.key_size), value(info.value_size);
  for (void* prev = nullptr; bpf_map_get_next_key(fd, prev, next.data()) == 0;
       key = next, prev = key.data()) {
    REQUIRE(bpf_map_lookup_elem(fd, next.data(), value.data()) == 0);
    REQUIRE(bpf_map_update_elem(shorter, next.data(), value.data(), BPF_ANY) == 0);
  }
  REQUIRE(unlink(path.c_str()) == 0);
  REQUIRE(bpf_obj_pin(shorter, path.c_str()) == 0);
  close(shorter);
  close(fd);
}

TEST_CASE("an agent restarted over pinned maps adopts them: nothing to apply, and the "
          "connection keeps its backend") {
  std::unique_ptr<testing::Sandbox> box = EnterSandbox();
  const std::string pin = box->bpffs() + "/node";

  ChangeBatch applied;
  IpAddr chosen;
  {
    std::unique_ptr<Backend> first = Open(pin);
    LbState lb = NewLb({Web(3)});
    PolicyState policy({.node_name = "node-a"});
    GivePolicy(policy);
    applied = lb.Diff();
    applied.Append(policy.Diff());
    REQUIRE(first->Apply(applied).ok());
    chosen = Send(*first, kTcpSyn, 1000);
  }  // the agent's process is gone; the pinned maps stay

  std::unique_ptr<Backend> second = Open(pin);
  absl::StatusOr<ChangeBatch> dump = second->DumpState();
  INFO(dump.status());
  REQUIRE(dump.ok());
  SortBatch(&applied);
  REQUIRE(dump->tables_upsert.size() == applied.tables_upsert.size());
  CHECK(dump->tables_upsert[0].slots == applied.tables_upsert[0].slots);
  CHECK(dump->backends_upsert.size() == applied.backends_upsert.size());
  CHECK(dump->services_upsert.size() == applied.services_upsert.size());
  CHECK(dump->endpoints_upsert.size() == applied.endpoints_upsert.size());
  CHECK(dump->ipcache_upsert.size() == applied.ipcache_upsert.size());
  CHECK(dump->policy_upsert.size() == applied.policy_upsert.size());

  // The same objects, given in another order with a backend added while the
  // agent was down.
  LbState lb = NewLb({Web(4)});
  REQUIRE(lb.Adopt(*dump).ok());
  PolicyState policy({.node_name = "node-a"});
  REQUIRE(policy.Adopt(*dump).ok());
  GivePolicy(policy);
  CHECK(policy.Diff().empty());
  const ChangeBatch diff = lb.Diff();
  INFO(diff.Summary());
  CHECK(diff.backends_upsert.size() == 1);
  CHECK(diff.backends_delete.empty());
  CHECK(diff.tables_upsert.size() == 1);
  CHECK(diff.services_upsert.size() == 1);
  REQUIRE(second->Apply(diff).ok());
  lb.Acknowledge(diff);
  CHECK(lb.Diff().empty());
  for (uint32_t seq : {1001u, 1101u}) {
    CHECK(Send(*second, kTcpAck, seq) == chosen);
  }
}

TEST_CASE("a restart that resizes the conntrack maps, over entries of the older 72-byte "
          "layout, migrates every entry: the connection keeps its entry and its backend") {
  std::unique_ptr<testing::Sandbox> box = EnterSandbox();
  const std::string pin = box->bpffs() + "/node";
  std::vector<ConntrackEntry> before;
  IpAddr chosen;
  {
    std::unique_ptr<Backend> first = Open(pin);
    LbState lb = NewLb({Web(3)});
    PolicyState policy({.node_name = "node-a"});
    GivePolicy(policy);  // the client pod's endpoint
    ChangeBatch batch = lb.Diff();
    batch.Append(policy.Diff());
    REQUIRE(first->Apply(batch).ok());
    chosen = Send(*first, kTcpSyn, 1000);
    absl::StatusOr<std::vector<ConntrackEntry>> ct = first->DumpConntrack();
    REQUIRE(ct.ok());
    before = *std::move(ct);
    REQUIRE(!before.empty());
  }
  constexpr uint32_t kOldValueSize = 72;  // before revision and in_ifindex
  RepinWithValueSize(pin + "/dpv2_ct_tcp", kOldValueSize);

  DatapathConfig bigger = Config();
  bigger.ct_tcp_entries *= 2;
  std::unique_ptr<Backend> second = Open(pin, bigger);
  const bpf_map_info migrated = PinnedInfo(pin + "/dpv2_ct_tcp");
  CHECK(migrated.value_size == sizeof(dpv2_ct_value));
  CHECK(migrated.max_entries == bigger.ct_tcp_entries);
  absl::StatusOr<std::vector<ConntrackEntry>> after = second->DumpConntrack();
  REQUIRE(after.ok());
  REQUIRE(after->size() == before.size());
  auto by_key = [](const ConntrackEntry& a, const ConntrackEntry& b) {
    return memcmp(&a.key, &b.key, sizeof(a.key)) < 0;
  };
  std::sort(before.begin(), before.end(), by_key);
  std::sort(after->begin(), after->end(), by_key);
  const uint8_t zeros[sizeof(dpv2_ct_value) - kOldValueSize] = {};
  for (size_t i = 0; i < before.size(); ++i) {
    CHECK(memcmp(&before[i].key, &(*after)[i].key, sizeof(dpv2_ct_key)) == 0);
    const auto* old_value = reinterpret_cast<const uint8_t*>(&before[i].value);
    const auto* new_value = reinterpret_cast<const uint8_t*>(&(*after)[i].value);
    CHECK(memcmp(old_value, new_value, kOldValueSize) == 0);
    CHECK(memcmp(new_value + kOldValueSize, zeros, sizeof(zeros)) == 0);
  }

  // The same Service (Maglev would pick the same backend for a new
  // connection too, so the entry count shows the packet found the old one).
  LbState lb = NewLb({Web(3)});
  absl::StatusOr<ChangeBatch> dump = second->DumpState();
  REQUIRE(dump.ok());
  REQUIRE(lb.Adopt(*dump).ok());
  CHECK(lb.Diff().empty());
  CHECK(dump->endpoints_upsert.size() == 1);
  CHECK(Send(*second, kTcpAck, 1001) == chosen);
  absl::StatusOr<std::vector<ConntrackEntry>> later = second->DumpConntrack();
  REQUIRE(later.ok());
  CHECK(later->size() == before.size());
}

TEST_CASE("a pinned map this build cannot migrate (another value layout) fails the load with "
          "its name, and no pin moves") {
  std::unique_ptr<testing::Sandbox> box = EnterSandbox();
  const std::string pin = box->bpffs() + "/node";
  { Open(pin); }
  RepinWithValueSize(pin + "/dpv2_backends", 8);
  const uint32_t ct_id = PinnedInfo(pin + "/dpv2_ct_tcp").id;

  DatapathConfig bigger = Config();
  bigger.ct_tcp_entries *= 2;  // would migrate, if the load could go on
  absl::StatusOr<std::unique_ptr<Backend>> refused =
      MakeEbpfBackend({.config = bigger, .pin_path = pin});
  REQUIRE_FALSE(refused.ok());
  INFO(refused.status());
  CHECK(absl::StrContains(refused.status().message(), "dpv2_backends"));
  CHECK(absl::StrContains(refused.status().message(), "value size 8"));
  CHECK(PinnedInfo(pin + "/dpv2_ct_tcp").id == ct_id);
  CHECK(PinnedInfo(pin + "/dpv2_backends").value_size == 8);
}

TEST_CASE("an agent restarted over tables in three size classes adopts them all: nothing to "
          "apply, each connection keeps its backend, and new ones are served") {
  std::unique_ptr<testing::Sandbox> box = EnterSandbox();
  const std::string pin = box->bpffs() + "/node";
  const DatapathConfig config = ClassesConfig();
  const std::vector<ServiceSpec> services = {Web(2, "small", "10.96.0.11"),
                                             Web(4, "medium", "10.96.0.12"),
                                             Web(8, "large", "10.96.0.13")};
  const char* vips[] = {"10.96.0.11", "10.96.0.12", "10.96.0.13"};
  std::vector<IpAddr> chosen;
  {
    std::unique_ptr<Backend> first = Open(pin, config);
    LbState lb = NewLb(services, config);
    PolicyState policy({.node_name = "node-a"});
    GivePolicy(policy);
    ChangeBatch batch = lb.Diff();
    batch.Append(policy.Diff());
    REQUIRE(first->Apply(batch).ok());
    for (const char* vip : vips) {
      chosen.push_back(Send(*first, kTcpSyn, 1000, vip));
    }
  }
  for (const char* map : {"/dpv2_tables_0", "/dpv2_tables_1", "/dpv2_tables_2"}) {
    INFO(map);
    CHECK(PinnedEntries(pin + map) == 1);
  }

  std::unique_ptr<Backend> second = Open(pin, config);
  absl::StatusOr<ChangeBatch> dump = second->DumpState();
  INFO(dump.status());
  REQUIRE(dump.ok());
  std::vector<size_t> sizes;
  for (const LookupTable& t : dump->tables_upsert) {
    sizes.push_back(t.slots.size());
  }
  std::sort(sizes.begin(), sizes.end());
  CHECK(sizes == std::vector<size_t>{251, 509, 1021});
  LbState lb = NewLb(services, config);
  REQUIRE(lb.Adopt(*dump).ok());
  PolicyState policy({.node_name = "node-a"});
  REQUIRE(policy.Adopt(*dump).ok());
  GivePolicy(policy);
  CHECK(policy.Diff().empty());
  INFO(lb.Diff().Summary());
  CHECK(lb.Diff().empty());
  for (size_t i = 0; i < chosen.size(); ++i) {
    INFO(vips[i]);
    CHECK(Send(*second, kTcpAck, 1001, vips[i]) == chosen[i]);
    Send(*second, kTcpSyn, 2000, vips[i], 40001);  // a new connection, from its class map
  }
}

TEST_CASE("a restart that raises maglev_table_size migrates the class maps that grow: the "
          "connection keeps its backend and the Service's larger table fits") {
  std::unique_ptr<testing::Sandbox> box = EnterSandbox();
  const std::string pin = box->bpffs() + "/node";
  IpAddr chosen;
  {
    std::unique_ptr<Backend> first = Open(pin);  // cap 251: every table in class 0
    LbState lb = NewLb({Web(4)});
    PolicyState policy({.node_name = "node-a"});
    GivePolicy(policy);
    ChangeBatch batch = lb.Diff();
    batch.Append(policy.Diff());
    REQUIRE(first->Apply(batch).ok());
    chosen = Send(*first, kTcpSyn, 1000);
  }
  CHECK(PinnedInfo(pin + "/dpv2_tables_1").value_size == sizeof(uint32_t));  // holds nothing

  std::unique_ptr<Backend> second = Open(pin, ClassesConfig());
  const bpf_map_info grown = PinnedInfo(pin + "/dpv2_tables_1");
  CHECK(grown.value_size == (509 + 1) * sizeof(uint32_t));
  CHECK(grown.max_entries == ClassesConfig().max_tables);
  CHECK(PinnedInfo(pin + "/dpv2_tables_0").value_size == (251 + 1) * sizeof(uint32_t));
  absl::StatusOr<ChangeBatch> dump = second->DumpState();
  REQUIRE(dump.ok());
  LbState lb = NewLb({Web(4)}, ClassesConfig());
  REQUIRE(lb.Adopt(*dump).ok());
  PolicyState policy({.node_name = "node-a"});
  REQUIRE(policy.Adopt(*dump).ok());
  GivePolicy(policy);
  const ChangeBatch diff = lb.Diff();
  INFO(diff.Summary());
  REQUIRE(diff.tables_upsert.size() == 1);
  CHECK(diff.tables_upsert[0].slots.size() == 509);  // 4 backends x 100 slots
  REQUIRE(second->Apply(diff).ok());
  CHECK(Send(*second, kTcpAck, 1001) == chosen);
  CHECK(PinnedEntries(pin + "/dpv2_tables_1") == 1);
}

TEST_CASE("a pin of the one lookup-table map of builds before size classes fails the load naming "
          "it and the services pin, and no pin moves") {
  std::unique_ptr<testing::Sandbox> box = EnterSandbox();
  const std::string pin = box->bpffs() + "/node";
  { Open(pin); }
  // What an older build left beside the other pins.
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
  const int old = bpf_map_create(BPF_MAP_TYPE_HASH, "dpv2_lookup_tab", sizeof(uint32_t),
                                 (251 + 1) * sizeof(uint32_t), 256, &opts);
  REQUIRE(old >= 0);
  REQUIRE(bpf_obj_pin(old, (pin + "/dpv2_lookup_tables").c_str()) == 0);
  close(old);
  const uint32_t services_id = PinnedInfo(pin + "/dpv2_services").id;
  absl::StatusOr<std::unique_ptr<Backend>> refused =
      MakeEbpfBackend({.config = Config(), .pin_path = pin});
  REQUIRE_FALSE(refused.ok());
  INFO(refused.status());
  CHECK(absl::StrContains(refused.status().message(), "pinned map dpv2_lookup_tables"));
  CHECK(absl::StrContains(refused.status().message(), "dpv2_services"));
  CHECK(PinnedInfo(pin + "/dpv2_services").id == services_id);
}

TEST_CASE("a restart over the pins of a build before SNAT creates and pins the SNAT and "
          "node-address maps, and the connections survive") {
  std::unique_ptr<testing::Sandbox> box = EnterSandbox();
  const std::string pin = box->bpffs() + "/node";
  IpAddr chosen;
  {
    std::unique_ptr<Backend> first = Open(pin);
    PolicyState policy({.node_name = "node-a"});
    GivePolicy(policy);
    ChangeBatch batch = NewLb({Web(3)}).Diff();
    batch.Append(policy.Diff());
    REQUIRE(first->Apply(batch).ok());
    chosen = Send(*first, kTcpSyn, 1000);
  }
  // What an older build left: every pin but these two.
  for (const char* map : {"dpv2_snat", "dpv2_node_addrs"}) {
    REQUIRE(unlink((pin + "/" + map).c_str()) == 0);
  }
  std::unique_ptr<Backend> second = Open(pin);
  const uint32_t snat_id = PinnedInfo(pin + "/dpv2_snat").id;
  CHECK(PinnedInfo(pin + "/dpv2_node_addrs").max_entries == 2);
  CHECK(Send(*second, kTcpAck, 1001) == chosen);
  absl::StatusOr<ChangeBatch> dump = second->DumpState();
  REQUIRE(dump.ok());
  CHECK(dump->node_addresses_upsert.empty());
  ChangeBatch node;
  node.node_addresses_upsert.push_back(
      {.family = DPV2_FAMILY_V4, .addr = Ip("192.168.1.10").ToAbi()});
  REQUIRE(second->Apply(node).ok());
  second.reset();
  // The next restart reuses them.
  std::unique_ptr<Backend> third = Open(pin);
  CHECK(PinnedInfo(pin + "/dpv2_snat").id == snat_id);
  dump = third->DumpState();
  REQUIRE(dump.ok());
  CHECK(dump->node_addresses_upsert.size() == 1);
}

}  // namespace
}  // namespace dpv2
