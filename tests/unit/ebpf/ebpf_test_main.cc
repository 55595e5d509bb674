// The main of every eBPF unit test program: the tests need to load BPF
// programs (root or CAP_BPF + CAP_NET_ADMIN). Without that the program exits
// 77 (meson's skip) with the reason, unless CI=true, where it fails.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "catch_session.h"
#include "dpv2/ebpf.h"

int main(int argc, char** argv) {
  absl::StatusOr<std::unique_ptr<dpv2::Backend>> probe = dpv2::MakeEbpfBackend(
      {.config = {.max_services = 16, .max_backends = 16, .max_tables = 16}});
  if (!probe.ok()) {
    const char* ci = std::getenv("CI");
    const bool in_ci = ci != nullptr && std::string(ci) == "true";
    std::fprintf(stderr, "%s: cannot load BPF programs (%s)%s\n", argv[0],
                 probe.status().ToString().c_str(),
                 in_ci ? "" : "; skipping (needs root / CAP_BPF; set CI=true to fail instead)");
    return in_ci ? 1 : 77;
  }
  probe->reset();
  return dpv2::testing::RunCatchSession(argc, argv);
}
