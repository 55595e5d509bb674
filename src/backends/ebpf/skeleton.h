// DatapathSkeleton: RAII ownership of the bpftool-generated skeletons of the
// tc datapath object (bpf/dpv2_tc.bpf.c) and, optionally, of the XDP object
// (bpf/dpv2_xdp.bpf.c), with every libbpf step returning a status that names
// what failed.
//
// The tc object exists in two builds of the same source (bpf/csum.h,
// DPV2_CSUM_KFUNC): the one updating NAT checksums in place needs the
// bpf_cast_to_kern_ctx kfunc (Linux 6.2+, BTF); the helper-only one loads on
// older kernels. Both have the same maps, programs and globals, so one
// skeleton struct (dpv2_tc) serves both: Open picks the object's bytes
// (EbpfOptions::checksum and a probe of the kernel's BTF) and opens the
// dpv2_tc skeleton over them. What Open and SetHostRouting decided is in
// report().
//
// Open, then Configure (tunables and map sizes from the DatapathConfig), then
// optionally PinUnder (maps reused from / pinned to a bpffs directory), then
// Load (the verifier runs here). The XDP object owns no state: Load hands it
// the tc object's maps, so both hooks are one datapath. The destructor closes
// everything; pinned maps and attached programs stay in the kernel.
//
//   DPV2_ASSIGN_OR_RETURN(std::unique_ptr<DatapathSkeleton> s,
//                         DatapathSkeleton::Open(true, EbpfChecksum::kAuto));
//   DPV2_RETURN_IF_ERROR(s->Configure(config, 1 << 20));
//   DPV2_RETURN_IF_ERROR(s->Load());
#ifndef DPV2_BACKENDS_EBPF_SKELETON_H_
#define DPV2_BACKENDS_EBPF_SKELETON_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "backends/ebpf/dpv2_tc.skel.h"
#include "backends/ebpf/dpv2_xdp.skel.h"
#include "dpv2/datapath_config.h"
#include "dpv2/ebpf.h"

namespace dpv2::ebpf {

// The two builds of the tc object.
enum class TcObject { kInPlaceChecksum, kHelperChecksum };

// The ELF bytes of a tc object as the loader embeds them (for tests).
absl::string_view TcObjectBytes(TcObject which);

// Which tc object `requested` gives on a kernel with or without the
// bpf_cast_to_kern_ctx kfunc; kInPlace without it is an error naming
// EbpfOptions::checksum. Adds a note to `report` when the helpers were
// chosen and sets report->in_place_checksum.
absl::StatusOr<TcObject> ChooseTcObject(EbpfChecksum requested, bool kernel_has_kfunc,
                                        EbpfLoadReport* report);
// Host routing as the kernel allows it: on only when asked for and the
// kernel has bpf_fib_lookup for tc programs; bpf_redirect_neigh only with
// it. A note for each part asked for and not possible.
void ChooseHostRouting(bool requested, bool has_fib_lookup, bool has_redirect_neigh,
                       EbpfLoadReport* report);
// Whether the running kernel's BTF has the kfunc (cached: the kernel does
// not change under a process). No BTF at all: false.
bool KernelHasCastToKernCtx();

class DatapathSkeleton {
 public:
  static absl::StatusOr<std::unique_ptr<DatapathSkeleton>> Open(
      bool with_xdp, EbpfChecksum checksum = EbpfChecksum::kAuto);
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
  // The tc object Open chose, host routing as SetHostRouting set it.
  const EbpfLoadReport& report() const { return report_; }

 private:
  // A pin set aside by Load: its map (held open) until the new one is
  // loaded and filled.
  struct Migration {
    bpf_map* map;
    std::string path;
    int old_fd;
  };
  DatapathSkeleton(dpv2_tc* skel, dpv2_xdp* xdp, EbpfLoadReport report)
      : skel_(skel), xdp_(xdp), report_(std::move(report)) {}
  absl::StatusOr<std::vector<Migration>> SetAsideIncompatiblePins();
  dpv2_tc* skel_;
  dpv2_xdp* xdp_;
  EbpfLoadReport report_;
  bool loaded_ = false;
};

}  // namespace dpv2::ebpf

#endif  // DPV2_BACKENDS_EBPF_SKELETON_H_
