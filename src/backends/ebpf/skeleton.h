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
                         uint64_t clock_offset_ns);
  // Every state map is pinned as <dir>/<map name>; existing pins are reused.
  absl::Status PinUnder(const std::string& dir);
  absl::Status Load();
  // Invalidates every conntrack entry's fast-path stamp (bpf/revision.h):
  // called after each apply, whatever it wrote, and by Load itself.
  absl::Status BumpRevision();

  dpv2_tc* get() const { return skel_; }
  dpv2_xdp* xdp() const { return xdp_; }  // null unless opened with XDP

 private:
  DatapathSkeleton(dpv2_tc* skel, dpv2_xdp* xdp) : skel_(skel), xdp_(xdp) {}
  dpv2_tc* skel_;
  dpv2_xdp* xdp_;
  bool loaded_ = false;
};

}  // namespace dpv2::ebpf

#endif  // DPV2_BACKENDS_EBPF_SKELETON_H_
