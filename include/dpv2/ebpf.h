// dpv2 eBPF backend: the datapath as tc and XDP programs in the Linux kernel.
//
// MakeEbpfBackend loads the BPF programs (libbpf; needs root or CAP_BPF +
// CAP_NET_ADMIN), sizes their maps from the DatapathConfig and returns a
// Backend: Apply writes the maps, RunPacket runs a frame through the real
// program with BPF_PROG_TEST_RUN, counters come from per-CPU arrays and events
// from a BPF ring buffer. With a pin path, maps live on in bpffs so that a
// restarted process finds its state (and established connections) again.
// Only present when the library was built with the eBPF backend.
//
//   absl::StatusOr<std::unique_ptr<dpv2::Backend>> b = dpv2::MakeEbpfBackend(
//       {.config = {}, .pin_path = "/sys/fs/bpf/dpv2/node-a"});
//   DPV2_RETURN_IF_ERROR((*b)->Apply(batch));
#ifndef DPV2_EBPF_H_
#define DPV2_EBPF_H_

#include "dpv2_build_config.h"

#if DPV2_HAVE_EBPF

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dpv2/backend.h"
#include "dpv2/datapath_config.h"

namespace dpv2 {

// The datapath clock: CLOCK_MONOTONIC plus this offset. Conntrack and
// affinity timestamps (DumpConntrack) are in this clock; the offset lets a
// test age entries by moving them back in time without wrapping below zero.
inline constexpr uint64_t kEbpfClockOffsetNs = uint64_t{1} << 50;

// Which build of the tc object updates the L4 checksum of a DNAT / reverse
// NAT (docs/datapath.md, "Two tc objects"). kInPlace reads the skb's
// checksum state through the bpf_cast_to_kern_ctx kfunc and CO-RE (Linux
// 6.2+ with BTF) and updates the checksum in place unless the skb carries
// CHECKSUM_COMPLETE; kHelpers always calls bpf_l4_csum_replace (~100 ns more
// a translated packet here) and loads on older kernels. kAuto: kInPlace when
// the running kernel has the kfunc, else kHelpers.
enum class EbpfChecksum : uint8_t { kAuto, kInPlace, kHelpers };

struct EbpfOptions {
  DatapathConfig config;
  // A directory on a bpffs mount owned by this datapath instance. Maps are
  // pinned there and reused when they exist (a restart keeps conntrack and
  // configuration). Empty: nothing is pinned; the maps die with the backend.
  std::string pin_path;
  // Attach the from-pod program at tc ingress of every endpoint's ifindex as
  // endpoints are applied (replacing what is there, atomically).
  bool attach_to_endpoints = false;
  // The node's external device: tc ingress gets the from-network program,
  // and with `xdp` also the XDP program (native mode when the driver has it).
  uint32_t external_ifindex = 0;
  bool xdp = false;
  uint32_t event_ring_bytes = 1 << 20;  // a power of two, >= 4096
  // Conntrack maps preallocated at load (every entry's memory reserved up
  // front: ~170 bytes an entry, 128 MiB at the default 524,288 + 262,144
  // entries) instead of allocated per insert. A full map drops the new
  // connection (CT_FULL) either way. ebpf_bench measures both.
  bool conntrack_prealloc = false;
  // BPF host routing (like Cilium's enable-host-legacy-routing=false): a
  // packet the datapath would pass to the node's stack only to be forwarded
  // (from a pod to another node, the outside or a remote Service backend; a
  // NodePort reply; from the external device, only Service traffic) is
  // routed by the tc program itself: a FIB lookup, TTL / hop limit
  // decremented, next-hop MACs, redirect to the egress device. It skips the
  // stack's forwarding path (faster) and needs no accept_local for NodePort
  // replies. What the FIB does not forward plainly (local addresses,
  // unreachable, fragmentation needed, TTL 1...) still goes to the stack.
  // Turn it off when the node's iptables/nftables FORWARD or POSTROUTING
  // rules must see pod traffic (iptables masquerading of pod egress, a host
  // firewall, tcpdump-style accounting on the forward path): redirected
  // packets never reach those hooks. Test runs (RunPacket) never route.
  bool host_routing = true;
  // kInPlace on a kernel without the kfunc fails at load, naming this field.
  EbpfChecksum checksum = EbpfChecksum::kAuto;
};

absl::StatusOr<std::unique_ptr<Backend>> MakeEbpfBackend(const EbpfOptions& options);

// What a loaded eBPF datapath runs, as decided at load for the running
// kernel: an operator sees a fallback here (dpv2-agent logs it at start)
// instead of only in the figures.
struct EbpfLoadReport {
  bool in_place_checksum = false;  // the tc object built with the kfunc
  bool host_routing = false;       // asked for and possible (bpf_fib_lookup)
  bool redirect_neigh = false;     // host routing resolves neighbours too
  // One sentence per thing the options asked for that this kernel cannot
  // give, or per choice slower than the best this build has, saying why.
  std::vector<std::string> notes;
};

// The report of a backend MakeEbpfBackend made; InvalidArgument for any
// other backend.
absl::StatusOr<EbpfLoadReport> EbpfLoadReportOf(const Backend& backend);

}  // namespace dpv2

#endif  // DPV2_HAVE_EBPF
#endif  // DPV2_EBPF_H_
