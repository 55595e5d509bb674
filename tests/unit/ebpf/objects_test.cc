// Every feature combination of the BPF objects (src/backends/ebpf/meson.build,
// bpf/features.h) passes the kernel verifier. The objects the loader embeds
// are proven by the other eBPF tests; these are the rest, listed by meson in
// DPV2_BPF_OBJECTS (':'-separated paths). Needs root (CAP_BPF).
#include <bpf/libbpf.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace dpv2 {
namespace {

std::vector<std::string> ObjectPaths() {
  const char* list = std::getenv("DPV2_BPF_OBJECTS");
  if (list == nullptr) {
    return {};
  }
  return absl::StrSplit(list, ':', absl::SkipEmpty());
}

TEST_CASE("every feature combination of the tc and XDP objects is accepted by the verifier") {
  const std::vector<std::string> paths = ObjectPaths();
  // 7 combinations of three switches per hook besides the full build.
  REQUIRE(paths.size() == 14);
  for (const std::string& path : paths) {
    INFO(path);
    bpf_object* obj = bpf_object__open_file(path.c_str(), nullptr);
    REQUIRE(obj != nullptr);
    int programs = 0;
    bpf_program* prog;
    bpf_object__for_each_program(prog, obj) { ++programs; }
    CHECK(programs == (absl::StrContains(path, "dpv2_xdp") ? 2 : 4));
    const int err = bpf_object__load(obj);
    bpf_object__close(obj);
    CHECK(err == 0);
  }
}

TEST_CASE("a file that is not a BPF object is refused at open") {
  bpf_object* obj = bpf_object__open_file("/proc/self/status", nullptr);
  CHECK(obj == nullptr);
  bpf_object__close(obj);
}

}  // namespace
}  // namespace dpv2
