// DpdkBackend::DumpState: the published tables as one batch of upserts, for
// a restarted control plane to adopt (docs/datapath.md "Restart adoption").
//
// Both table copies hold the same entries once Apply returns (it applies
// each batch to both), and only the control plane writes them, under
// control_mu_: reading copy 0 under that lock sees exactly what the lcores
// use, whichever copy they read now.
#include "absl/status/status.h"
#include "backends/dpdk/datapath_program.h"
#include "backends/dpdk/dpdk_backend.h"

namespace dpv2::dpdk {

absl::StatusOr<ChangeBatch> DpdkBackend::DumpState() {
  std::lock_guard<std::mutex> lock(control_mu_);
  if (tables_broken_) {
    return absl::FailedPreconditionError(
        "dpdk backend: an earlier publication did not complete; the table copies may differ");
  }
  return program_->Dump(0);
}

}  // namespace dpv2::dpdk
