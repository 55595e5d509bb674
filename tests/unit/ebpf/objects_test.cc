// Every feature combination of the BPF objects (src/backends/ebpf/meson.build,
// bpf/features.h) passes the kernel verifier. The objects the loader embeds
// are proven by the other eBPF tests; these are the rest, listed by meson in
// DPV2_BPF_OBJECTS (':'-separated paths), with the helper-checksum tc object.
// Needs root (CAP_BPF). Also: the loader's filter on libbpf's log
// (src/backends/ebpf/skeleton.cc), what an object without policy stamps, run
// over a loaded backend's maps, and the two tc objects the loader embeds:
// what each references, that one skeleton fits both, and how the loader
// chooses (and reports) them and host routing.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <elf.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "backends/ebpf/ebpf_backend.h"
#include "dpv2/ebpf.h"
#include "dpv2/packet.h"
#include "dpv2/sim.h"
#include "program_map.h"
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
  // 7 combinations of three switches per hook besides the full build, and
  // the helper-checksum tc object.
  REQUIRE(paths.size() == 15);
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
  const int fd = testing::ProgramMap(
      prog_fd, [](const bpf_map_info& m) { return absl::EndsWith(m.name, ".rodata"); });
  REQUIRE(fd >= 0);
  absl::Cleanup close_fd = [fd] { close(fd); };
  bpf_map_info m{};
  uint32_t len = sizeof(m);
  REQUIRE(bpf_obj_get_info_by_fd(fd, &m, &len) == 0);
  std::string value(m.value_size, '\0');
  const uint32_t zero = 0;
  REQUIRE(bpf_map_lookup_elem(fd, &zero, value.data()) == 0);
  return value;
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

// The bytes of section `name` of an ELF64 object in memory; empty if none.
absl::string_view ElfSection(absl::string_view elf, absl::string_view name) {
  Elf64_Ehdr eh;
  REQUIRE(elf.size() >= sizeof(eh));
  std::memcpy(&eh, elf.data(), sizeof(eh));
  REQUIRE(std::memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0);
  REQUIRE(eh.e_shoff + uint64_t{eh.e_shnum} * sizeof(Elf64_Shdr) <= elf.size());
  auto section = [&](size_t i) {
    Elf64_Shdr sh;
    std::memcpy(&sh, elf.data() + eh.e_shoff + i * sizeof(sh), sizeof(sh));
    REQUIRE(sh.sh_offset + sh.sh_size <= elf.size());
    return sh;
  };
  const Elf64_Shdr names = section(eh.e_shstrndx);
  for (size_t i = 0; i < eh.e_shnum; ++i) {
    const Elf64_Shdr sh = section(i);
    REQUIRE(sh.sh_name < names.sh_size);
    if (std::strcmp(elf.data() + names.sh_offset + sh.sh_name, std::string(name).c_str()) ==
        0) {
      return elf.substr(sh.sh_offset, sh.sh_size);
    }
  }
  return {};
}

// core_relo_len of an object's .BTF.ext header (libbpf's struct
// btf_ext_header, not public, and libbpf 1.1 exports no btf_ext__raw_data:
// magic u16, version u8, flags u8, hdr_len u32, then offset/length pairs of
// func_info, line_info and CO-RE relocations). 0 when the header predates
// CO-RE.
uint32_t CoreReloBytes(absl::string_view elf) {
  const absl::string_view ext = ElfSection(elf, ".BTF.ext");
  REQUIRE(ext.size() >= 8);
  uint16_t magic = 0;
  uint32_t hdr_len = 0;
  std::memcpy(&magic, ext.data(), 2);
  std::memcpy(&hdr_len, ext.data() + 4, 4);
  REQUIRE(magic == 0xeB9F);
  if (hdr_len < 32) {
    return 0;
  }
  REQUIRE(ext.size() >= 32);
  uint32_t core_relo_len = 0;
  std::memcpy(&core_relo_len, ext.data() + 28, 4);
  return core_relo_len;
}

// An object opened from its bytes (not loaded), named as the skeleton
// names it.
struct OpenedObject {
  explicit OpenedObject(absl::string_view elf) {
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "dpv2_tc");
    obj = bpf_object__open_mem(elf.data(), elf.size(), &opts);
    REQUIRE(obj != nullptr);
  }
  ~OpenedObject() { bpf_object__close(obj); }
  bpf_object* obj;
};

TEST_CASE("the helper-checksum tc object references no kfunc and no CO-RE relocation; the "
          "in-place one references bpf_cast_to_kern_ctx and relocates skb->ip_summed") {
  const absl::string_view helpers = ebpf::TcObjectBytes(ebpf::TcObject::kHelperChecksum);
  const absl::string_view in_place = ebpf::TcObjectBytes(ebpf::TcObject::kInPlaceChecksum);
  OpenedObject h(helpers);
  const btf* types = bpf_object__btf(h.obj);
  REQUIRE(types != nullptr);
  CHECK(btf__find_by_name_kind(types, "bpf_cast_to_kern_ctx", BTF_KIND_FUNC) < 0);
  CHECK(btf__find_by_name_kind(types, "sk_buff___dpv2", BTF_KIND_STRUCT) < 0);
  CHECK(CoreReloBytes(helpers) == 0);

  // The same checks can fail: they find both in the other build.
  OpenedObject i(in_place);
  types = bpf_object__btf(i.obj);
  REQUIRE(types != nullptr);
  CHECK(btf__find_by_name_kind(types, "bpf_cast_to_kern_ctx", BTF_KIND_FUNC) >= 0);
  CHECK(btf__find_by_name_kind(types, "sk_buff___dpv2", BTF_KIND_STRUCT) >= 0);
  CHECK(CoreReloBytes(in_place) > 0);
}

// Maps (name, type, key and value size, entries, flags), programs (name,
// section) and the read-only globals (name, offset, size) of an object: what
// the dpv2_tc skeleton binds and lays out.
std::set<std::string> SkeletonShape(absl::string_view elf) {
  OpenedObject opened(elf);
  bpf_object* obj = opened.obj;
  std::set<std::string> shape;
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    shape.insert(absl::StrCat("map ", bpf_map__name(map), " ", bpf_map__type(map), " ",
                              bpf_map__key_size(map), " ", bpf_map__value_size(map), " ",
                              bpf_map__max_entries(map), " ", bpf_map__map_flags(map)));
  }
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj) {
    shape.insert(absl::StrCat("prog ", bpf_program__name(prog), " ",
                              bpf_program__section_name(prog)));
  }
  const btf* types = bpf_object__btf(obj);
  REQUIRE(types != nullptr);
  const int rodata = btf__find_by_name_kind(types, ".rodata", BTF_KIND_DATASEC);
  REQUIRE(rodata >= 0);
  const btf_type* sec = btf__type_by_id(types, rodata);
  const btf_var_secinfo* var = btf_var_secinfos(sec);
  for (int i = 0; i < btf_vlen(sec); ++i, ++var) {
    const btf_type* v = btf__type_by_id(types, var->type);
    shape.insert(absl::StrCat("global ", btf__name_by_offset(types, v->name_off), " ",
                              var->offset, " ", var->size));
  }
  return shape;
}

TEST_CASE("the two tc objects have the same maps, programs and globals, so the dpv2_tc "
          "skeleton opens over either") {
  const std::set<std::string> in_place =
      SkeletonShape(ebpf::TcObjectBytes(ebpf::TcObject::kInPlaceChecksum));
  const std::set<std::string> helpers =
      SkeletonShape(ebpf::TcObjectBytes(ebpf::TcObject::kHelperChecksum));
  CHECK(in_place == helpers);
  // The shape holds what it should (the comparison cannot pass empty).
  for (absl::string_view part : {"map dpv2_ct_tcp ", "map dpv2_tc.rodata ",
                                  "prog dpv2_from_pod tc", "global cfg_host_routing "}) {
    INFO(part);
    CHECK(std::any_of(in_place.begin(), in_place.end(),
                      [part](const std::string& s) { return absl::StartsWith(s, part); }));
  }
}

TEST_CASE("the checksum option picks the tc object: kAuto the in-place one when the kernel "
          "has the kfunc, kHelpers always the helpers, kInPlace fails without the kfunc") {
  for (bool kfunc : {true, false}) {
    INFO("kernel has the kfunc: " << kfunc);
    EbpfLoadReport report;
    absl::StatusOr<ebpf::TcObject> chosen =
        ebpf::ChooseTcObject(EbpfChecksum::kAuto, kfunc, &report);
    REQUIRE(chosen.ok());
    CHECK(*chosen == (kfunc ? ebpf::TcObject::kInPlaceChecksum
                            : ebpf::TcObject::kHelperChecksum));
    CHECK(report.in_place_checksum == kfunc);
    // A fallback the operator did not ask for is said, with its reason.
    REQUIRE(report.notes.size() == (kfunc ? 0u : 1u));
    if (!kfunc) {
      CHECK(absl::StrContains(report.notes[0], "no bpf_cast_to_kern_ctx kfunc"));
    }

    EbpfLoadReport forced;
    chosen = ebpf::ChooseTcObject(EbpfChecksum::kHelpers, kfunc, &forced);
    REQUIRE(chosen.ok());
    CHECK(*chosen == ebpf::TcObject::kHelperChecksum);
    CHECK_FALSE(forced.in_place_checksum);
    REQUIRE(forced.notes.size() == 1);
    CHECK(absl::StrContains(forced.notes[0], "checksum kHelpers"));

    EbpfLoadReport strict;
    chosen = ebpf::ChooseTcObject(EbpfChecksum::kInPlace, kfunc, &strict);
    CHECK(chosen.ok() == kfunc);
    if (kfunc) {
      CHECK(*chosen == ebpf::TcObject::kInPlaceChecksum);
      CHECK(strict.in_place_checksum);
    } else {
      CHECK(absl::IsFailedPrecondition(chosen.status()));
      CHECK(absl::StrContains(chosen.status().message(), "checksum kInPlace"));
      CHECK(absl::StrContains(chosen.status().message(), "bpf_cast_to_kern_ctx"));
    }
  }
  EbpfLoadReport bad;
  CHECK(ebpf::ChooseTcObject(static_cast<EbpfChecksum>(7), true, &bad).status().code() ==
        absl::StatusCode::kInvalidArgument);
}

TEST_CASE("host routing is on only when asked for and the kernel has bpf_fib_lookup, and "
          "each part asked for but missing is reported") {
  struct Case {
    bool requested, fib, neigh;
    bool host_routing, redirect_neigh;
    const char* note;  // a phrase of the one note, or nullptr for none
  };
  for (const Case& c : {Case{true, true, true, true, true, nullptr},
                        Case{true, true, false, true, false, "without bpf_redirect_neigh"},
                        Case{true, false, false, false, false, "no bpf_fib_lookup"},
                        Case{true, false, true, false, false, "no bpf_fib_lookup"},
                        Case{false, true, true, false, false, nullptr},
                        Case{false, false, false, false, false, nullptr}}) {
    INFO("requested " << c.requested << ", fib " << c.fib << ", neigh " << c.neigh);
    EbpfLoadReport report;
    ebpf::ChooseHostRouting(c.requested, c.fib, c.neigh, &report);
    CHECK(report.host_routing == c.host_routing);
    CHECK(report.redirect_neigh == c.redirect_neigh);
    REQUIRE(report.notes.size() == (c.note != nullptr ? 1u : 0u));
    if (c.note != nullptr) {
      CHECK(absl::StrContains(report.notes[0], c.note));
    }
  }
}

TEST_CASE("a backend loads the tc object its checksum option names and reports it, with "
          "host routing as this kernel allows it") {
  const DatapathConfig config = {.max_services = 16, .max_backends = 16, .max_tables = 16};
  absl::StatusOr<std::unique_ptr<Backend>> helpers = MakeEbpfBackend(
      {.config = config, .host_routing = false, .checksum = EbpfChecksum::kHelpers});
  INFO(helpers.status().ToString());
  REQUIRE(helpers.ok());
  absl::StatusOr<EbpfLoadReport> report = EbpfLoadReportOf(**helpers);
  REQUIRE(report.ok());
  CHECK_FALSE(report->in_place_checksum);
  CHECK_FALSE(report->host_routing);  // not asked for: no note either
  CHECK_FALSE(report->redirect_neigh);
  REQUIRE(report->notes.size() == 1);
  CHECK(absl::StrContains(report->notes[0], "checksum kHelpers"));

  absl::StatusOr<std::unique_ptr<Backend>> automatic = MakeEbpfBackend({.config = config});
  REQUIRE(automatic.ok());
  report = EbpfLoadReportOf(**automatic);
  REQUIRE(report.ok());
  CHECK(report->in_place_checksum == ebpf::KernelHasCastToKernCtx());
  CHECK(report->host_routing);  // EbpfOptions' default; Linux 6.x has both helpers
  CHECK(report->redirect_neigh);
  CHECK(report->notes.size() == (ebpf::KernelHasCastToKernCtx() ? 0u : 1u));

  absl::StatusOr<std::unique_ptr<Backend>> in_place = MakeEbpfBackend(
      {.config = config, .host_routing = false, .checksum = EbpfChecksum::kInPlace});
  if (!ebpf::KernelHasCastToKernCtx()) {
    CHECK(absl::IsFailedPrecondition(in_place.status()));
    return;
  }
  REQUIRE(in_place.ok());
  report = EbpfLoadReportOf(**in_place);
  REQUIRE(report.ok());
  CHECK(report->in_place_checksum);
  CHECK(report->notes.empty());
  // Another program runs, not only another report: the helper build's
  // from-pod program (same tunables) is shorter after the verifier.
  auto xlated_bytes = [](const std::unique_ptr<Backend>& b) {
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    REQUIRE(bpf_obj_get_info_by_fd(dynamic_cast<ebpf::EbpfBackend&>(*b).from_pod_fd(), &info,
                                   &len) == 0);
    return info.xlated_prog_len;
  };
  CHECK(xlated_bytes(*helpers) < xlated_bytes(*in_place));

  absl::StatusOr<std::unique_ptr<Backend>> sim = MakeSimBackend({});
  REQUIRE(sim.ok());
  CHECK(absl::IsInvalidArgument(EbpfLoadReportOf(**sim).status()));
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
