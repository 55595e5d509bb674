// The conformance suite against the eBPF backend: every fixture runs through
// the real BPF programs with BPF_PROG_TEST_RUN (no interfaces needed). Time
// advances by ageing the timestamps stored in the conntrack and affinity
// maps, since the kernel's clock cannot be moved. Needs root (CAP_BPF).
//
// With --xdp (meson test conformance_ebpf_xdp) the backend also loads the
// XDP program: frames from the network run through its test-run twin first
// and through tc only when XDP hands them on, as on a node with XDP on its
// external device. Every case must give sim's result either way.
//
// With --checksum-helpers (meson test conformance_ebpf_helpers) the tc
// object is the helper-only build (EbpfOptions::checksum kHelpers), the one
// kernels without the bpf_cast_to_kern_ctx kfunc load: every NAT checksum
// goes through bpf_l4_csum_replace, and must give the same bytes.
//
// A load runs the verifier over the whole object (most of a second), so a
// backend is loaded once per distinct DatapathConfig and, after each case,
// returned to its just-loaded state with EbpfBackend::Reset. The harness
// then compares the backend's DatapathImage (every map's bytes, the
// loader's state) with the one it took right after the load: anything left
// behind fails that case and the backend is dropped. --fresh loads a new
// backend for every case instead (the slow, obviously independent way):
//
//   conformance_ebpf [--xdp] [--checksum-helpers] [--fresh] [Catch2 arguments]
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "backends/ebpf/ebpf_backend.h"
#include "conformance.h"
#include "dpv2/ebpf.h"

namespace dpv2::conformance {
namespace {

// Equal configurations give equal keys (DatapathConfig has no operator==).
std::string ConfigKey(const DatapathConfig& c) {
  return absl::StrCat(c.maglev_table_size, "/", c.max_services, "/", c.max_backends, "/",
                      c.max_tables, "/", c.ct_tcp_entries, "/", c.ct_other_entries, "/",
                      c.max_affinity, "/", c.max_source_ranges, "/", c.max_endpoints, "/",
                      c.max_ipcache, "/", c.max_policy_entries, "/", c.snat_entries, "/",
                      c.snat_port_min, "/", c.snat_port_max, "/", c.timeouts.tcp_established_s,
                      "/", c.timeouts.tcp_syn_s, "/", c.timeouts.tcp_close_s, "/",
                      c.timeouts.non_tcp_s);
}

class EbpfHarness : public ConformanceHarness {
 public:
  EbpfHarness(bool xdp, EbpfChecksum checksum, bool fresh)
      : xdp_(xdp), checksum_(checksum), fresh_(fresh) {}
  std::string Name() const override {
    return absl::StrCat(xdp_ ? "ebpf-xdp" : "ebpf",
                        checksum_ == EbpfChecksum::kHelpers ? "-helpers" : "");
  }

  absl::Status Prepare() override {
    // Loading the programs once tells whether this process may use BPF.
    absl::StatusOr<std::unique_ptr<Backend>> probe =
        MakeEbpfBackend({.config = {.max_services = 16, .max_backends = 16, .max_tables = 16},
                         .xdp = xdp_,
                         .checksum = checksum_});
    if (absl::IsPermissionDenied(probe.status())) {
      return absl::UnavailableError(absl::StrCat(
          "conformance_ebpf needs root or CAP_BPF + CAP_NET_ADMIN to load BPF programs: ",
          probe.status().message()));
    }
    if (!probe.ok()) {
      return probe.status();
    }
    // The cases must run the object this variant names.
    absl::StatusOr<EbpfLoadReport> report = EbpfLoadReportOf(**probe);
    if (!report.ok()) {
      return report.status();
    }
    if (checksum_ == EbpfChecksum::kHelpers && report->in_place_checksum) {
      return absl::InternalError("conformance ebpf-helpers: the in-place checksum object loaded");
    }
    std::fprintf(stderr, "conformance %s: tc object with %s checksums\n", Name().c_str(),
                 report->in_place_checksum ? "in-place" : "helper");
    return absl::OkStatus();
  }

  absl::Status Cleanup() override {
    std::fprintf(stderr, "conformance %s: %d loads, %d cases on a reset backend%s\n",
                 Name().c_str(), loads_, reuses_, fresh_ ? " (--fresh)" : "");
    idle_.clear();
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(const DatapathConfig& config) override {
    const std::string key = ConfigKey(config);
    if (auto it = idle_.find(key); it != idle_.end()) {
      std::unique_ptr<Backend> b = std::move(it->second);
      idle_.erase(it);
      ++reuses_;
      return b;
    }
    absl::StatusOr<std::unique_ptr<Backend>> b =
        MakeEbpfBackend({.config = config, .xdp = xdp_, .checksum = checksum_});
    if (!b.ok()) {
      return b;
    }
    ++loads_;
    if (fresh_) {
      return b;
    }
    if (!loaded_image_.contains(key)) {
      absl::StatusOr<ebpf::DatapathImage> image = AsEbpf(**b).Image();
      if (!image.ok()) {
        return image.status();
      }
      loaded_image_[key] = *std::move(image);
    }
    return b;
  }

  absl::Status Recycle(std::unique_ptr<Backend> backend, const DatapathConfig& config) override {
    if (fresh_) {
      return absl::OkStatus();
    }
    const std::string key = ConfigKey(config);
    ebpf::EbpfBackend& ebpf = AsEbpf(*backend);
    if (absl::Status s = ebpf.Reset(); !s.ok()) {
      return s;
    }
    absl::StatusOr<ebpf::DatapathImage> image = ebpf.Image();
    if (!image.ok()) {
      return image.status();
    }
    const std::string difference = ebpf::DescribeImageDifference(loaded_image_[key], *image);
    if (!difference.empty()) {
      return absl::InternalError(
          absl::StrCat("ebpf harness: a reset backend differs from a just-loaded one: ", difference));
    }
    idle_[key] = std::move(backend);
    return absl::OkStatus();
  }

  absl::Status AdvanceTime(Backend& backend, uint64_t ns) override {
    auto* ebpf = dynamic_cast<ebpf::EbpfBackend*>(&backend);
    if (ebpf == nullptr) {
      return absl::InvalidArgumentError("ebpf harness: backend not made by this harness");
    }
    return ebpf->AgeState(ns);
  }

 private:
  // Only this harness makes the backends it is given back.
  static ebpf::EbpfBackend& AsEbpf(Backend& b) { return static_cast<ebpf::EbpfBackend&>(b); }

  bool xdp_;
  EbpfChecksum checksum_;
  bool fresh_;
  // By ConfigKey: a just-loaded backend's image, and a reset backend ready.
  std::map<std::string, ebpf::DatapathImage> loaded_image_;
  std::map<std::string, std::unique_ptr<Backend>> idle_;
  int loads_ = 0;
  int reuses_ = 0;
};

}  // namespace
}  // namespace dpv2::conformance

int main(int argc, char** argv) {
  // --xdp, --checksum-helpers and --fresh are this program's; the rest goes
  // to Catch.
  bool xdp = false;
  dpv2::EbpfChecksum checksum = dpv2::EbpfChecksum::kAuto;
  bool fresh = false;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--xdp") == 0) {
      xdp = true;
    } else if (std::strcmp(argv[i], "--checksum-helpers") == 0) {
      checksum = dpv2::EbpfChecksum::kHelpers;
    } else if (std::strcmp(argv[i], "--fresh") == 0) {
      fresh = true;
    } else {
      args.push_back(argv[i]);
    }
  }
  return dpv2::conformance::RunConformanceMain(
      static_cast<int>(args.size()), args.data(),
      std::make_unique<dpv2::conformance::EbpfHarness>(xdp, checksum, fresh));
}
