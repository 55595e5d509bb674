// DatapathSkeleton: RAII ownership of the bpftool-generated skeletons of the
// tc datapath object (bpf/dpv2_tc.bpf.c) and, optionally, of the XDP object
// (bpf/dpv2_xdp.bpf.c), with every libbpf step returning a status that names
// what failed.
//
// Open, then Configure (tunables and map sizes from the DatapathConfig), then
// optionally PinUnder (maps reused from / pinned to a bpffs directory), then
// Load (the verifier runs here). The XDP object owns no state: Load hands it
// the tc object's maps, so both hooks are one datapath. The destructor closes
// everything; pinned maps and attached programs stay in the kernel.
//
//   DPV2_ASSIGN_OR_RETURN(std::unique_ptr<DatapathSkeleton> s, DatapathSkeleton::Open(true));
//   DPV2_RETURN_IF_ERROR(s->Configure(config, 1 << 20));
//   DPV2_RETURN_IF_ERROR(s->Load());
#ifndef DPV2_BACKENDS_EBPF_SKELETON_H_
#define DPV2_BACKENDS_EBPF_SKELETON_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "backends/ebpf/dpv2_tc.skel.h"
#include "backends/ebpf/dpv2_xdp.skel.h"
#include "dpv2/datapath_config.h"

namespace dpv2::ebpf {

class DatapathSkeleton {
 public:
  static absl::StatusOr<std::unique_ptr<DatapathSkeleton>> Open(bool with_xdp);
  ~DatapathSkeleton();
  DatapathSkeleton(const DatapathSkeleton&) = delete;
  DatapathSkeleton& operator=(const DatapathSkeleton&) = delete;

  absl::Status Configure(const DatapathConfig& config, uint32_t event_ring_bytes,
                         uint64_t clock_offset_ns, bool conntrack_prealloc = false);
  // BPF host routing in the tc object (bpf/fib.h, EbpfOptions::host_routing);
  // bpf_redirect_neigh only where the running kernel has it. Before Load.
  absl::Status SetHostRouting(bool on);
  // Every state map is pinned as <dir>/<map name>; existing pins are reused.
  absl::Status PinUnder(const std::string& dir);
  // Verifies and loads the programs. A pin this configuration cannot reuse
  // as it is (another size, flags, or a conntrack value of an older, shorter
  // layout) is migrated: a new map takes its place and its entries are
  // copied in, so a restart that resizes maps or upgrades the conntrack
  // layout keeps established connections. A pin of another type or key, or
  // any other value layout, is an error naming the map, and no pin changes.
  absl::Status Load();
  // Invalidates every conntrack entry's fast-path stamp (bpf/revision.h):
  // called after each apply, whatever it wrote, and by Load itself.
  absl::Status BumpRevision();

  dpv2_tc* get() const { return skel_; }
  dpv2_xdp* xdp() const { return xdp_; }  // null unless opened with XDP

 private:
  // A pin set aside by Load: its map (held open) until the new one is
  // loaded and filled.
  struct Migration {
    bpf_map* map;
    std::string path;
    int old_fd;
  };
  DatapathSkeleton(dpv2_tc* skel, dpv2_xdp* xdp) : skel_(skel), xdp_(xdp) {}
  absl::StatusOr<std::vector<Migration>> SetAsideIncompatiblePins();
  dpv2_tc* skel_;
  dpv2_xdp* xdp_;
  bool loaded_ = false;
};

}  // namespace dpv2::ebpf

#endif  // DPV2_BACKENDS_EBPF_SKELETON_H_
