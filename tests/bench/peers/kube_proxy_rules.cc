#include "kube_proxy_rules.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dpv2::bench {
namespace {

constexpr char kMasqMark[] = "0x4000";

// base32.StdEncoding.EncodeToString(sha256(text)): what kube-proxy hashes
// names with (it keeps a prefix of the result).
std::string Sha256Base32(const std::string& text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char byte : digest) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out.push_back(kAlphabet[(buffer >> (bits - 5)) & 31]);
      bits -= 5;
    }
  }
  if (bits > 0) {
    out.push_back(kAlphabet[(buffer << (5 - bits)) & 31]);
  }
  return out;  // padding never reaches the prefixes kube-proxy keeps
}

// portProtoHash: the suffix of a Service port's iptables chains.
std::string PortProtoHash(const BenchService& s) {
  return Sha256Base32(s.PortName() + "tcp").substr(0, 16);
}

// servicePortChainNameBase: what a Service port's nftables chains end with.
std::string ChainNameBase(const BenchService& s) {
  const std::string name = absl::StrCat(s.namespace_name, "/", s.name, "/tcp/", s.port_name);
  return Sha256Base32(name).substr(0, 8) + "-" + name;
}

std::string ClusterIpComment(const BenchService& s) {
  return absl::StrCat("\"", s.PortName(), " cluster IP\"");
}

void AppendIptablesFilterTable(std::string& out) {
  absl::StrAppend(&out,
                  "*filter\n"
                  ":KUBE-NODEPORTS - [0:0]\n"
                  ":KUBE-SERVICES - [0:0]\n"
                  ":KUBE-EXTERNAL-SERVICES - [0:0]\n"
                  ":KUBE-FIREWALL - [0:0]\n"
                  ":KUBE-FORWARD - [0:0]\n"
                  ":KUBE-PROXY-FIREWALL - [0:0]\n"
                  "-A KUBE-FIREWALL -m comment --comment \"block incoming localnet connections\" "
                  "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT "
                  "-j DROP\n"
                  "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n"
                  "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark "
                  "--mark 0x4000/0x4000 -j ACCEPT\n"
                  "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" "
                  "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
                  "COMMIT\n");
}

void AppendIptablesNatHeader(std::string& out) {
  absl::StrAppend(&out,
                  "*nat\n"
                  ":KUBE-NODEPORTS - [0:0]\n"
                  ":KUBE-SERVICES - [0:0]\n"
                  ":KUBE-MARK-MASQ - [0:0]\n"
                  ":KUBE-POSTROUTING - [0:0]\n");
}

// The chain lines in kube-proxy's order: KUBE-EXT, KUBE-SVC, KUBE-SEP.
void AppendIptablesServiceChainLines(const BenchService& s, std::string& out) {
  if (s.node_port != 0) {
    absl::StrAppend(&out, ":", IptablesExternalChain(s), " - [0:0]\n");
  }
  absl::StrAppend(&out, ":", IptablesServiceChain(s), " - [0:0]\n");
  for (const BenchEndpoint& ep : s.endpoints) {
    absl::StrAppend(&out, ":", IptablesEndpointChain(s, ep), " - [0:0]\n");
  }
}

// KUBE-SERVICES and KUBE-NODEPORTS, which every sync rewrites whole. The
// last KUBE-SERVICES rule is kube-proxy's for the default
// --nodeport-addresses (every local address) and --iptables-localhost-nodeports
// (on: no `! -d 127.0.0.0/8`).
void AppendIptablesServicesChain(const BenchServices& set, std::string& out) {
  for (const BenchService& s : set.services) {
    absl::StrAppend(&out, "-A KUBE-SERVICES -m comment --comment ", ClusterIpComment(s),
                    " -m tcp -p tcp -d ", FormatIpv4(s.cluster_ip), " --dport ", s.port,
                    " -j ", IptablesServiceChain(s), "\n");
  }
  for (const BenchService& s : set.services) {
    if (s.node_port != 0) {
      absl::StrAppend(&out, "-A KUBE-NODEPORTS -m comment --comment ", s.PortName(),
                      " -m tcp -p tcp --dport ", s.node_port, " -j ", IptablesExternalChain(s),
                      "\n");
    }
  }
  absl::StrAppend(&out,
                  "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: "
                  "this must be the last rule in this chain\" -m addrtype --dst-type LOCAL "
                  "-j KUBE-NODEPORTS\n");
}

void AppendIptablesMasqRules(std::string& out) {
  absl::StrAppend(&out, "-A KUBE-MARK-MASQ -j MARK --or-mark ", kMasqMark, "\n",
                  "-A KUBE-POSTROUTING -m mark ! --mark ", kMasqMark, "/", kMasqMark,
                  " -j RETURN\n", "-A KUBE-POSTROUTING -j MARK --xor-mark ", kMasqMark, "\n",
                  "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic "
                  "requiring SNAT\" -j MASQUERADE --random-fully\n");
}

void AppendIptablesServiceRules(const BenchServices& set, const BenchService& s,
                                std::string& out) {
  const std::string svc_chain = IptablesServiceChain(s);
  const std::string name = s.PortName();
  absl::StrAppend(&out, "-A ", svc_chain, " -m comment --comment ", ClusterIpComment(s),
                  " -m tcp -p tcp -d ", FormatIpv4(s.cluster_ip), " --dport ", s.port, " ! -s ",
                  Cidr(set.plan.cluster_cidr, set.plan.cluster_cidr_len), " -j KUBE-MARK-MASQ\n");
  if (s.node_port != 0) {
    // Cluster policy: external traffic is masqueraded, as it may cross nodes.
    const std::string ext_chain = IptablesExternalChain(s);
    absl::StrAppend(&out, "-A ", ext_chain, " -m comment --comment \"masquerade traffic for ", name,
                    " external destinations\" -j KUBE-MARK-MASQ\n", "-A ", ext_chain, " -j ",
                    svc_chain, "\n");
  }
  const uint32_t n = s.endpoints.size();
  for (uint32_t i = 0; i < n; ++i) {
    const BenchEndpoint& ep = s.endpoints[i];
    absl::StrAppend(&out, "-A ", svc_chain, " -m comment --comment \"", name, " -> ",
                    ep.ToString(), "\"");
    if (i + 1 < n) {
      absl::StrAppend(&out, " -m statistic --mode random --probability ",
                      StatisticProbability(n - i));
    }
    absl::StrAppend(&out, " -j ", IptablesEndpointChain(s, ep), "\n");
  }
  for (const BenchEndpoint& ep : s.endpoints) {
    const std::string sep = IptablesEndpointChain(s, ep);
    absl::StrAppend(&out, "-A ", sep, " -m comment --comment ", name, " -s ", FormatIpv4(ep.ip),
                    " -j KUBE-MARK-MASQ\n");
    absl::StrAppend(&out, "-A ", sep, " -m comment --comment ", name,
                    " -m tcp -p tcp -j DNAT --to-destination ", ep.ToString(), "\n");
  }
}

constexpr char kNftTable[] = "ip kube-proxy";

// The part of every nftables sync that kube-proxy's setupNFTables writes.
void AppendNftablesSetup(std::string& out) {
  const std::string t = kNftTable;
  absl::StrAppend(&out, "add table ", t, " { comment \"rules for kube-proxy\" ; }\n");
  struct BaseChain {
    const char* name;
    const char* type;
    const char* hook;
    const char* priority;
  };
  static constexpr BaseChain kBaseChains[] = {
      {"filter-prerouting", "filter", "prerouting", "-110"},
      {"filter-input", "filter", "input", "-110"},
      {"filter-forward", "filter", "forward", "-110"},
      {"filter-output", "filter", "output", "-110"},
      {"nat-prerouting", "nat", "prerouting", "-100"},
      {"nat-output", "nat", "output", "-100"},
      {"nat-postrouting", "nat", "postrouting", "100"},
  };
  for (const BaseChain& c : kBaseChains) {
    absl::StrAppend(&out, "add chain ", t, " ", c.name, " { type ", c.type, " hook ", c.hook,
                    " priority ", c.priority, " ; }\n", "flush chain ", t, " ", c.name, "\n");
  }
  struct Jump {
    const char* dst;
    const char* src;
    const char* extra;
  };
  static constexpr Jump kJumps[] = {
      {"endpoints-check", "filter-input", "ct state new "},
      {"endpoints-check", "filter-forward", "ct state new "},
      {"endpoints-check", "filter-output", "ct state new "},
      {"firewall-check", "filter-prerouting", "ct state new "},
      {"firewall-check", "filter-output", "ct state new "},
      {"services", "nat-output", ""},
      {"services", "nat-prerouting", ""},
      {"masquerading", "nat-postrouting", ""},
  };
  std::vector<std::string> created;
  auto ensure = [&](const std::string& chain) {
    for (const std::string& c : created) {
      if (c == chain) {
        return;
      }
    }
    created.push_back(chain);
    absl::StrAppend(&out, "add chain ", t, " ", chain, "\n", "flush chain ", t, " ", chain, "\n");
  };
  for (const Jump& j : kJumps) {
    ensure(j.dst);
    absl::StrAppend(&out, "add rule ", t, " ", j.src, " ", j.extra, "jump ", j.dst, "\n");
  }
  ensure("mark-for-masquerade");
  absl::StrAppend(&out, "add rule ", t, " mark-for-masquerade mark set mark or ", kMasqMark, "\n",
                  "add rule ", t, " masquerading mark and ", kMasqMark, " == 0 return\n",
                  "add rule ", t, " masquerading mark set mark xor ", kMasqMark, "\n",
                  "add rule ", t, " masquerading masquerade fully-random\n");
  // Default --nodeport-addresses matches every address: the set is created
  // and removed again, as kube-proxy does.
  absl::StrAppend(&out, "add set ", t,
                  " nodeport-ips { type ipv4_addr ; comment \"IPs that accept NodePort traffic\" "
                  "; }\n",
                  "delete set ", t, " nodeport-ips\n");
  absl::StrAppend(&out, "add map ", t,
                  " no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict "
                  "; comment \"vmap to drop or reject packets to services with no endpoints\" ; "
                  "}\n",
                  "add map ", t,
                  " no-endpoint-nodeports { type inet_proto . inet_service : verdict ; comment "
                  "\"vmap to drop or reject packets to service nodeports with no endpoints\" ; "
                  "}\n",
                  "add chain ", t,
                  " reject-chain { comment \"helper for @no-endpoint-services / "
                  "@no-endpoint-nodeports\" ; }\n",
                  "flush chain ", t, " reject-chain\n", "add rule ", t, " reject-chain reject\n",
                  "add rule ", t,
                  " endpoints-check ip daddr . meta l4proto . th dport vmap "
                  "@no-endpoint-services\n",
                  "add rule ", t,
                  " endpoints-check fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto "
                  ". th dport vmap @no-endpoint-nodeports\n");
  absl::StrAppend(&out, "add map ", t,
                  " firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict ; "
                  "comment \"destinations that are subject to LoadBalancerSourceRanges\" ; }\n");
  ensure("firewall-check");
  absl::StrAppend(&out, "add rule ", t,
                  " firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips\n");
  absl::StrAppend(&out, "add map ", t,
                  " service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "
                  "\"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }\n",
                  "add map ", t,
                  " service-nodeports { type inet_proto . inet_service : verdict ; comment "
                  "\"NodePort traffic\" ; }\n",
                  "add rule ", t, " services ip daddr . meta l4proto . th dport vmap @service-ips\n",
                  "add rule ", t,
                  " services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th "
                  "dport vmap @service-nodeports\n");
}

// One Service's chains, rules and service-ips element, in the order
// kube-proxy's syncProxyRules adds them.
void AppendNftablesService(const BenchServices& set, const BenchService& s, std::string& out) {
  const std::string t = kNftTable;
  const std::string svc_chain = NftablesServiceChain(s);
  for (const BenchEndpoint& ep : s.endpoints) {
    const std::string c = NftablesEndpointChain(s, ep);
    absl::StrAppend(&out, "add chain ", t, " ", c, "\n", "flush chain ", t, " ", c, "\n");
  }
  absl::StrAppend(&out, "add chain ", t, " ", svc_chain, "\n", "flush chain ", t, " ", svc_chain,
                  "\n");
  const std::string ext_chain = s.node_port != 0 ? NftablesExternalChain(s) : "";
  if (s.node_port != 0) {
    absl::StrAppend(&out, "add chain ", t, " ", ext_chain, "\n", "flush chain ", t, " ", ext_chain,
                    "\n");
  }
  absl::StrAppend(&out, "add element ", t, " service-ips { ", FormatIpv4(s.cluster_ip),
                  " . tcp . ", s.port, " : goto ", svc_chain, " }\n");
  if (s.node_port != 0) {
    absl::StrAppend(&out, "add element ", t, " service-nodeports { tcp . ", s.node_port, " : goto ",
                    ext_chain, " }\n");
  }
  absl::StrAppend(&out, "add rule ", t, " ", svc_chain, " ip daddr ", FormatIpv4(s.cluster_ip),
                  " tcp dport ", s.port, " ip saddr != ",
                  Cidr(set.plan.cluster_cidr, set.plan.cluster_cidr_len),
                  " jump mark-for-masquerade\n");
  if (s.node_port != 0) {
    // Cluster policy: masquerade, then the Service's endpoints.
    absl::StrAppend(&out, "add rule ", t, " ", ext_chain, " jump mark-for-masquerade\n",
                    "add rule ", t, " ", ext_chain, " goto ", svc_chain, "\n");
  }
  absl::StrAppend(&out, "add rule ", t, " ", svc_chain, " numgen random mod ", s.endpoints.size(),
                  " vmap { ");
  for (size_t i = 0; i < s.endpoints.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "" : ", ", i, " : goto ",
                    NftablesEndpointChain(s, s.endpoints[i]));
  }
  absl::StrAppend(&out, " }\n");
  for (const BenchEndpoint& ep : s.endpoints) {
    const std::string c = NftablesEndpointChain(s, ep);
    absl::StrAppend(&out, "add rule ", t, " ", c, " ip saddr ", FormatIpv4(ep.ip),
                    " jump mark-for-masquerade\n", "add rule ", t, " ", c,
                    " meta l4proto tcp dnat to ", ep.ToString(), "\n");
  }
}

}  // namespace

std::string FormatIpv4(Ipv4 addr) {
  return absl::StrFormat("%u.%u.%u.%u", addr >> 24, (addr >> 16) & 255, (addr >> 8) & 255,
                         addr & 255);
}

std::string Cidr(Ipv4 base, int len) { return absl::StrCat(FormatIpv4(base), "/", len); }

std::string BenchEndpoint::ToString() const { return absl::StrCat(FormatIpv4(ip), ":", port); }

std::string BenchService::PortName() const {
  return absl::StrCat(namespace_name, "/", name, ":", port_name);
}

uint64_t BenchServices::EndpointCount() const {
  uint64_t n = 0;
  for (const BenchService& s : services) {
    n += s.endpoints.size();
  }
  return n;
}

BenchServices MakeBenchServices(const BenchServicesOptions& options) {
  BenchServices set{.plan = options.plan};
  set.services.reserve(options.services);
  for (uint32_t k = 0; k < options.services; ++k) {
    const uint32_t i = options.first + k;
    BenchService s{.namespace_name = "bench",
                   .name = absl::StrCat("svc-", i),
                   .port_name = "http",
                   .cluster_ip = options.plan.service_base + 1 + i,
                   .port = options.plan.service_port};
    if (i < std::min(options.node_ports, kNodePortRange)) {
      s.node_port = static_cast<uint16_t>(options.plan.node_port_base + i);
    }
    for (uint32_t j = 0; j < options.endpoints; ++j) {
      s.endpoints.push_back({.ip = options.plan.endpoint_base + 1 + i * options.endpoints + j,
                             .port = options.plan.target_port});
    }
    set.services.push_back(std::move(s));
  }
  return set;
}

std::string IptablesServiceChain(const BenchService& s) { return "KUBE-SVC-" + PortProtoHash(s); }

std::string IptablesExternalChain(const BenchService& s) { return "KUBE-EXT-" + PortProtoHash(s); }

std::string IptablesEndpointChain(const BenchService& s, const BenchEndpoint& ep) {
  return "KUBE-SEP-" + Sha256Base32(s.PortName() + "tcp" + ep.ToString()).substr(0, 16);
}

std::string NftablesServiceChain(const BenchService& s) { return "service-" + ChainNameBase(s); }

std::string NftablesExternalChain(const BenchService& s) { return "external-" + ChainNameBase(s); }

std::string NftablesEndpointChain(const BenchService& s, const BenchEndpoint& ep) {
  const std::string name = absl::StrCat(s.namespace_name, "/", s.name, "/tcp/", s.port_name,
                                        "__", FormatIpv4(ep.ip), "/", ep.port);
  return "endpoint-" + Sha256Base32(name).substr(0, 8) + "-" + name;
}

std::string StatisticProbability(uint32_t n) { return absl::StrFormat("%0.10f", 1.0 / n); }

std::string IptablesBaseJumps() {
  std::string out;
  absl::StrAppend(
      &out, "*filter\n", ":KUBE-NODEPORTS - [0:0]\n", ":KUBE-SERVICES - [0:0]\n",
      ":KUBE-EXTERNAL-SERVICES - [0:0]\n", ":KUBE-FIREWALL - [0:0]\n", ":KUBE-FORWARD - [0:0]\n",
      ":KUBE-PROXY-FIREWALL - [0:0]\n",
      "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer "
      "firewall\" -j KUBE-PROXY-FIREWALL\n",
      "-A INPUT -m comment --comment \"kubernetes health check service ports\" -j "
      "KUBE-NODEPORTS\n",
      "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible "
      "service portals\" -j KUBE-EXTERNAL-SERVICES\n",
      "-A INPUT -j KUBE-FIREWALL\n",
      "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer "
      "firewall\" -j KUBE-PROXY-FIREWALL\n",
      "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n",
      "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" "
      "-j KUBE-SERVICES\n",
      "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible "
      "service portals\" -j KUBE-EXTERNAL-SERVICES\n",
      "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer "
      "firewall\" -j KUBE-PROXY-FIREWALL\n",
      "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" "
      "-j KUBE-SERVICES\n",
      "-A OUTPUT -j KUBE-FIREWALL\n", "COMMIT\n");
  absl::StrAppend(&out, "*nat\n", ":KUBE-SERVICES - [0:0]\n", ":KUBE-POSTROUTING - [0:0]\n",
                  "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j "
                  "KUBE-SERVICES\n",
                  "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j "
                  "KUBE-SERVICES\n",
                  "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j "
                  "KUBE-POSTROUTING\n",
                  "COMMIT\n");
  return out;
}

std::string IptablesFullSync(const BenchServices& set) {
  std::string out;
  AppendIptablesFilterTable(out);
  AppendIptablesNatHeader(out);
  for (const BenchService& s : set.services) {
    AppendIptablesServiceChainLines(s, out);
  }
  AppendIptablesServicesChain(set, out);
  AppendIptablesMasqRules(out);
  for (const BenchService& s : set.services) {
    AppendIptablesServiceRules(set, s, out);
  }
  absl::StrAppend(&out, "COMMIT\n");
  return out;
}

std::string IptablesPartialSync(const BenchServices& set, absl::Span<const size_t> changed,
                                absl::Span<const std::string> deleted_chains) {
  std::string out;
  AppendIptablesFilterTable(out);
  AppendIptablesNatHeader(out);
  for (size_t i : changed) {
    AppendIptablesServiceChainLines(set.services[i], out);
  }
  for (const std::string& chain : deleted_chains) {
    absl::StrAppend(&out, ":", chain, " - [0:0]\n");
  }
  AppendIptablesServicesChain(set, out);
  AppendIptablesMasqRules(out);
  for (size_t i : changed) {
    AppendIptablesServiceRules(set, set.services[i], out);
  }
  for (const std::string& chain : deleted_chains) {
    absl::StrAppend(&out, "-X ", chain, "\n");
  }
  absl::StrAppend(&out, "COMMIT\n");
  return out;
}

std::string NftablesFullSync(const BenchServices& set) {
  std::string out;
  AppendNftablesSetup(out);
  const std::string t = kNftTable;
  for (const char* map : {"firewall-ips", "no-endpoint-services", "no-endpoint-nodeports",
                          "service-ips", "service-nodeports"}) {
    absl::StrAppend(&out, "flush map ", t, " ", map, "\n");
  }
  for (const BenchService& s : set.services) {
    AppendNftablesService(set, s, out);
  }
  return out;
}

std::string NftablesPartialSync(const BenchServices& set, absl::Span<const size_t> changed,
                                absl::Span<const std::string> deleted_chains) {
  std::string out;
  for (size_t i : changed) {
    AppendNftablesService(set, set.services[i], out);
  }
  for (const std::string& chain : deleted_chains) {
    absl::StrAppend(&out, "flush chain ", kNftTable, " ", chain, "\n", "delete chain ",
                    kNftTable, " ", chain, "\n");
  }
  return out;
}

RuleCounts CountIptablesRules(const BenchServices& set) {
  // Per Service: the KUBE-SERVICES jump, the masquerade-mark rule and one
  // jump per endpoint in KUBE-SVC; per endpoint two rules in KUBE-SEP; per
  // nodePort a KUBE-NODEPORTS rule and KUBE-EXT with two.
  RuleCounts c{.chains = 4, .rules = 1 + 1 + 3};
  for (const BenchService& s : set.services) {
    c.chains += 1 + s.endpoints.size() + (s.node_port != 0 ? 1 : 0);
    c.rules += 2 + 3 * s.endpoints.size() + (s.node_port != 0 ? 3 : 0);
  }
  return c;
}

}  // namespace dpv2::bench
