// dpv2-demo: the dataplane on the sim backend, driven by Kubernetes manifests.
//
// It loads the Services, EndpointSlices, Pods, a Node and a NetworkPolicy from
// a manifest file (examples/demo/cluster.yaml), programs the sim backend as
// node-a's agent would, then pushes hand-built packets through the datapath
// and prints, for each, what the dataplane did: which backend a connection
// went to, how replies are translated back, what is rejected or dropped and
// why, and the events and counters it produced.
//
//   dpv2-demo examples/demo/cluster.yaml
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/cluster_view.h"
#include "agent/k8s/objects.h"
#include "dpv2/backend.h"
#include "dpv2/packet.h"
#include "dpv2/sim.h"

namespace {

using dpv2::Entry;
using dpv2::PacketBuilder;
using dpv2::PacketOutcome;
using dpv2::Verdict;

constexpr uint32_t kExternalIfindex = 2;  // the node's network device

class Demo {
 public:
  Demo(dpv2::Backend& backend, const dpv2::agent::ClusterView& view)
      : backend_(backend), view_(view) {}

  // The interface a local pod sends from.
  uint32_t PodIfindex(const std::string& pod) const {
    std::optional<dpv2::LocalEndpoint> ep = view_.LocalEndpointOf(absl::StrCat("shop/", pod));
    return ep ? ep->ifindex : 0;
  }

  // Sends one frame and prints one line about it; returns the outcome.
  PacketOutcome Send(const std::string& what, Entry entry, uint32_t ifindex,
                     std::vector<uint8_t> frame) {
    absl::StatusOr<PacketOutcome> out =
        backend_.RunPacket({.entry = entry, .ifindex = ifindex, .frame = frame});
    if (!out.ok()) {
      std::printf("  %-46s error: %s\n", what.c_str(), out.status().ToString().c_str());
      return {};
    }
    std::printf("  %-46s %s\n", what.c_str(), Describe(frame, *out).c_str());
    return *out;
  }

 private:
  static std::string Endpoint(const dpv2::ParsedPacket& p, bool source) {
    const dpv2::IpAddr& a = source ? p.src : p.dst;
    const uint16_t port = source ? p.sport : p.dport;
    return a.is_v4() ? absl::StrCat(a.ToString(), ":", port)
                     : absl::StrCat("[", a.ToString(), "]:", port);
  }

  static std::string Describe(const std::vector<uint8_t>& in, const PacketOutcome& out) {
    const dpv2::ParseResult pin = dpv2::ParsePacket(in);
    if (out.verdict == Verdict::kDrop) {
      return absl::StrCat("DROPPED (", dpv2::DropReasonName(out.drop_reason), ")");
    }
    const dpv2::OutputFrame& o = out.outputs.front();
    const dpv2::ParseResult po = dpv2::ParsePacket(o.frame);
    if (out.verdict == Verdict::kTx) {
      const bool rst = po.pkt.proto == DPV2_PROTO_TCP && (po.pkt.tcp_flags & dpv2::kTcpRst);
      return absl::StrCat("REJECTED (", dpv2::DropReasonName(out.drop_reason), "): sent ",
                          rst ? "TCP RST" : "ICMP port unreachable", " from ",
                          Endpoint(po.pkt, true));
    }
    std::string line;
    if (po.pkt.dst != pin.pkt.dst || po.pkt.dport != pin.pkt.dport) {
      line = absl::StrCat("DNAT to ", Endpoint(po.pkt, false));
    } else if (po.pkt.src != pin.pkt.src || po.pkt.sport != pin.pkt.sport) {
      line = absl::StrCat("reverse NAT: source now ", Endpoint(po.pkt, true));
    } else {
      line = "forwarded untranslated";
    }
    if (o.verdict == Verdict::kRedirect) {
      absl::StrAppend(&line, ", delivered to local pod (ifindex ", o.out_ifindex, ")");
    } else {
      absl::StrAppend(&line, ", handed to the stack (routed to its node)");
    }
    return line;
  }

  dpv2::Backend& backend_;
  const dpv2::agent::ClusterView& view_;
};

int Run(const std::string& path) {
  std::ifstream file(path);
  if (!file) {
    std::cerr << "dpv2-demo: cannot read " << path << "\n";
    return 1;
  }
  std::stringstream text;
  text << file.rdbuf();
  dpv2::agent::k8s::ClusterObjects objects;
  dpv2::agent::k8s::AddManifestText(text.str(), path, &objects);
  for (const std::string& e : objects.errors) {
    std::cerr << "dpv2-demo: " << e << "\n";
  }
  if (!objects.errors.empty()) {
    return 1;
  }

  absl::StatusOr<dpv2::agent::ClusterView> view =
      dpv2::agent::ClusterView::Create({.node_name = "node-a"});
  absl::StatusOr<std::unique_ptr<dpv2::Backend>> backend = dpv2::MakeSimBackend();
  if (!view.ok() || !backend.ok()) {
    std::cerr << "dpv2-demo: " << (view.ok() ? backend.status() : view.status()) << "\n";
    return 1;
  }
  view->Update(objects);
  for (const std::string& p : view->problems()) {
    std::cerr << "dpv2-demo: " << p << "\n";
  }
  const dpv2::ChangeBatch batch = view->PendingChanges();
  if (absl::Status s = view->ApplyTo(**backend); !s.ok()) {
    std::cerr << "dpv2-demo: apply: " << s << "\n";
    return 1;
  }

  std::printf("dpv2 demo — sim backend, node-a's view of %s\n", path.c_str());
  std::printf("programmed: %s\n", batch.Summary().c_str());
  std::printf("applying the same objects again changes: %s\n\n",
              view->PendingChanges().Summary().c_str());

  std::printf("Services (frontend -> selected backends):\n");
  for (const dpv2::FrontendView& f : view->lb().Frontends()) {
    std::string backends;
    for (const std::string& b : f.backends) {
      absl::StrAppend(&backends, backends.empty() ? "" : " ", b);
    }
    const std::string frontend =
        f.address.is_v4() ? absl::StrCat(f.address.ToString(), ":", f.port)
                          : absl::StrCat("[", f.address.ToString(), "]:", f.port);
    std::printf("  %-14s %-12s %-10s %s/%s -> %s\n", f.service.c_str(),
                std::string(dpv2::FrontendKindName(f.kind)).c_str(),
                f.scope == DPV2_LB_SCOPE_INT ? "(internal)" : "", frontend.c_str(),
                std::string(dpv2::L4ProtoName(f.protocol)).c_str(),
                backends.empty() ? "(none: reject)" : backends.c_str());
  }

  Demo demo(**backend, *view);
  const uint32_t client = demo.PodIfindex("client");

  std::printf("\n1. A client pod opens connections to the web ClusterIP 10.96.0.10:80;\n"
              "   Maglev spreads them over the ready backends (never the terminating one):\n");
  std::vector<uint8_t> first_out;
  for (uint16_t sport = 40001; sport <= 40006; ++sport) {
    PacketOutcome out = demo.Send(
        absl::StrCat("SYN 10.244.1.20:", sport, " -> 10.96.0.10:80"), Entry::kFromPod, client,
        PacketBuilder().IPv4("10.244.1.20", "10.96.0.10").Tcp(sport, 80, dpv2::kTcpSyn).Build());
    if (first_out.empty() && !out.outputs.empty()) {
      first_out = out.outputs.front().frame;
    }
  }

  std::printf("\n2. The backend's SYN-ACK is translated back to the ClusterIP:\n");
  if (!first_out.empty()) {
    const dpv2::ParsedPacket p = dpv2::ParsePacket(first_out).pkt;
    // The backend pod that got the connection sends the reply from its veth.
    std::optional<dpv2::LocalEndpoint> ep;
    if (std::optional<dpv2::HeldPod> pod = view->policy().FindPodByIp(p.dst)) {
      ep = view->LocalEndpointOf(absl::StrCat(pod->namespace_name, "/", pod->name));
    }
    const uint32_t backend_if = ep ? ep->ifindex : 0;
    demo.Send(absl::StrCat("SYN-ACK ", p.dst.ToString(), ":", p.dport, " -> 10.244.1.20:40001"),
              Entry::kFromPod, backend_if,
              PacketBuilder()
                  .IPv4(p.dst, p.src)
                  .Tcp(p.dport, p.sport, dpv2::kTcpSyn | dpv2::kTcpAck)
                  .Build());
  }

  std::printf("\n3. UDP to the DNS ClusterIP, and IPv6 to the web Service's second family:\n");
  demo.Send("UDP 10.244.1.20:5000 -> 10.96.0.53:53", Entry::kFromPod, client,
            PacketBuilder().IPv4("10.244.1.20", "10.96.0.53").Udp(5000, 53).Payload("q").Build());
  demo.Send("SYN [fd00:244:1::20]:41000 -> [fd00:96::10]:80", Entry::kFromPod, client,
            PacketBuilder().IPv6("fd00:244:1::20", "fd00:96::10").Tcp(41000, 80, dpv2::kTcpSyn)
                .Build());

  std::printf("\n4. A Service with no endpoints refuses at once (no black hole):\n");
  demo.Send("SYN 10.244.1.20:42000 -> 10.96.0.99:443", Entry::kFromPod, client,
            PacketBuilder().IPv4("10.244.1.20", "10.96.0.99").Tcp(42000, 443, dpv2::kTcpSyn)
                .Build());

  std::printf("\n5. From outside the cluster: a NodePort, and a LoadBalancer IP with\n"
              "   loadBalancerSourceRanges 203.0.113.0/24 and externalTrafficPolicy Local:\n");
  demo.Send("SYN 192.0.2.50:50000 -> 192.168.10.2:31443", Entry::kFromNetwork, kExternalIfindex,
            PacketBuilder().IPv4("192.0.2.50", "192.168.10.2").Tcp(50000, 31443, dpv2::kTcpSyn)
                .Build());
  demo.Send("SYN 203.0.113.9:50001 -> 198.51.100.7:443", Entry::kFromNetwork, kExternalIfindex,
            PacketBuilder().IPv4("203.0.113.9", "198.51.100.7").Tcp(50001, 443, dpv2::kTcpSyn)
                .Build());
  demo.Send("SYN 192.0.2.50:50002 -> 198.51.100.7:443", Entry::kFromNetwork, kExternalIfindex,
            PacketBuilder().IPv4("192.0.2.50", "198.51.100.7").Tcp(50002, 443, dpv2::kTcpSyn)
                .Build());

  std::printf("\n6. NetworkPolicy web-from-client: another pod may not reach the web pods\n"
              "   (policy sees the backend pod, after Service translation), and no pod may\n"
              "   send from an address that is not its own:\n");
  const uint32_t intruder = demo.PodIfindex("intruder");
  demo.Send("SYN 10.244.1.66:43000 -> 10.96.0.10:80", Entry::kFromPod, intruder,
            PacketBuilder().IPv4("10.244.1.66", "10.96.0.10").Tcp(43000, 80, dpv2::kTcpSyn)
                .Build());
  demo.Send("SYN 10.244.1.99:43001 -> 10.96.0.10:80", Entry::kFromPod, intruder,
            PacketBuilder().IPv4("10.244.1.99", "10.96.0.10").Tcp(43001, 80, dpv2::kTcpSyn)
                .Build());

  std::printf("\n7. Malformed frames are dropped with a reason:\n");
  std::vector<uint8_t> cut =
      PacketBuilder().IPv4("10.244.1.20", "10.96.0.10").Tcp(44000, 80, dpv2::kTcpSyn).Build();
  cut.resize(14 + 20 + 6);
  demo.Send("IPv4 frame cut inside its TCP header", Entry::kFromPod, client, cut);
  demo.Send("TCP header with data offset 2", Entry::kFromPod, client,
            PacketBuilder().IPv4("10.244.1.20", "10.96.0.10").Tcp(44001, 80, dpv2::kTcpSyn)
                .TcpDataOffsetWords(2).Build());

  std::printf("\nFlow events (first 8):\n");
  absl::StatusOr<std::vector<dpv2::FlowEvent>> events = (*backend)->DrainEvents(1 << 16);
  if (events.ok()) {
    for (size_t i = 0; i < events->size() && i < 8; ++i) {
      std::printf("  %s\n", (*events)[i].ToString().c_str());
    }
    std::printf("  ... %zu events in all\n", events->size());
  }

  std::printf("\nCounters:\n");
  absl::StatusOr<dpv2::Counters> counters = (*backend)->ReadCounters();
  if (counters.ok()) {
    for (int c = 0; c < DPV2_CNT_MAX; ++c) {
      if (counters->counters[c] != 0) {
        std::printf("  %-30s %llu\n",
                    std::string(dpv2::CounterName(static_cast<dpv2_counter>(c))).c_str(),
                    static_cast<unsigned long long>(counters->counters[c]));
      }
    }
    for (int r = 1; r < DPV2_DROP_MAX; ++r) {
      if (counters->drops[r] != 0) {
        std::printf("  drop %-25s %llu\n",
                    std::string(dpv2::DropReasonName(static_cast<dpv2_drop_reason>(r))).c_str(),
                    static_cast<unsigned long long>(counters->drops[r]));
      }
    }
  }
  absl::StatusOr<std::vector<dpv2::ConntrackEntry>> ct = (*backend)->DumpConntrack();
  if (ct.ok()) {
    std::printf("  conntrack entries              %zu\n", ct->size());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: dpv2-demo MANIFEST.yaml\n";
    return 2;
  }
  return Run(argv[1]);
}
