// Every feature combination of the BPF objects (src/backends/ebpf/meson.build,
// bpf/features.h) passes the kernel verifier. The objects the loader embeds
// are proven by the other eBPF tests; these are the rest, listed by meson in
// DPV2_BPF_OBJECTS (':'-separated paths). Needs root (CAP_BPF). Also: the
// loader's filter on libbpf's log (src/backends/ebpf/skeleton.cc).
#include <bpf/libbpf.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdarg>
#include <cstdio>
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

// Calls libbpf's current print callback as libbpf itself would.
int LibbpfPrint(libbpf_print_fn_t fn, libbpf_print_level level, const char* format, ...) {
  va_list args;
  va_start(args, format);
  const int n = fn(level, format, args);
  va_end(args);
  return n;
}

// What `print` writes to stderr (fd 2), read back from a temporary file.
template <typename Print>
std::string CaptureStderr(Print print) {
  std::fflush(stderr);
  FILE* tmp = std::tmpfile();
  REQUIRE(tmp != nullptr);
  const int saved = dup(2);
  REQUIRE(saved >= 0);
  REQUIRE(dup2(fileno(tmp), 2) >= 0);
  print();
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::string out;
  std::rewind(tmp);
  char buf[256];
  while (size_t n = std::fread(buf, 1, sizeof(buf), tmp)) {
    out.append(buf, n);
  }
  std::fclose(tmp);
  return out;
}

TEST_CASE("libbpf's log keeps warnings but not the tc hook's known EEXIST line") {
  // The main opened a datapath, which installs the filter (skeleton.cc).
  libbpf_print_fn_t fn = libbpf_set_print(nullptr);
  libbpf_set_print(fn);
  REQUIRE(fn != nullptr);
  const std::string out = CaptureStderr([fn] {
    LibbpfPrint(fn, LIBBPF_WARN, "libbpf: Kernel error message: %s\n",
                "Exclusivity flag on, cannot modify.");
    LibbpfPrint(fn, LIBBPF_WARN, "libbpf: map '%s': a warning to keep\n", "dpv2_ct_tcp");
    LibbpfPrint(fn, LIBBPF_DEBUG, "libbpf: a debug line %d\n", 7);
  });
  CHECK_FALSE(absl::StrContains(out, "Exclusivity"));
  CHECK(absl::StrContains(out, "map 'dpv2_ct_tcp': a warning to keep"));
  CHECK_FALSE(absl::StrContains(out, "debug line"));
}

}  // namespace
}  // namespace dpv2
