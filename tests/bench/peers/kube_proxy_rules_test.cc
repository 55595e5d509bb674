// The kube-proxy rule generators write what kube-proxy writes (names,
// probabilities, rule counts) and their text loads into a kernel: [load]
// cases run iptables-restore and nft in a throwaway network namespace.
#include "kube_proxy_rules.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace dpv2::bench {
namespace {

BenchService Svc1() {
  return {.namespace_name = "ns1",
          .name = "svc1",
          .port_name = "p80",
          .cluster_ip = 0xAC1E0029,  // 172.30.0.41
          .port = 80,
          .endpoints = {{.ip = 0x0AB40001, .port = 80}}};  // 10.180.0.1:80
}

// Names `s` as kube-proxy's test Service ns3/svc3 (port p80, nodePort
// 3003), whose rules kube-proxy's tests spell out.
void AsKubeProxySvc3(BenchService& s) {
  s.namespace_name = "ns3";
  s.name = "svc3";
  s.port_name = "p80";
  s.node_port = 3003;
}

size_t CountLines(const std::string& text, absl::string_view prefix) {
  size_t n = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    n += absl::StartsWith(line, prefix) ? 1 : 0;
  }
  return n;
}

TEST_CASE("chain names are kube-proxy's hashes of the service port name and endpoint") {
  // Values from kube-proxy's own tests and a live cluster's iptables-save.
  const BenchService s = Svc1();
  CHECK(IptablesServiceChain(s) == "KUBE-SVC-XPGD46QRK7WJZT7O");
  CHECK(IptablesEndpointChain(s, s.endpoints[0]) == "KUBE-SEP-SXIVWICOYRO3J4NJ");
  CHECK(NftablesServiceChain(s) == "service-ULMVA6XW-ns1/svc1/tcp/p80");
  CHECK(NftablesEndpointChain(s, s.endpoints[0]) == "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80");
  const BenchService api{.namespace_name = "default", .name = "kubernetes", .port_name = "https"};
  CHECK(IptablesServiceChain(api) == "KUBE-SVC-NPX46M4PTMTKRN6Y");
}

TEST_CASE("NodePort chains are named by kube-proxy's hashes: KUBE-EXT- and external-") {
  // Values from kube-proxy's own tests (iptables and nftables proxier_test.go).
  const BenchService svc2{.namespace_name = "ns2", .name = "svc2", .port_name = "p80"};
  const BenchService svc3{.namespace_name = "ns3", .name = "svc3", .port_name = "p80"};
  CHECK(IptablesExternalChain(svc2) == "KUBE-EXT-GNZBNJ2PO5MGZ6GT");
  CHECK(IptablesExternalChain(svc3) == "KUBE-EXT-X27LE4BHSL4DOUIK");
  CHECK(IptablesServiceChain(svc3) == "KUBE-SVC-X27LE4BHSL4DOUIK");
  CHECK(NftablesExternalChain(svc3) == "external-4AT6LBPK-ns3/svc3/tcp/p80");
  CHECK(NftablesServiceChain(svc3) == "service-4AT6LBPK-ns3/svc3/tcp/p80");
}

TEST_CASE("the first node_ports Services get nodePorts from the default range") {
  const BenchServices set = MakeBenchServices({.services = 4, .endpoints = 1, .node_ports = 2});
  CHECK(set.services[0].node_port == 30000);
  CHECK(set.services[1].node_port == 30001);
  CHECK(set.services[2].node_port == 0);
  const BenchServices full =
      MakeBenchServices({.services = kNodePortRange + 5, .endpoints = 1, .node_ports = 100000});
  CHECK(full.services[kNodePortRange - 1].node_port == 32767);
  CHECK(full.services[kNodePortRange].node_port == 0);
}

TEST_CASE(
    "an iptables sync captures nodePorts in KUBE-NODEPORTS and masquerades them in "
    "KUBE-EXT (externalTrafficPolicy Cluster)") {
  BenchServices set = MakeBenchServices({.services = 3, .endpoints = 2, .node_ports = 2});
  AsKubeProxySvc3(set.services[1]);
  const std::string text = IptablesFullSync(set);
  // kube-proxy's lines for ns3/svc3:p80 with nodePort 3003, as its tests
  // expect them.
  CHECK(CountLines(text, ":KUBE-EXT-X27LE4BHSL4DOUIK - [0:0]") == 1);
  CHECK(CountLines(text,
                   "-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp "
                   "--dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK") == 1);
  CHECK(CountLines(text,
                   "-A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment \"masquerade "
                   "traffic for ns3/svc3:p80 external destinations\" -j KUBE-MARK-MASQ") == 1);
  CHECK(CountLines(text, "-A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK") == 1);
  // Service 0 too; Service 2 (ClusterIP) has no EXT chain.
  CHECK(CountLines(text, "-A KUBE-NODEPORTS") == 2);
  CHECK(CountLines(text, ":KUBE-EXT-") == 2);
  CHECK_FALSE(absl::StrContains(text, IptablesExternalChain(set.services[2])));
  // The nodeports jump is the last KUBE-SERVICES rule, for every local
  // destination (default --nodeport-addresses).
  std::string last_services_rule;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, "-A KUBE-SERVICES")) {
      last_services_rule = std::string(line);
    }
  }
  CHECK(last_services_rule ==
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must "
        "be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS");
  CHECK(CountIptablesRules(set).rules ==
        CountIptablesRules(MakeBenchServices({.services = 3, .endpoints = 2})).rules + 2 * 3);
  // A partial sync rewrites KUBE-NODEPORTS whole (its chain line flushes
  // it), and the changed Service's EXT chain.
  const size_t changed[] = {1};
  const std::string partial = IptablesPartialSync(set, changed, {});
  CHECK(CountLines(partial, "-A KUBE-NODEPORTS") == 2);
  CHECK(CountLines(partial, ":KUBE-EXT-") == 1);
  CHECK(CountLines(partial, "-A KUBE-EXT-X27LE4BHSL4DOUIK") == 2);
}

TEST_CASE("an nftables sync maps nodePorts through service-nodeports to external- chains") {
  BenchServices set = MakeBenchServices({.services = 2, .endpoints = 1, .node_ports = 1});
  AsKubeProxySvc3(set.services[0]);
  const std::string text = NftablesFullSync(set);
  CHECK(CountLines(text,
                   "add element ip kube-proxy service-nodeports { tcp . 3003 : goto "
                   "external-4AT6LBPK-ns3/svc3/tcp/p80 }") == 1);
  CHECK(CountLines(text, "add chain ip kube-proxy external-4AT6LBPK-ns3/svc3/tcp/p80") == 1);
  CHECK(CountLines(text,
                   "add rule ip kube-proxy external-4AT6LBPK-ns3/svc3/tcp/p80 jump "
                   "mark-for-masquerade") == 1);
  CHECK(CountLines(text,
                   "add rule ip kube-proxy external-4AT6LBPK-ns3/svc3/tcp/p80 goto "
                   "service-4AT6LBPK-ns3/svc3/tcp/p80") == 1);
  CHECK(CountLines(text, "add element ip kube-proxy service-nodeports") == 1);
  CHECK(CountLines(text, "add chain ip kube-proxy external-") == 1);
  const size_t changed[] = {0};
  CHECK(CountLines(NftablesPartialSync(set, changed, {}),
                   "add element ip kube-proxy service-nodeports { tcp . 3003 ") == 1);
}

TEST_CASE("statistic probabilities are 1/(M-j) with ten decimals and the last jump is unconditional") {
  CHECK(StatisticProbability(2) == "0.5000000000");
  CHECK(StatisticProbability(3) == "0.3333333333");
  const BenchServices set = MakeBenchServices({.services = 1, .endpoints = 4});
  const std::string text = IptablesFullSync(set);
  const std::string svc = IptablesServiceChain(set.services[0]);
  CHECK(absl::StrContains(text, "--probability 0.2500000000 -j"));
  CHECK(absl::StrContains(text, "--probability 0.3333333333 -j"));
  CHECK(absl::StrContains(text, "--probability 0.5000000000 -j"));
  CHECK(CountLines(text, absl::StrCat("-A ", svc)) == 1 + 4);
  size_t probabilistic = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    probabilistic += absl::StrContains(line, "--probability") ? 1 : 0;
  }
  CHECK(probabilistic == 3);
  // The last endpoint's jump carries no statistic match:
  CHECK(CountLines(text, absl::StrCat("-A ", svc, " -m comment --comment \"bench/svc-0:http -> "
                                                  "10.128.0.4:8080\" -j")) == 1);
}

TEST_CASE("a full iptables sync holds N(2+3M) service rules plus the fixed ones") {
  const BenchServices set = MakeBenchServices({.services = 7, .endpoints = 3});
  const std::string text = IptablesFullSync(set);
  const uint64_t service_rules = CountLines(text, "-A KUBE-SERVICES") - 1 +  // nodeports jump
                                 CountLines(text, "-A KUBE-SVC-") + CountLines(text, "-A KUBE-SEP-");
  CHECK(service_rules == 7 * (2 + 3 * 3));
  CHECK(CountIptablesRules(set).rules == service_rules + 5);
  CHECK(CountLines(text, ":KUBE-SEP-") == 21);
  CHECK(CountLines(text, "COMMIT") == 2);
}

TEST_CASE("one endpoint addresses one service: MakeBenchServices lays out disjoint ranges") {
  const BenchServices set = MakeBenchServices({.services = 3, .endpoints = 2, .first = 10});
  REQUIRE(set.services.size() == 3);
  CHECK(set.services[0].name == "svc-10");
  CHECK(FormatIpv4(set.services[0].cluster_ip) == "172.16.0.11");
  CHECK(set.services[0].endpoints[1].ToString() == "10.128.0.22:8080");
  CHECK(set.services[2].endpoints[1].ToString() == "10.128.0.26:8080");
  CHECK(set.EndpointCount() == 6);
}

TEST_CASE("a partial iptables sync rewrites KUBE-SERVICES but only the changed chains") {
  const BenchServices set = MakeBenchServices({.services = 5, .endpoints = 2});
  const size_t changed[] = {3};
  const std::string gone[] = {"KUBE-SEP-AAAAAAAAAAAAAAAA"};
  const std::string text = IptablesPartialSync(set, changed, gone);
  CHECK(CountLines(text, "-A KUBE-SERVICES") == 6);
  CHECK(CountLines(text, ":KUBE-SVC-") == 1);
  CHECK(CountLines(text, ":KUBE-SEP-") == 3);
  CHECK(CountLines(text, "-X KUBE-SEP-AAAAAAAAAAAAAAAA") == 1);
}

TEST_CASE("an nftables sync dispatches through service-ips and numgen vmaps") {
  const BenchServices set = MakeBenchServices({.services = 2, .endpoints = 3});
  const std::string text = NftablesFullSync(set);
  CHECK(CountLines(text, "add element ip kube-proxy service-ips { 172.16.0.") == 2);
  CHECK(absl::StrContains(text, "numgen random mod 3 vmap { 0 : goto endpoint-"));
  CHECK(CountLines(text, "add rule ip kube-proxy endpoint-") == 12);
  CHECK(absl::StrContains(text, "meta l4proto tcp dnat to 10.128.0.1:8080"));
  CHECK(NftablesPartialSync(set, {}, {}).empty());
}

// Runs `script` with sh in a new network namespace; the output of the last
// command is returned, empty when a command failed.
struct ShellResult {
  int status = -1;
  std::string output;
};

ShellResult RunInFreshNetns(const std::string& script) {
  const std::string path = absl::StrCat("/tmp/peer_rules_test.", getpid(), ".sh");
  {
    std::ofstream f(path);
    f << "set -e\n" << script;
  }
  ShellResult r;
  FILE* p = popen(absl::StrCat("unshare -n sh ", path, " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
    r.output.append(buf, n);
  }
  r.status = pclose(p);
  std::remove(path.c_str());
  return r;
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = absl::StrCat("/tmp/peer_rules_test.", getpid(), ".", name);
  std::ofstream(path) << text;
  return path;
}

void RequirePrivileges() {
  if (geteuid() == 0) {
    return;
  }
  const char* ci = std::getenv("CI");
  if (ci != nullptr && std::string(ci) == "true") {
    FAIL("loading rule sets needs root (CAP_NET_ADMIN) and CI=true forbids skipping");
  }
  std::fprintf(stderr, "SKIP: loading rule sets needs root (CAP_NET_ADMIN)\n");
  std::exit(77);
}

TEST_CASE("[load] iptables-restore loads the full and partial syncs on nft and legacy", "[load]") {
  RequirePrivileges();
  BenchServices set = MakeBenchServices({.services = 20, .endpoints = 3, .node_ports = 5});
  const std::string base = WriteTemp("base", IptablesBaseJumps());
  const std::string full = WriteTemp("full", IptablesFullSync(set));
  // Endpoint 0 of Service 4 moves to a new address.
  const std::string old_sep = IptablesEndpointChain(set.services[4], set.services[4].endpoints[0]);
  set.services[4].endpoints[0].ip = 0x0AFF0001;
  const size_t changed[] = {4};
  const std::string old_chains[] = {old_sep};
  const std::string partial = WriteTemp("partial", IptablesPartialSync(set, changed, old_chains));
  for (const char* variant : {"nft", "legacy"}) {
    INFO("iptables-" << variant);
    const std::string restore = absl::StrCat("iptables-", variant, "-restore");
    ShellResult r = RunInFreshNetns(absl::StrCat(
        restore, " --test --noflush < ", full, "\n", restore, " --noflush < ", base, "\n",
        restore, " --noflush < ", full, "\n", restore, " --noflush < ", partial, "\n",
        "iptables-", variant, "-save -t nat\n"));
    REQUIRE(r.status == 0);
    CHECK(CountLines(r.output, "-A KUBE-SERVICES") == 21);
    CHECK(CountLines(r.output, "-A KUBE-SEP-") == 20 * 3 * 2);
    CHECK(CountLines(r.output, "-A KUBE-NODEPORTS") == 5);
    CHECK(CountLines(r.output, "-A KUBE-EXT-") == 5 * 2);
    CHECK(absl::StrContains(r.output, "--dport 30004 -j KUBE-EXT-"));
    CHECK_FALSE(absl::StrContains(r.output, old_sep));
    CHECK(absl::StrContains(r.output, "--to-destination 10.255.0.1:8080"));
    CHECK(absl::StrContains(r.output, "-A PREROUTING -m comment --comment \"kubernetes service "
                                      "portals\" -j KUBE-SERVICES"));
  }
  for (const std::string& p : {base, full, partial}) {
    std::remove(p.c_str());
  }
}

TEST_CASE("[load] nft -f loads the full and partial transactions", "[load]") {
  RequirePrivileges();
  BenchServices set = MakeBenchServices({.services = 20, .endpoints = 3, .node_ports = 5});
  const std::string full = WriteTemp("full.nft", NftablesFullSync(set));
  const std::string old_chain = NftablesEndpointChain(set.services[4], set.services[4].endpoints[0]);
  set.services[4].endpoints[0].ip = 0x0AFF0001;
  // A new Service next to the changed one.
  BenchServices more = MakeBenchServices({.services = 21, .endpoints = 3});
  set.services.push_back(more.services[20]);
  const size_t changed[] = {4, 20};
  const std::string old_chains[] = {old_chain};
  const std::string partial = WriteTemp("partial.nft", NftablesPartialSync(set, changed, old_chains));
  ShellResult r = RunInFreshNetns(absl::StrCat("nft -c -f ", full, "\n", "nft -f ", full, "\n",
                                               "nft -f ", partial, "\n",
                                               "nft list table ip kube-proxy\n"));
  REQUIRE(r.status == 0);
  CHECK(absl::StrContains(r.output, "dnat to 10.255.0.1:8080"));
  CHECK_FALSE(absl::StrContains(r.output, old_chain));
  CHECK(absl::StrContains(r.output, "172.16.0.21 . tcp . 80 : goto service-"));
  CHECK(CountLines(r.output, "\tchain endpoint-") == 21 * 3);
  CHECK(CountLines(r.output, "\tchain external-") == 5);
  CHECK(absl::StrContains(r.output, "tcp . 30004 : goto external-"));
  for (const std::string& p : {full, partial}) {
    std::remove(p.c_str());
  }
}

TEST_CASE("[load] a malformed rule set is refused whole and leaves the kernel unchanged",
          "[load]") {
  RequirePrivileges();
  const BenchServices set = MakeBenchServices({.services = 3, .endpoints = 2});
  std::string bad_ipt = IptablesFullSync(set);
  bad_ipt.insert(bad_ipt.rfind("COMMIT"), "-A KUBE-SERVICES -j KUBE-SVC-DOESNOTEXIST\n");
  std::string bad_nft = NftablesFullSync(set) + "add rule ip kube-proxy services goto nowhere\n";
  const std::string ipt = WriteTemp("bad", bad_ipt);
  const std::string nft = WriteTemp("bad.nft", bad_nft);
  ShellResult r = RunInFreshNetns(absl::StrCat(
      "if iptables-nft-restore --noflush < ", ipt, "; then echo LOADED; fi\n",
      "if nft -f ", nft, "; then echo LOADED; fi\n",
      "iptables-nft-save -t nat | grep -c KUBE-SVC || true\n",
      "nft list tables | grep -c kube-proxy || true\n"));
  CHECK(r.status == 0);
  CHECK_FALSE(absl::StrContains(r.output, "LOADED"));
  CHECK(absl::StrContains(r.output, "0\n0\n"));
  std::remove(ipt.c_str());
  std::remove(nft.c_str());
}

}  // namespace
}  // namespace dpv2::bench
