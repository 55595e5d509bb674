// FlatTable: the open-addressing hash table under the per-packet lookups of
// the in-memory datapaths (services, backends, endpoints, conntrack).
//
// Why not absl::flat_hash_map: a packet's lookup should cost one cache line
// when the table is cold (1M entries). Here a slot holds its 32-bit hash, the
// key and the value side by side, so the line a Prefetch(hash) pulls in is
// the one Find compares and returns; and the hash is computed once by the
// caller (KeyHash, inline) and reused for the prefetch, the lookup and an
// insert. Keys are plain-C ABI structs compared as bytes: callers clear
// their padding (Normalized in abi_key.h). Linear probing with backward-shift
// deletion (no tombstones); the table doubles at 3/4 load, which moves
// entries: pointers from Find are valid until the next Insert or Erase.
// Not thread-safe; copyable (the DPDK backend keeps two table copies).
//
//   FlatTable<dpv2_lb_key, dpv2_lb_value> services;
//   const uint64_t h = KeyHash(key);
//   services.Prefetch(h);   ...   const dpv2_lb_value* v = services.Find(key, h);
#ifndef DPV2_CORE_DATAPATH_FLAT_TABLE_H_
#define DPV2_CORE_DATAPATH_FLAT_TABLE_H_

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace dpv2 {

// A per-process seed, so that which keys collide is not known in advance
// (packet fields are chosen by whoever sends them). Taken from the address
// of a global, which ASLR places differently in every process.
inline uint64_t FlatTableSeed() {
  static const uint64_t seed =
      (static_cast<uint64_t>(reinterpret_cast<uintptr_t>(&seed)) >> 4) * 0x9e3779b97f4a7c15ull;
  return seed;
}

// Hash of `n` bytes (a multiple of 4), 8 at a time: multiply-xorshift per
// word, murmur3's finaliser at the end so that every output bit depends on
// every input bit (the table uses the low bits, the tag all 32).
inline uint64_t HashKeyBytes(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = FlatTableSeed() ^ (n * 0x9fb21c651e98df25ull);
  size_t i = 0;
#pragma GCC unroll 8
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    h = (h ^ w) * 0x9fb21c651e98df25ull;
    h ^= h >> 29;
  }
  if (i < n) {
    uint32_t w;
    std::memcpy(&w, p + i, 4);
    h = (h ^ w) * 0x9fb21c651e98df25ull;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

// Slot storage of a table of 2 MiB or more is 2 MiB-aligned and asks for
// transparent huge pages before it is first touched: a lookup in a table of
// a million entries then misses the cache but not the TLB as well.
template <typename T>
struct SlotAllocator {
  using value_type = T;
  static constexpr size_t kHugePage = size_t{2} << 20;
  static constexpr std::align_val_t kLine{64};

  SlotAllocator() = default;
  template <typename U>
  SlotAllocator(const SlotAllocator<U>&) {}  // NOLINT: rebinding

  T* allocate(size_t n) {
    const size_t bytes = n * sizeof(T);
    if (bytes < kHugePage) {
      // Cache-line aligned, so that a slot of 64 or 128 bytes spans one or
      // two lines, not two or three (each a miss when the table is cold).
      return static_cast<T*>(::operator new(bytes, kLine));
    }
    const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    void* p = std::aligned_alloc(kHugePage, rounded);
    if (p == nullptr) {
      throw std::bad_alloc();
    }
    madvise(p, rounded, MADV_HUGEPAGE);  // advice: without THP, 4 KiB pages
    return static_cast<T*>(p);
  }
  void deallocate(T* p, size_t n) {
    if (n * sizeof(T) < kHugePage) {
      ::operator delete(p, kLine);
    } else {
      std::free(p);
    }
  }
  friend bool operator==(const SlotAllocator&, const SlotAllocator&) { return true; }
};

// Byte equality of two keys, a word at a time (keys are small and a
// multiple of 4 bytes; a call to memcmp would cost more than the compare).
template <typename Key>
inline bool KeyEquals(const Key& a, const Key& b) {
  static_assert(sizeof(Key) % 4 == 0);
  const auto* pa = reinterpret_cast<const unsigned char*>(&a);
  const auto* pb = reinterpret_cast<const unsigned char*>(&b);
  uint64_t diff = 0;
  size_t i = 0;
  // Unrolled: the trip count is a constant, and a loop costs a compare and
  // a branch per word (-O2 leaves it rolled).
#pragma GCC unroll 8
  for (; i + 8 <= sizeof(Key); i += 8) {
    uint64_t wa;
    uint64_t wb;
    std::memcpy(&wa, pa + i, 8);
    std::memcpy(&wb, pb + i, 8);
    diff |= wa ^ wb;
  }
  if constexpr (sizeof(Key) % 8 != 0) {
    uint32_t wa;
    uint32_t wb;
    std::memcpy(&wa, pa + i, 4);
    std::memcpy(&wb, pb + i, 4);
    diff |= wa ^ wb;
  }
  return diff == 0;
}

template <typename Key>
inline uint64_t KeyHash(const Key& key) {
  static_assert(std::is_trivially_copyable_v<Key> && sizeof(Key) % 4 == 0);
  return HashKeyBytes(&key, sizeof(Key));
}

template <typename Key, typename Value>
class FlatTable {
 public:
  static_assert(std::is_trivially_copyable_v<Key> && std::is_trivially_copyable_v<Value>);

  FlatTable() { Resize(kMinSlots); }

  Value* Find(const Key& key, uint64_t hash) {
    const uint32_t tag = Tag(hash);
    Slot* const slots = slots_.data();
    for (size_t i = tag & mask_; slots[i].used; i = (i + 1) & mask_) {
      if (slots[i].tag == tag && KeyEquals(slots[i].key, key)) {
        return &slots[i].value;
      }
    }
    return nullptr;
  }
  const Value* Find(const Key& key, uint64_t hash) const {
    return const_cast<FlatTable*>(this)->Find(key, hash);
  }
  Value* Find(const Key& key) { return Find(key, KeyHash(key)); }
  const Value* Find(const Key& key) const { return Find(key, KeyHash(key)); }
  bool Contains(const Key& key) const { return Find(key) != nullptr; }

  // Pulls the home slot of `hash` towards the cache: both lines it may
  // span (a conntrack slot is two: Find reads the first, an update writes
  // the second, and a prefetch of the first alone left the second a miss).
  void Prefetch(uint64_t hash) const {
    const char* slot = reinterpret_cast<const char*>(slots_.data() + (Tag(hash) & mask_));
    __builtin_prefetch(slot);
    if constexpr (64 % sizeof(Slot) != 0) {
      __builtin_prefetch(slot + sizeof(Slot) - 1);
    }
  }

  // Inserts or overwrites; returns the stored value and whether it was new.
  std::pair<Value*, bool> Insert(const Key& key, uint64_t hash, const Value& value) {
    if (Value* v = Find(key, hash); v != nullptr) {
      *v = value;
      return {v, false};
    }
    return {InsertAbsent(key, hash, value), true};
  }
  std::pair<Value*, bool> Insert(const Key& key, const Value& value) {
    return Insert(key, KeyHash(key), value);
  }
  // Where `key` is, or else the empty slot that ends its cluster (where it
  // would go), found in one walk: Find followed by InsertAbsent walks the
  // cluster twice, a cost a new connection pays twice (two entries).
  struct Probe {
    size_t slot = 0;
    bool found = false;
  };
  Probe Locate(const Key& key, uint64_t hash) const {
    const uint32_t tag = Tag(hash);
    const Slot* const slots = slots_.data();
    size_t i = tag & mask_;
    for (; slots[i].used; i = (i + 1) & mask_) {
      if (slots[i].tag == tag && KeyEquals(slots[i].key, key)) {
        return {.slot = i, .found = true};
      }
    }
    return {.slot = i, .found = false};
  }
  Value* ValueAt(const Probe& found) { return &slots_[found.slot].value; }
  // Inserts `key`, which `absent` (Locate's answer, the table unchanged
  // since) did not find: into the empty slot it found, unless the table
  // must grow first.
  Value* InsertAt(const Probe& absent, const Key& key, uint64_t hash, const Value& value) {
    if ((size_ + 1) * 4 > slots_.size() * 3) {
      return InsertAbsent(key, hash, value);
    }
    slots_[absent.slot] = Slot{.tag = Tag(hash), .used = 1, .key = key, .value = value};
    ++size_;
    return &slots_[absent.slot].value;
  }
  // Insert for a key the caller just failed to Find.
  Value* InsertAbsent(const Key& key, uint64_t hash, const Value& value) {
    if ((size_ + 1) * 4 > slots_.size() * 3) {
      Rehash(slots_.size() * 2);
    }
    const uint32_t tag = Tag(hash);
    size_t i = tag & mask();
    while (slots_[i].used) {
      i = (i + 1) & mask();
    }
    slots_[i] = Slot{.tag = tag, .used = 1, .key = key, .value = value};
    ++size_;
    return &slots_[i].value;
  }

  bool Erase(const Key& key, uint64_t hash) {
    const uint32_t tag = Tag(hash);
    size_t i = tag & mask();
    for (; slots_[i].used; i = (i + 1) & mask()) {
      if (slots_[i].tag == tag && KeyEquals(slots_[i].key, key)) {
        break;
      }
    }
    if (!slots_[i].used) {
      return false;
    }
    // Backward shift: pull later members of the cluster into the hole when
    // their home slot does not lie (cyclically) between the hole and them.
    size_t hole = i;
    for (size_t j = (hole + 1) & mask(); slots_[j].used; j = (j + 1) & mask()) {
      const size_t home = slots_[j].tag & mask();
      if (((j - home) & mask()) >= ((j - hole) & mask())) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole].used = 0;
    --size_;
    return true;
  }
  bool Erase(const Key& key) { return Erase(key, KeyHash(key)); }

  // Room for `n` entries without growing.
  void Reserve(size_t n) {
    size_t want = kMinSlots;
    while (want * 3 < n * 4) {
      want *= 2;
    }
    if (want > slots_.size()) {
      Rehash(want);
    }
  }
  void Clear() {
    slots_.assign(kMinSlots, Slot{});
    Resize(kMinSlots);
    size_ = 0;
  }
  // Empties the table but keeps its memory (a flush on a fast path).
  void ClearKeepCapacity() {
    for (Slot& s : slots_) {
      s.used = 0;
    }
    size_ = 0;
  }

  // f(const Key&, const Value&) for every entry, in slot order.
  template <typename F>
  void ForEach(F f) const {
    for (const Slot& s : slots_) {
      if (s.used) {
        f(s.key, s.value);
      }
    }
  }

  size_t size() const { return size_; }
  size_t capacity() const { return mask_ + 1; }

 private:
  static constexpr size_t kMinSlots = 16;

  struct Slot {
    uint32_t tag = 0;   // low 32 bits of the hash; the home slot is tag & mask
    uint32_t used = 0;
    Key key{};
    Value value{};
  };

  static uint32_t Tag(uint64_t hash) { return static_cast<uint32_t>(hash); }
  size_t mask() const { return mask_; }
  // Keeps the mask in step with the slot count (kept apart: size() of a
  // vector of 120-byte slots is a division).
  void Resize(size_t slots) {
    slots_.resize(slots);
    mask_ = slots - 1;
  }

  void Rehash(size_t slots) {
    std::vector<Slot, SlotAllocator<Slot>> old(slots, Slot{});
    old.swap(slots_);
    mask_ = slots - 1;
    for (const Slot& s : old) {
      if (!s.used) {
        continue;
      }
      size_t i = s.tag & mask();
      while (slots_[i].used) {
        i = (i + 1) & mask();
      }
      slots_[i] = s;
    }
  }

  std::vector<Slot, SlotAllocator<Slot>> slots_;
  size_t mask_ = 0;  // slots_.size() - 1
  size_t size_ = 0;
};

}  // namespace dpv2

#endif  // DPV2_CORE_DATAPATH_FLAT_TABLE_H_
