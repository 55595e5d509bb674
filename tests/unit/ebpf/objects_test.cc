// Every feature combination of the BPF objects (src/backends/ebpf/meson.build,
// bpf/features.h) passes the kernel verifier. The objects the loader embeds
// are proven by the other eBPF tests; these are the rest, listed by meson in
// DPV2_BPF_OBJECTS (':'-separated paths). Needs root (CAP_BPF). Also: the
// loader's filter on libbpf's log (src/backends/ebpf/skeleton.cc), and what
// an object without policy stamps, run over a loaded backend's maps.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "backends/ebpf/ebpf_backend.h"
#include "dpv2/ebpf.h"
#include "dpv2/packet.h"
#include "sandbox.h"
#include "../datapath/pipeline_fixtures.h"

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

// The loaded tc object's read-only data (the loader's tunables), read back
// through a program that uses it.
std::string LoadedRodata(int prog_fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  REQUIRE(bpf_obj_get_info_by_fd(prog_fd, &info, &len) == 0);
  std::vector<uint32_t> ids(info.nr_map_ids);
  bpf_prog_info with_ids{};
  with_ids.nr_map_ids = static_cast<uint32_t>(ids.size());
  with_ids.map_ids = reinterpret_cast<uint64_t>(ids.data());
  len = sizeof(with_ids);
  REQUIRE(bpf_obj_get_info_by_fd(prog_fd, &with_ids, &len) == 0);
  for (uint32_t id : ids) {
    const int fd = bpf_map_get_fd_by_id(id);
    REQUIRE(fd >= 0);
    absl::Cleanup close_fd = [fd] { close(fd); };
    bpf_map_info m{};
    uint32_t mlen = sizeof(m);
    REQUIRE(bpf_obj_get_info_by_fd(fd, &m, &mlen) == 0);
    if (absl::EndsWith(m.name, ".rodata")) {
      std::string value(m.value_size, '\0');
      const uint32_t zero = 0;
      REQUIRE(bpf_map_lookup_elem(fd, &zero, value.data()) == 0);
      return value;
    }
  }
  FAIL("no .rodata map");
  return "";
}

TEST_CASE("an object built without policy stamps a connection to a remote backend as passing "
          "to the stack, as the full build and the core pipeline do") {
  std::string path;
  for (const std::string& p : ObjectPaths()) {
    if (absl::StrContains(p, "dpv2_tc-ipv6_1-policy_0-events_1")) {
      path = p;
    }
  }
  REQUIRE(!path.empty());
  absl::StatusOr<std::unique_ptr<testing::Sandbox>> box = testing::Sandbox::Enter();
  INFO(box.status().ToString());
  REQUIRE(box.ok());
  const std::string pins = (*box)->bpffs() + "/node";
  // Client pod 10.0.1.5 on ifindex 7; ClusterIP 10.96.0.1:80 with one
  // backend, 10.0.3.3:8080, that is no local pod.
  constexpr uint32_t kM = 251;
  absl::StatusOr<std::unique_ptr<Backend>> b = MakeEbpfBackend(
      {.config = {.maglev_table_size = kM, .max_services = 16, .max_backends = 16,
                  .max_tables = 16, .ct_tcp_entries = 64, .ct_other_entries = 64},
       .pin_path = pins});
  INFO(b.status().ToString());
  REQUIRE(b.ok());
  ChangeBatch batch = OneServiceBatch("10.0.3.3", kM);
  const EndpointEntry client = Pod("10.0.1.5", 1, 7, 0, 0);
  batch.endpoints_upsert = {client};
  REQUIRE((*b)->Apply(batch).ok());

  // The policy-off object over the backend's pinned maps and tunables.
  bpf_object* obj = bpf_object__open_file(path.c_str(), nullptr);
  REQUIRE(obj != nullptr);
  absl::Cleanup close_obj = [obj] { bpf_object__close(obj); };
  const std::string rodata =
      LoadedRodata(dynamic_cast<ebpf::EbpfBackend*>(b->get())->from_pod_test_fd());
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    if (absl::EndsWith(bpf_map__name(map), ".rodata")) {
      REQUIRE(bpf_map__set_initial_value(map, rodata.data(), rodata.size()) == 0);
      continue;
    }
    // The backend's map itself (its sizes come with it); the rest (per-CPU
    // scratch space) is the object's own.
    const int fd = bpf_obj_get(absl::StrCat(pins, "/", bpf_map__name(map)).c_str());
    if (fd >= 0) {
      const int err = bpf_map__reuse_fd(map, fd);
      close(fd);  // reuse_fd holds its own descriptor
      REQUIRE(err == 0);
    }
  }
  REQUIRE(bpf_object__load(obj) == 0);
  bpf_program* prog = bpf_object__find_program_by_name(obj, "dpv2_from_pod_test");
  REQUIRE(prog != nullptr);
  // The SYN stamps the new connection; an apply before each ACK makes it
  // re-stamp the established connection (the full path, where no policy
  // lookup has asked for the destination's endpoint).
  for (uint8_t flags : {kTcpSyn, kTcpAck, kTcpAck, kTcpAck}) {
    if (flags == kTcpAck) {
      ChangeBatch same;
      same.endpoints_upsert.push_back(client);
      REQUIRE((*b)->Apply(same).ok());
    }
    std::vector<uint8_t> frame =
        PacketBuilder().IPv4("10.0.1.5", "10.96.0.1").Tcp(40000, 80, flags).Build();
    std::vector<uint8_t> out(frame.size() + 64);
    __sk_buff ctx{};
    ctx.cb[3] = 7;  // the ingress (DPV2_CB_IN_IFINDEX)
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = frame.data(), .data_out = out.data(),
                .data_size_in = static_cast<uint32_t>(frame.size()),
                .data_size_out = static_cast<uint32_t>(out.size()), .ctx_in = &ctx,
                .ctx_out = &ctx, .ctx_size_in = sizeof(ctx), .ctx_size_out = sizeof(ctx));
    REQUIRE(bpf_prog_test_run_opts(bpf_program__fd(prog), &opts) == 0);
    CHECK(ctx.cb[0] == 0);  // DPV2_V_PASS: the backend is behind the uplink
  }
  absl::StatusOr<std::vector<ConntrackEntry>> ct = (*b)->DumpConntrack();
  REQUIRE(ct.ok());
  REQUIRE(ct->size() == 2);
  for (const ConntrackEntry& e : *ct) {
    if (e.key.flags & DPV2_CT_KEY_SERVICE) {
      CHECK(e.value.revision != 0);
      CHECK(e.value.cache_flags == (DPV2_CT_C_FROM_POD | DPV2_CT_C_PASS));
    }
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
