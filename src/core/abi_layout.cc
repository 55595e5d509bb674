// Compile-time checks of the ABI layouts in <dpv2/abi/abi.h>. The BPF programs
// compile the same header; a size or offset change here is a change of the
// kernel/user contract and must be deliberate.
#include <cstddef>

#include "dpv2/abi/abi.h"

namespace dpv2 {
namespace {

static_assert(sizeof(dpv2_addr) == 16);
static_assert(sizeof(dpv2_lb_key) == 24 && offsetof(dpv2_lb_key, port) == 16);
static_assert(sizeof(dpv2_lb_value) == 16);
static_assert(sizeof(dpv2_backend) == 24);
static_assert(sizeof(dpv2_affinity_key) == 24);
static_assert(sizeof(dpv2_affinity_value) == 16);
static_assert(sizeof(dpv2_src_range_key) == 28 && offsetof(dpv2_src_range_key, addr) == 12);
static_assert(sizeof(dpv2_ct_key) == 40 && offsetof(dpv2_ct_key, sport) == 32);
static_assert(sizeof(dpv2_ct_value) == 80 && offsetof(dpv2_ct_value, nat_addr) == 32 &&
              offsetof(dpv2_ct_value, revision) == 72);
static_assert(sizeof(dpv2_snat_value) == 32 && offsetof(dpv2_snat_value, created_ns) == 24);
static_assert(sizeof(dpv2_node_addr_key) == 4 && sizeof(dpv2_node_addr_value) == 16);
static_assert(sizeof(dpv2_endpoint_key) == 20);
static_assert(sizeof(dpv2_endpoint_value) == 32);
static_assert(sizeof(dpv2_ipcache_key) == 24 && offsetof(dpv2_ipcache_key, addr) == 8);
static_assert(sizeof(dpv2_ipcache_value) == 8);
static_assert(sizeof(dpv2_policy_key) == 16 && offsetof(dpv2_policy_key, dport) == 14);
static_assert(sizeof(dpv2_policy_value) == 8);
static_assert(sizeof(dpv2_event) == 104 && sizeof(dpv2_event) % 8 == 0);
static_assert(DPV2_DROP_MAX < 256 && DPV2_CNT_MAX < 64);

}  // namespace
}  // namespace dpv2
