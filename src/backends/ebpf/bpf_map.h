// BpfMap: one BPF map reached by file descriptor, with every syscall's
// failure turned into an absl::Status that names the map and the operation.
//
// The backend keeps one per map of the skeleton; the descriptor belongs to the
// skeleton (or, for an inner lookup table, to the caller), never to BpfMap.
//
//   BpfMap services(bpf_map__fd(skel->maps.dpv2_services), "dpv2_services");
//   DPV2_RETURN_IF_ERROR(services.Update(&key, &value));
#ifndef DPV2_BACKENDS_EBPF_BPF_MAP_H_
#define DPV2_BACKENDS_EBPF_BPF_MAP_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace dpv2::ebpf {

class BpfMap {
 public:
  BpfMap() = default;
  BpfMap(int fd, std::string name, size_t key_size, size_t value_size)
      : fd_(fd), name_(std::move(name)), key_size_(key_size), value_size_(value_size) {}

  int fd() const { return fd_; }
  const std::string& name() const { return name_; }
  size_t key_size() const { return key_size_; }
  size_t value_size() const { return value_size_; }

  // flags: BPF_ANY, BPF_NOEXIST, BPF_EXIST.
  absl::Status Update(const void* key, const void* value, uint64_t flags = 0) const;
  // `n` entries in one BPF_MAP_UPDATE_BATCH: keys and values packed back to
  // back. On error some prefix may have been written. A map type without
  // batch operations gives UnimplementedError (as DeleteBatch does).
  absl::Status UpdateBatch(const void* keys, const void* values, uint32_t n) const;
  // `n` keys in one BPF_MAP_DELETE_BATCH; absent keys are skipped.
  absl::Status DeleteBatch(const void* keys, uint32_t n) const;
  // Deleting an absent key is OK.
  absl::Status Delete(const void* key) const;
  // False when the key is absent.
  absl::StatusOr<bool> Lookup(const void* key, void* value) const;
  // Atomically reads and deletes (hash maps); false when absent.
  absl::StatusOr<bool> LookupAndDelete(const void* key, void* value) const;
  // Every key, as raw bytes of key_size (a snapshot: the map may change).
  absl::StatusOr<std::vector<std::string>> Keys() const;
  // Every entry of a hash map, key bytes -> value bytes, read with
  // BPF_MAP_LOOKUP_BATCH (a few syscalls for the whole map).
  // UnimplementedError for map types without batch calls.
  absl::StatusOr<absl::flat_hash_map<std::string, std::string>> Entries() const;

  // LPM tries: Lookup returns the value of the longest prefix holding the
  // key's address, even when the trie has no entry under exactly this key.
  // The first key of the trie, nullopt when it is empty.
  absl::StatusOr<std::optional<std::string>> FirstKey() const;
  // The value stored under exactly `key` (prefix length and address); false
  // when there is none. `first` is FirstKey() of the unchanged trie. The
  // kernel's get_next_key returns the trie's first key for a key it does not
  // hold, and for a key it holds the key after it, or ENOENT after the last.
  absl::StatusOr<bool> LookupExactPrefix(const void* key, const std::string& first,
                                         void* value) const;

 private:
  absl::Status Error(const char* op, int err) const;

  int fd_ = -1;
  std::string name_;
  size_t key_size_ = 0;
  size_t value_size_ = 0;
};

}  // namespace dpv2::ebpf

#endif  // DPV2_BACKENDS_EBPF_BPF_MAP_H_
