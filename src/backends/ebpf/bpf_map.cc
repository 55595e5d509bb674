#include "backends/ebpf/bpf_map.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <string.h>

#include "absl/strings/str_cat.h"

namespace dpv2::ebpf {

absl::Status BpfMap::Error(const char* op, int err) const {
  std::string msg = absl::StrCat("bpf map ", name_, ": ", op, ": ", strerror(err));
  if (err == E2BIG || err == ENOMEM || err == ENOSPC) {
    return absl::ResourceExhaustedError(msg);
  }
  if (err == EPERM || err == EACCES) {
    return absl::PermissionDeniedError(msg);
  }
  // The kernel's ENOTSUPP (524, no errno name in user space): a batch
  // operation this map type lacks.
  if (err == 524 || err == EOPNOTSUPP) {
    return absl::UnimplementedError(msg);
  }
  return absl::InternalError(msg);
}

absl::Status BpfMap::Update(const void* key, const void* value, uint64_t flags) const {
  if (bpf_map_update_elem(fd_, key, value, flags) != 0) {
    return Error("update", errno);
  }
  return absl::OkStatus();
}

absl::Status BpfMap::UpdateBatch(const void* keys, const void* values, uint32_t n) const {
  uint32_t count = n;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  if (n != 0 && bpf_map_update_batch(fd_, keys, values, &count, &opts) != 0) {
    return Error("batch update", errno);
  }
  return absl::OkStatus();
}

absl::Status BpfMap::DeleteBatch(const void* keys, uint32_t n) const {
  // The kernel stops at the first absent key (ENOENT): go on after it.
  const char* next = static_cast<const char*>(keys);
  while (n != 0) {
    uint32_t count = n;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    if (bpf_map_delete_batch(fd_, next, &count, &opts) == 0) {
      return absl::OkStatus();
    }
    if (errno != ENOENT || count >= n) {
      return Error("batch delete", errno);
    }
    next += (count + 1) * key_size_;
    n -= count + 1;
  }
  return absl::OkStatus();
}

absl::Status BpfMap::Delete(const void* key) const {
  if (bpf_map_delete_elem(fd_, key) != 0 && errno != ENOENT) {
    return Error("delete", errno);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> BpfMap::Lookup(const void* key, void* value) const {
  if (bpf_map_lookup_elem(fd_, key, value) != 0) {
    if (errno == ENOENT) {
      return false;
    }
    return Error("lookup", errno);
  }
  return true;
}

absl::StatusOr<bool> BpfMap::LookupAndDelete(const void* key, void* value) const {
  if (bpf_map_lookup_and_delete_elem(fd_, key, value) != 0) {
    if (errno == ENOENT) {
      return false;
    }
    return Error("lookup and delete", errno);
  }
  return true;
}

absl::StatusOr<std::vector<std::string>> BpfMap::Keys() const {
  std::vector<std::string> keys;
  std::string cur(key_size_, '\0');
  std::string next(key_size_, '\0');
  const void* prev = nullptr;  // NULL: the first key
  while (true) {
    if (bpf_map_get_next_key(fd_, prev, next.data()) != 0) {
      if (errno == ENOENT) {
        break;
      }
      return Error("iterate", errno);
    }
    keys.push_back(next);
    cur = next;
    prev = cur.data();
  }
  return keys;
}

}  // namespace dpv2::ebpf
