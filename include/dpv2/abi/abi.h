/* dpv2 datapath ABI: every structure that crosses the user/kernel boundary.
 *
 * Included by the BPF programs (src/backends/ebpf/bpf), the C++ loader, and
 * the sim and DPDK backends, so that one layout serves all of them. Sizes and
 * offsets are checked by static_assert in src/core/abi_layout.cc.
 *
 *   #include <dpv2/abi/abi.h>
 *   struct dpv2_lb_key key;
 */
#ifndef DPV2_ABI_ABI_H_
#define DPV2_ABI_ABI_H_

#include "types.h"
#include "drop.h"
#include "counters.h"
#include "lb.h"
#include "ct.h"
#include "endpoint.h"
#include "policy.h"
#include "event.h"

#endif /* DPV2_ABI_ABI_H_ */
