// tc attachment of the eBPF datapath on real interfaces: veth pairs in a
// private network namespace (Sandbox), programs checked with bpf_tc_query and
// `tc filter show`. Needs root; unprivileged it exits 77 unless CI=true.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <net/if.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "backends/ebpf/ebpf_backend.h"
#include "dpv2/ebpf.h"
#include "dpv2/packet.h"
#include "sandbox.h"
#include "small_config.h"

namespace dpv2 {
namespace {

using testing::Sandbox;
using testing::SmallConfig;

// A node with one pod veth (host side "pod0h") and an external device "ext0".
struct Node {
  std::unique_ptr<Sandbox> box;
  uint32_t pod_ifindex = 0;
  uint32_t ext_ifindex = 0;
};

Node MakeNode() {
  absl::StatusOr<std::unique_ptr<Sandbox>> box = Sandbox::Enter();
  INFO(box.status().ToString());
  REQUIRE(box.ok());
  Node n{.box = *std::move(box)};
  for (const char* cmd : {"ip link add pod0h type veth peer name pod0p",
                          "ip link add ext0 type veth peer name ext0p", "ip link set pod0h up",
                          "ip link set pod0p up", "ip link set ext0 up", "ip link set ext0p up"}) {
    absl::Status s = n.box->Run(cmd);
    INFO(s.ToString());
    REQUIRE(s.ok());
  }
  n.pod_ifindex = if_nametoindex("pod0h");
  n.ext_ifindex = if_nametoindex("ext0");
  REQUIRE(n.pod_ifindex != 0);
  REQUIRE(n.ext_ifindex != 0);
  return n;
}

ChangeBatch PodOn(uint32_t ifindex) {
  EndpointEntry e{};
  e.key.addr = IpAddr::Parse("10.0.1.5")->ToAbi();
  e.key.family = DPV2_FAMILY_V4;
  e.value.endpoint_id = 1;
  e.value.ifindex = ifindex;
  e.value.identity = 1001;
  ChangeBatch b;
  b.endpoints_upsert.push_back(e);
  return b;
}

uint32_t ProgId(int prog_fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  REQUIRE(bpf_obj_get_info_by_fd(prog_fd, &info, &len) == 0);
  return info.id;
}

// The program at tc ingress handle 1 / priority 1 (dpv2's slot); 0 if none.
uint32_t TcProgId(uint32_t ifindex) {
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex),
              .attach_point = BPF_TC_INGRESS);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = 1, .priority = 1);
  if (bpf_tc_query(&hook, &opts) != 0) {
    return 0;
  }
  return opts.prog_id;
}

// Every filter at tc ingress of `dev`, whoever put it there.
int IngressFilters(const Sandbox& box, const std::string& dev) {
  absl::StatusOr<std::string> out = box.Output("tc filter show dev " + dev + " ingress");
  if (!out.ok()) {
    return 0;  // no clsact qdisc at all
  }
  int n = 0;
  for (absl::string_view line : absl::StrSplit(*out, '\n')) {
    if (absl::StrContains(line, " handle ")) {
      ++n;
    }
  }
  return n;
}

ebpf::EbpfBackend* AsEbpf(Backend& b) {
  auto* e = dynamic_cast<ebpf::EbpfBackend*>(&b);
  REQUIRE(e != nullptr);
  return e;
}

std::unique_ptr<Backend> Make(const EbpfOptions& options) {
  absl::StatusOr<std::unique_ptr<Backend>> b = MakeEbpfBackend(options);
  INFO(b.status().ToString());
  REQUIRE(b.ok());
  return *std::move(b);
}

TEST_CASE("from-pod is attached at tc ingress of an applied endpoint's veth, from-network at the "
          "external device's") {
  Node node = MakeNode();
  std::unique_ptr<Backend> b = Make({.config = SmallConfig(), .attach_to_endpoints = true,
                                     .external_ifindex = node.ext_ifindex});
  CHECK(TcProgId(node.ext_ifindex) == ProgId(AsEbpf(*b)->from_network_fd()));
  CHECK(TcProgId(node.pod_ifindex) == 0);  // no endpoint yet
  REQUIRE(b->Apply(PodOn(node.pod_ifindex)).ok());
  CHECK(TcProgId(node.pod_ifindex) == ProgId(AsEbpf(*b)->from_pod_fd()));
  CHECK(IngressFilters(*node.box, "pod0h") == 1);
  CHECK(IngressFilters(*node.box, "ext0") == 1);
}

TEST_CASE("a restarted instance on the same pin path replaces both programs in place: one filter "
          "each, with the new program ids") {
  Node node = MakeNode();
  const EbpfOptions options{.config = SmallConfig(),
                            .pin_path = node.box->bpffs() + "/node",
                            .attach_to_endpoints = true,
                            .external_ifindex = node.ext_ifindex};
  std::unique_ptr<Backend> first = Make(options);
  REQUIRE(first->Apply(PodOn(node.pod_ifindex)).ok());
  const uint32_t old_pod = ProgId(AsEbpf(*first)->from_pod_fd());
  const uint32_t old_net = ProgId(AsEbpf(*first)->from_network_fd());
  // The successor starts while the first still runs (a rolling restart); it
  // finds the endpoint in the pinned maps and takes over its veth at once.
  std::unique_ptr<Backend> second = Make(options);
  const uint32_t new_pod = ProgId(AsEbpf(*second)->from_pod_fd());
  const uint32_t new_net = ProgId(AsEbpf(*second)->from_network_fd());
  CHECK(new_pod != old_pod);
  CHECK(new_net != old_net);
  CHECK(TcProgId(node.pod_ifindex) == new_pod);
  CHECK(TcProgId(node.ext_ifindex) == new_net);
  CHECK(IngressFilters(*node.box, "pod0h") == 1);
  CHECK(IngressFilters(*node.box, "ext0") == 1);
  // The old instance closing (pinned) leaves its successor's programs alone.
  first.reset();
  CHECK(TcProgId(node.pod_ifindex) == new_pod);
  CHECK(TcProgId(node.ext_ifindex) == new_net);
  // And the successor closing leaves them attached for the next one.
  second.reset();
  CHECK(TcProgId(node.pod_ifindex) == new_pod);
  CHECK(IngressFilters(*node.box, "ext0") == 1);
}

TEST_CASE("an unpinned instance detaches its programs when it closes") {
  Node node = MakeNode();
  std::unique_ptr<Backend> b = Make({.config = SmallConfig(), .attach_to_endpoints = true,
                                     .external_ifindex = node.ext_ifindex});
  REQUIRE(b->Apply(PodOn(node.pod_ifindex)).ok());
  REQUIRE(TcProgId(node.pod_ifindex) != 0);
  b.reset();
  CHECK(TcProgId(node.pod_ifindex) == 0);
  CHECK(TcProgId(node.ext_ifindex) == 0);
  CHECK(IngressFilters(*node.box, "pod0h") == 0);
  CHECK(IngressFilters(*node.box, "ext0") == 0);
}

TEST_CASE("an endpoint on an interface that does not exist is refused and changes nothing") {
  Node node = MakeNode();
  std::unique_ptr<Backend> b = Make({.config = SmallConfig(), .attach_to_endpoints = true});
  absl::Status s = b->Apply(PodOn(999999));
  CHECK(!s.ok());
  CHECK(absl::StrContains(s.message(), "999999"));
  // Had the endpoint been written, its address would pass anti-spoofing there.
  std::vector<uint8_t> syn =
      PacketBuilder().IPv4("10.0.1.5", "10.0.2.9").Tcp(40000, 80, kTcpSyn).Build();
  absl::StatusOr<PacketOutcome> out =
      b->RunPacket({.entry = Entry::kFromPod, .ifindex = 999999, .frame = syn});
  REQUIRE(out.ok());
  CHECK(out->drop_reason == DPV2_DROP_SPOOFED_SOURCE);
  CHECK(TcProgId(node.pod_ifindex) == 0);
}

TEST_CASE("an external device that does not exist is a creation error naming it") {
  Node node = MakeNode();
  absl::StatusOr<std::unique_ptr<Backend>> b =
      MakeEbpfBackend({.config = SmallConfig(), .external_ifindex = 999998});
  REQUIRE(!b.ok());
  CHECK(absl::StrContains(b.status().message(), "999998"));
}

uint32_t XdpProgId(uint32_t ifindex) {
  uint32_t id = 0;
  if (bpf_xdp_query_id(static_cast<int>(ifindex), 0, &id) != 0) {
    return 0;
  }
  return id;
}

uint32_t PinnedLinkId(const std::string& path) {
  const int fd = bpf_obj_get(path.c_str());
  REQUIRE(fd >= 0);
  bpf_link_info info{};
  uint32_t len = sizeof(info);
  const int err = bpf_obj_get_info_by_fd(fd, &info, &len);
  close(fd);
  REQUIRE(err == 0);
  return info.id;
}

TEST_CASE("with xdp, the XDP program goes on the external device through a pinned bpf_link that a "
          "restarted instance updates in place") {
  Node node = MakeNode();
  const std::string pin = node.box->bpffs() + "/node";
  const EbpfOptions options{.config = SmallConfig(), .pin_path = pin,
                            .external_ifindex = node.ext_ifindex, .xdp = true};
  std::unique_ptr<Backend> first = Make(options);
  CHECK(XdpProgId(node.ext_ifindex) == ProgId(AsEbpf(*first)->xdp_fd()));
  CHECK(TcProgId(node.ext_ifindex) == ProgId(AsEbpf(*first)->from_network_fd()));
  const uint32_t link = PinnedLinkId(pin + "/xdp_link");
  std::unique_ptr<Backend> second = Make(options);
  const uint32_t new_xdp = ProgId(AsEbpf(*second)->xdp_fd());
  CHECK(new_xdp != ProgId(AsEbpf(*first)->xdp_fd()));
  CHECK(XdpProgId(node.ext_ifindex) == new_xdp);
  CHECK(PinnedLinkId(pin + "/xdp_link") == link);  // the same link, a new program
  first.reset();
  second.reset();
  CHECK(XdpProgId(node.ext_ifindex) == new_xdp);  // pinned: left for the next process
}

TEST_CASE("with xdp and no pin path, the XDP program is detached when the instance closes") {
  Node node = MakeNode();
  std::unique_ptr<Backend> b =
      Make({.config = SmallConfig(), .external_ifindex = node.ext_ifindex, .xdp = true});
  CHECK(XdpProgId(node.ext_ifindex) == ProgId(AsEbpf(*b)->xdp_fd()));
  b.reset();
  CHECK(XdpProgId(node.ext_ifindex) == 0);
  CHECK(TcProgId(node.ext_ifindex) == 0);
}

}  // namespace
}  // namespace dpv2
