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

  constexpr uint32_t kEmpty = 0;  // backend id 0 is reserved, so it marks free slots
  std::vector<uint32_t> slots(m, kEmpty);
  uint64_t filled = 0;
  while (true) {
    for (Walker& w : walkers) {
      // A backend of weight w gets w/max_weight turns per round on average.
      w.credit += w.weight;
      while (w.credit >= max_weight) {
        w.credit -= max_weight;
        // Step along the permutation without a division: pos + skip < 2M.
        auto advance = [&w, m] {
          w.pos += w.skip;
          if (w.pos >= m) {
            w.pos -= static_cast<uint32_t>(m);
          }
        };
        while (slots[w.pos] != kEmpty) {
          advance();
        }
        slots[w.pos] = w.id;
        advance();
        if (++filled == m) {
          return slots;
        }
      }
    }
  }
}

}  // namespace dpv2
