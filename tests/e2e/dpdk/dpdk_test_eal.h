// One EAL for a whole DPDK test program: --no-huge, --no-pci, in memory, a
// no shared config, a file prefix unique to the process, three lcores (main + two workers).
//
// A test program calls RequireTestEal() at the start of every TEST_CASE.
// When the EAL cannot start for a user without root, the program exits 77
// (meson: skipped), unless CI=true, where that is a failure; as root it fails.
//
//   RequireTestEal();
//   auto backend = dpv2::MakeDpdkBackend(TestDpdkOptions({"net_ring0"}));
#ifndef DPV2_TESTS_E2E_DPDK_DPDK_TEST_EAL_H_
#define DPV2_TESTS_E2E_DPDK_DPDK_TEST_EAL_H_

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "backends/dpdk/eal.h"

namespace dpv2::dpdk {

inline std::vector<std::string> TestEalArgs(const std::vector<std::string>& vdevs = {}) {
  // Three lcores on the machine's first two CPUs: the main one and two
  // workers (tests of one worker name lcore 1 in their options).
  std::vector<std::string> args = {"--lcores", "0@0,1@1,2@1", "--no-huge", "--no-pci", "-m", "256", "--no-shconf",
                                   "--file-prefix", absl::StrCat("dpv2-test-", getpid()),
                                   "--log-level", "*:error"};
  for (const std::string& v : vdevs) {
    args.push_back("--vdev");
    args.push_back(v);
  }
  return args;
}

inline bool CiRequiresPrivilegedTests() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::strcmp(ci, "true") == 0;
}

// Initialises the EAL once; on failure skips (exit 77) or fails under CI.
// Returns the error text when the caller must fail, "" when ready.
inline std::string RequireTestEal(const std::vector<std::string>& vdevs = {}) {
  static const std::string* error = [&] {
    absl::Status s = AcquireEal(TestEalArgs(vdevs));
    if (s.ok()) {
      // Released at exit, after every backend of the program is gone.
      std::atexit([] {
        ReleaseEal();
        (void)ShutdownEal();
      });
      return new std::string();
    }
    if (geteuid() != 0 && !CiRequiresPrivilegedTests()) {
      std::fprintf(stderr,
                   "SKIP: the DPDK EAL could not start here (%s); these tests need the "
                   "privileges DPDK needs (root). Set CI=true to make this a failure.\n",
                   std::string(s.message()).c_str());
      std::exit(77);
    }
    return new std::string(s.message());
  }();
  return *error;
}

}  // namespace dpv2::dpdk

#endif  // DPV2_TESTS_E2E_DPDK_DPDK_TEST_EAL_H_
