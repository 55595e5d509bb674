#include "backends/ebpf/bpf_map.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <string.h>

#include <algorithm>

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

absl::StatusOr<absl::flat_hash_map<std::string, std::string>> BpfMap::Entries() const {
  absl::flat_hash_map<std::string, std::string> out;
  // At most 8 MiB of values a call (a lookup table is up to 256 KiB), and
  // never fewer entries than a hash bucket may hold (ENOSPC).
  const uint32_t per_call = static_cast<uint32_t>(
      std::clamp<size_t>((8 << 20) / std::max<size_t>(value_size_, 1), 64, 4096));
  std::string keys(per_call * key_size_, '\0');
  std::string values(per_call * value_size_, '\0');
  // The position token of a hash map is a bucket number (4 bytes); a key's
  // size is always enough.
  std::string in(std::max<size_t>(key_size_, 8), '\0');
  std::string out_batch(in.size(), '\0');
  bool first = true;
  while (true) {
    uint32_t count = per_call;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    const int rc = bpf_map_lookup_batch(fd_, first ? nullptr : in.data(), out_batch.data(),
                                        keys.data(), values.data(), &count, &opts);
    const int err = rc == 0 ? 0 : errno;
    if (rc != 0 && err != ENOENT) {
      return Error("batch lookup", err);
    }
    for (uint32_t i = 0; i < count; ++i) {
      out.emplace(keys.substr(i * key_size_, key_size_),
                  values.substr(i * value_size_, value_size_));
    }
    if (err == ENOENT) {  // the end of the map
      return out;
    }
    in = out_batch;
    first = false;
  }
}

absl::StatusOr<std::optional<std::string>> BpfMap::FirstKey() const {
  std::string first(key_size_, '\0');
  if (bpf_map_get_next_key(fd_, nullptr, first.data()) != 0) {
    if (errno == ENOENT) {
      return std::nullopt;
    }
    return Error("first key", errno);
  }
  return first;
}

absl::StatusOr<bool> BpfMap::LookupExactPrefix(const void* key, const std::string& first,
                                               void* value) const {
  std::string next(key_size_, '\0');
  if (bpf_map_get_next_key(fd_, key, next.data()) != 0) {
    if (errno != ENOENT) {
      return Error("next key", errno);
    }
    // `key` is the last entry.
  } else if (next == first) {
    return false;
  }
  return Lookup(key, value);
}

}  // namespace dpv2::ebpf
