#include "backends/dpdk/eal.h"

#include "backends/dpdk/rte.h"

#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dpv2::dpdk {
namespace {

struct EalRuntime {
  std::mutex mu;
  bool running = false;
  bool shut_down = false;
  int users = 0;
  std::vector<std::string> args;
};

EalRuntime& Runtime() {
  static EalRuntime* runtime = new EalRuntime();
  return *runtime;
}

}  // namespace

absl::Status AcquireEal(const std::vector<std::string>& args) {
  EalRuntime& rt = Runtime();
  std::lock_guard<std::mutex> lock(rt.mu);
  if (rt.shut_down) {
    return absl::FailedPreconditionError(
        "dpdk eal: already shut down in this process; it cannot be initialised twice");
  }
  if (rt.running) {
    if (!args.empty() && args != rt.args) {
      return absl::FailedPreconditionError(absl::StrCat(
          "dpdk eal: already running with arguments \"", absl::StrJoin(rt.args, " "),
          "\"; eal_args \"", absl::StrJoin(args, " "), "\" differ"));
    }
    ++rt.users;
    return absl::OkStatus();
  }
  // rte_eal_init may permute argv and keeps pointers into it: keep the
  // strings alive for the life of the process.
  static std::vector<std::string>* storage = new std::vector<std::string>();
  *storage = args;
  storage->insert(storage->begin(), "dpv2");
  static std::vector<char*>* argv = new std::vector<char*>();
  argv->clear();
  for (std::string& s : *storage) {
    argv->push_back(s.data());
  }
  argv->push_back(nullptr);
  int rc = rte_eal_init(static_cast<int>(storage->size()), argv->data());
  if (rc < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "dpdk eal: rte_eal_init(\"", absl::StrJoin(args, " "),
        "\") failed: ", rte_strerror(rte_errno)));
  }
  rt.running = true;
  rt.args = args;
  rt.users = 1;
  return absl::OkStatus();
}

void ReleaseEal() {
  EalRuntime& rt = Runtime();
  std::lock_guard<std::mutex> lock(rt.mu);
  if (rt.users > 0) {
    --rt.users;
  }
}

absl::Status ShutdownEal() {
  EalRuntime& rt = Runtime();
  std::lock_guard<std::mutex> lock(rt.mu);
  if (!rt.running) {
    return absl::OkStatus();
  }
  if (rt.users > 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("dpdk eal: ", rt.users, " backend(s) still running; destroy them first"));
  }
  rt.running = false;
  rt.shut_down = true;
  if (rte_eal_cleanup() != 0) {
    return absl::InternalError(absl::StrCat("dpdk eal: rte_eal_cleanup failed: ",
                                            rte_strerror(rte_errno)));
  }
  return absl::OkStatus();
}

}  // namespace dpv2::dpdk
