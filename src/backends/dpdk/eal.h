// The DPDK Environment Abstraction Layer, initialised once per process.
//
// rte_eal_init may run only once in a process and rte_eal_cleanup ends DPDK
// for good, so every DPDK backend of a process shares one EAL: the first
// backend initialises it with its arguments, later ones must ask for the same
// arguments (or none), and ShutdownDpdk() releases it after the last backend.
//
//   DPV2_RETURN_IF_ERROR(dpv2::dpdk::AcquireEal(options.eal_args));
//   ...   // ports, lcores
//   dpv2::dpdk::ReleaseEal();
#ifndef DPV2_BACKENDS_DPDK_EAL_H_
#define DPV2_BACKENDS_DPDK_EAL_H_

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace dpv2::dpdk {

// Initialises the EAL with `args` (argv without argv[0]) unless it already
// runs; counts one user.
absl::Status AcquireEal(const std::vector<std::string>& args);
// Drops one user; the EAL keeps running until ShutdownEal.
void ReleaseEal();
// rte_eal_cleanup, refused while a backend still uses the EAL.
absl::Status ShutdownEal();

}  // namespace dpv2::dpdk

#endif  // DPV2_BACKENDS_DPDK_EAL_H_
