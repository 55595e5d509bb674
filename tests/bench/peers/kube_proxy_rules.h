// The rule sets kube-proxy writes for a set of ClusterIP Services, as text
// for iptables-restore (iptables mode) and for `nft -f` (nftables mode), so
// that the peer benchmark loads into a node namespace exactly what a node
// running kube-proxy would hold, and changes it the way kube-proxy does.
//
// Names and rules follow kube-proxy's pkg/proxy/iptables and
// pkg/proxy/nftables proxiers (chain names hashed with SHA-256 and base32,
// statistic probabilities 1/(M-j) printed with 10 decimals, numgen vmaps).
// Only what a ClusterIP or NodePort Service (externalTrafficPolicy Cluster)
// with ready endpoints produces is generated: no LoadBalancers, external
// IPs, Local policy, affinity or no-endpoint REJECTs.
//
//   BenchServices set = MakeBenchServices({.services = 1000, .endpoints = 10});
//   std::string text = IptablesFullSync(set);   // | iptables-restore --noflush
//   std::string nft = NftablesFullSync(set);    // | nft -f -
#ifndef DPV2_TESTS_BENCH_PEERS_KUBE_PROXY_RULES_H_
#define DPV2_TESTS_BENCH_PEERS_KUBE_PROXY_RULES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"

namespace dpv2::bench {

// An IPv4 address in host order.
using Ipv4 = uint32_t;
std::string FormatIpv4(Ipv4 addr);
std::string Cidr(Ipv4 base, int len);  // "10.128.0.0/10"

struct BenchEndpoint {
  Ipv4 ip = 0;
  uint16_t port = 0;
  std::string ToString() const;  // "10.128.0.1:8080"
};

// One Service with one TCP port, as kube-proxy sees it.
struct BenchService {
  std::string namespace_name;
  std::string name;
  std::string port_name;
  Ipv4 cluster_ip = 0;
  uint16_t port = 0;
  // 0: type ClusterIP. Otherwise type NodePort with this nodePort and
  // externalTrafficPolicy Cluster (kube-proxy masquerades its traffic).
  uint16_t node_port = 0;
  std::vector<BenchEndpoint> endpoints;  // ready, in EndpointSlice order

  // ServicePortName.String(): "bench/svc-17:http".
  std::string PortName() const;
};

// The address plan every system of the benchmark shares.
struct AddressPlan {
  Ipv4 service_base = 0xAC100000;   // 172.16.0.0/12: ClusterIPs
  Ipv4 endpoint_base = 0x0A800000;  // 10.128.0.0/10: endpoint (pod) addresses
  Ipv4 cluster_cidr = 0x0A400000;   // 10.64.0.0/10: kube-proxy's --cluster-cidr
  int cluster_cidr_len = 10;
  uint16_t service_port = 80;
  uint16_t target_port = 8080;
  uint16_t node_port_base = 30000;  // kube-apiserver's default range, 30000-32767
  // The NodePort lab: the node's address on its external link, where a
  // client outside the node reaches nodePorts, and that client's address.
  Ipv4 node_ip = 0xC0A83201;             // 192.168.50.1
  Ipv4 external_client_ip = 0xC0A83202;  // 192.168.50.2
};

// How many nodePorts kube-apiserver's default --service-node-port-range
// (30000-32767) holds.
inline constexpr uint32_t kNodePortRange = 2768;

struct BenchServicesOptions {
  uint32_t services = 0;
  uint32_t endpoints = 1;  // per Service
  uint32_t first = 0;      // index of the first Service (names and addresses)
  // Services with an index below this (at most kNodePortRange) are of type
  // NodePort, Service i on nodePort node_port_base + i.
  uint32_t node_ports = 0;
  AddressPlan plan;
};

struct BenchServices {
  AddressPlan plan;
  std::vector<BenchService> services;
  uint64_t EndpointCount() const;
};

// Service i is bench/svc-<i> port "http" at service_base + 1 + i, with
// endpoints endpoint_base + 1 + i*M + j, all on target_port; the first
// `node_ports` of them also on a nodePort.
BenchServices MakeBenchServices(const BenchServicesOptions& options);

// kube-proxy's chain names (KUBE-SVC-, KUBE-EXT- and KUBE-SEP- with
// portProtoHash and servicePortEndpointChainName in the iptables proxier;
// service-, external- and endpoint- with servicePortChainNameBase and
// servicePortEndpointChainNameBase in the nftables one).
std::string IptablesServiceChain(const BenchService& service);
std::string IptablesExternalChain(const BenchService& service);
std::string IptablesEndpointChain(const BenchService& service, const BenchEndpoint& endpoint);
std::string NftablesServiceChain(const BenchService& service);
std::string NftablesExternalChain(const BenchService& service);
std::string NftablesEndpointChain(const BenchService& service, const BenchEndpoint& endpoint);

// "%0.10f" of 1/n, as kube-proxy prints statistic probabilities.
std::string StatisticProbability(uint32_t n);

// The jumps from the built-in chains into kube-proxy's chains, which
// kube-proxy ensures once with `iptables -I` outside its restores.
std::string IptablesBaseJumps();
// A full sync: the filter and nat tables with every Service.
std::string IptablesFullSync(const BenchServices& set);
// A partial sync (kube-proxy 1.26+ MinimizeIPTablesRestore): the filter
// table, KUBE-SERVICES and KUBE-NODEPORTS are rewritten in full, but only
// the chains of the Services in `changed` (indices into set.services) are
// written; chains in `deleted_chains` are flushed and removed.
std::string IptablesPartialSync(const BenchServices& set, absl::Span<const size_t> changed,
                                absl::Span<const std::string> deleted_chains);

// A full sync transaction: table, base chains, maps and every Service.
std::string NftablesFullSync(const BenchServices& set);
// An incremental transaction for the Services in `changed`: their chains
// are rewritten and their service-ips elements replaced; chains in
// `deleted_chains` are flushed and deleted after the map no longer names them.
std::string NftablesPartialSync(const BenchServices& set, absl::Span<const size_t> changed,
                                absl::Span<const std::string> deleted_chains);

// What a rule set holds, for the memory table.
struct RuleCounts {
  uint64_t chains = 0;
  uint64_t rules = 0;
};
RuleCounts CountIptablesRules(const BenchServices& set);

}  // namespace dpv2::bench

#endif  // DPV2_TESTS_BENCH_PEERS_KUBE_PROXY_RULES_H_
