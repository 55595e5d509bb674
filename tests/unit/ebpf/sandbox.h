// Sandbox: a private network and mount namespace for the calling test process
// (single-threaded), with bpffs mounted on a fresh directory inside it.
//
// Interfaces made inside (veth pairs) vanish with the network namespace when
// the process leaves it, even if a test fails halfway; the host's interfaces,
// routes and bpffs are never touched. The destructor unmounts and returns the
// process to the namespaces it came from.
//
//   std::unique_ptr<Sandbox> box = Sandbox::Enter().value();
//   REQUIRE(box->Run("ip link add h0 type veth peer name p0").ok());
//   EbpfOptions o{.pin_path = box->bpffs() + "/node"};
#ifndef DPV2_TESTS_UNIT_EBPF_SANDBOX_H_
#define DPV2_TESTS_UNIT_EBPF_SANDBOX_H_

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace dpv2::testing {

class Sandbox {
 public:
  static absl::StatusOr<std::unique_ptr<Sandbox>> Enter() {
    std::unique_ptr<Sandbox> box(new Sandbox());
    box->net_fd_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    box->mnt_fd_ = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
    if (box->net_fd_ < 0 || box->mnt_fd_ < 0) {
      return Errno("sandbox: open own namespaces");
    }
    if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0) {
      return Errno("sandbox: unshare net+mnt");
    }
    box->entered_ = true;
    if (mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      return Errno("sandbox: make mounts private");
    }
    char dir[] = "/tmp/dpv2-sandbox-XXXXXX";
    if (mkdtemp(dir) == nullptr) {
      return Errno("sandbox: mkdtemp");
    }
    box->bpffs_ = dir;
    if (mount("bpf", dir, "bpf", 0, nullptr) != 0) {
      return Errno(absl::StrCat("sandbox: mount bpffs on ", dir));
    }
    box->mounted_ = true;
    if (absl::Status s = box->Run("ip link set lo up"); !s.ok()) {
      return s;
    }
    return box;
  }

  ~Sandbox() {
    if (mounted_) {
      umount2(bpffs_.c_str(), MNT_DETACH);
    }
    if (!bpffs_.empty()) {
      rmdir(bpffs_.c_str());
    }
    if (entered_) {
      // Leaving drops the last reference to the network namespace: the
      // kernel deletes its interfaces (and the programs attached to them).
      setns(net_fd_, CLONE_NEWNET);
      setns(mnt_fd_, CLONE_NEWNS);
    }
    if (net_fd_ >= 0) {
      close(net_fd_);
    }
    if (mnt_fd_ >= 0) {
      close(mnt_fd_);
    }
  }

  const std::string& bpffs() const { return bpffs_; }

  // A command (ip, tc) run inside the namespaces; its stdout.
  absl::StatusOr<std::string> Output(const std::string& command) const {
    FILE* f = popen((command + " 2>&1").c_str(), "r");
    if (f == nullptr) {
      return Errno(absl::StrCat("sandbox: run ", command));
    }
    std::string out;
    char buf[512];
    while (size_t n = fread(buf, 1, sizeof(buf), f)) {
      out.append(buf, n);
    }
    const int rc = pclose(f);
    if (rc != 0) {
      return absl::InternalError(
          absl::StrCat("sandbox: `", command, "` exited with ", rc, ": ", out));
    }
    return out;
  }
  absl::Status Run(const std::string& command) const { return Output(command).status(); }

 private:
  Sandbox() = default;
  static absl::Status Errno(absl::string_view what) {
    return absl::InternalError(absl::StrCat(what, ": ", strerror(errno)));
  }

  int net_fd_ = -1;
  int mnt_fd_ = -1;
  bool entered_ = false;
  bool mounted_ = false;
  std::string bpffs_;
};

}  // namespace dpv2::testing

#endif  // DPV2_TESTS_UNIT_EBPF_SANDBOX_H_
