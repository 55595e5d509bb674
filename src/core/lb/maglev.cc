// Maglev population (NSDI 2016, section 3.4): every backend walks its own
// permutation of the slots (offset + j * skip mod M, a full cycle because M is
// prime) and the backends take turns claiming their next free slot. Weights
// change how many turns a backend gets per round.
#include "dpv2/maglev.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace dpv2 {
namespace {

// Large enough for any datapath (Cilium's largest is 131071) while keeping a
// table allocation bounded.
constexpr uint32_t kMaxTableSize = 1u << 24;
constexpr uint64_t kSkipSeedSalt = 0x9e3779b97f4a7c15ULL;

bool IsPrime(uint32_t n) {
  if (n < 2) {
    return false;
  }
  for (uint32_t d = 2; static_cast<uint64_t>(d) * d <= n; ++d) {
    if (n % d == 0) {
      return false;
    }
  }
  return true;
}

uint64_t Mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

struct Walker {
  uint32_t id;
  uint32_t weight;
  uint32_t skip;
  uint32_t pos;         // current slot of the permutation: offset + j * skip mod M
  uint64_t credit = 0;  // weighted turns accumulated
};

}  // namespace

uint64_t MaglevHash(absl::string_view data, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ULL ^ Mix64(seed);
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return Mix64(h);
}

absl::StatusOr<MaglevTable> MaglevTable::Create(const MaglevOptions& options) {
  if (options.table_size > kMaxTableSize) {
    return absl::InvalidArgumentError(absl::StrCat("maglev: table_size ", options.table_size,
                                                   " is above the limit ", kMaxTableSize));
  }
  if (!IsPrime(options.table_size)) {
    return absl::InvalidArgumentError(
        absl::StrCat("maglev: table_size ", options.table_size, " is not a prime"));
  }
  return MaglevTable(options);
}

absl::StatusOr<std::vector<uint32_t>> MaglevTable::Populate(
    absl::Span<const MaglevBackend> backends) const {
  const uint64_t m = options_.table_size;
  absl::flat_hash_set<absl::string_view> identities;
  std::vector<const MaglevBackend*> sorted;
  uint32_t max_weight = 0;
  for (size_t i = 0; i < backends.size(); ++i) {
    const MaglevBackend& b = backends[i];
    if (b.id == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("maglev: backends[", i, "] \"", b.identity, "\": id 0 is reserved"));
    }
    if (!identities.insert(b.identity).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("maglev: backends[", i, "] \"", b.identity, "\": duplicate identity"));
    }
    if (b.weight == 0) {
      continue;
    }
    sorted.push_back(&b);
    max_weight = std::max(max_weight, b.weight);
  }
  if (sorted.size() > m) {
    return absl::InvalidArgumentError(
        absl::StrCat("maglev: ", sorted.size(), " backends do not fit in ", m, " slots"));
  }
  if (sorted.empty()) {
    return std::vector<uint32_t>();
  }
  // The turn order follows identities, not the caller's order, so that every
  // node computes the same table from the same set.
  std::sort(sorted.begin(), sorted.end(), [](const MaglevBackend* a, const MaglevBackend* b) {
    return a->identity < b->identity;
  });

  std::vector<Walker> walkers;
  walkers.reserve(sorted.size());
  for (const MaglevBackend* b : sorted) {
    walkers.push_back({
        .id = b->id,
        .weight = b->weight,
        .skip = static_cast<uint32_t>(
            MaglevHash(b->identity, options_.seed ^ kSkipSeedSalt) % (m - 1) + 1),
        .pos = static_cast<uint32_t>(MaglevHash(b->identity, options_.seed) % m),
    });
  }

  // Which slots are taken, one bit each: a walker's probes for its next
  // free slot read this (2 KiB at M = 16381, in L1) instead of the 64 KiB
  // slot array, which is written once per slot and never read. Steps along
  // the permutation need no division: pos + skip < 2M.
  std::vector<uint32_t> slots(m);
  std::vector<uint64_t> taken((m + 63) / 64, 0);
  const uint32_t size = static_cast<uint32_t>(m);
  uint32_t filled = 0;
  auto claim = [&slots, bits = taken.data(), size, &filled](Walker& w) {
    const uint32_t skip = w.skip;
    uint32_t pos = w.pos;
    while ((bits[pos >> 6] >> (pos & 63)) & 1) {
      pos += skip;
      pos -= pos >= size ? size : 0;
    }
    bits[pos >> 6] |= uint64_t{1} << (pos & 63);
    slots[pos] = w.id;
    pos += skip;
    w.pos = pos - (pos >= size ? size : 0);
    return ++filled == size;  // true once the table is full
  };
  if (std::all_of(walkers.begin(), walkers.end(),
                  [max_weight](const Walker& w) { return w.weight == max_weight; })) {
    // Equal weights (the usual case): one turn each per round.
    while (true) {
      for (Walker& w : walkers) {
        if (claim(w)) {
          return slots;
        }
      }
    }
  }
  while (true) {
    for (Walker& w : walkers) {
      // A backend of weight w gets w/max_weight turns per round on average.
      w.credit += w.weight;
      while (w.credit >= max_weight) {
        w.credit -= max_weight;
        if (claim(w)) {
          return slots;
        }
      }
    }
  }
}

}  // namespace dpv2
