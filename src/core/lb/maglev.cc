// Maglev population (NSDI 2016, section 3.4): every backend walks its own
// permutation of the slots (offset + j * skip mod M, a full cycle because M is
// prime) and the backends take turns claiming their next free slot. Weights
// change how many turns a backend gets per round.
//
// Most of the work is finding free slots once the table is nearly full: with
// R slots free, a backend probes M/R slots on average, so the last few
// hundred claims would cost more probes than all the others. The last slots
// are therefore found without probing (Tail below), with the same result.
#include "dpv2/maglev.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace dpv2 {
namespace {

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
  uint32_t pos;         // next slot of the permutation to try: offset + j * skip mod M
  uint64_t credit = 0;  // weighted turns accumulated
};

// x^(m-2) mod m: the inverse of x modulo the prime m.
uint32_t InverseMod(uint32_t x, uint32_t m) {
  uint64_t result = 1, base = x;
  for (uint32_t e = m - 2; e > 0; e >>= 1) {
    if (e & 1) {
      result = result * base % m;
    }
    base = base * base % m;
  }
  return static_cast<uint32_t>(result);
}

// Whose turn it is to claim a slot: the walkers in order, each taking
// weight/max_weight turns per round on average (one each when all weights
// are equal, the usual case).
class Turns {
 public:
  Turns(std::vector<Walker>& walkers, uint32_t max_weight)
      : walkers_(walkers),
        max_weight_(max_weight),
        equal_(std::all_of(walkers.begin(), walkers.end(),
                           [max_weight](const Walker& w) { return w.weight == max_weight; })) {}

  bool equal() const { return equal_; }
  // Equal weights only: as if Next() had been called `claims` times.
  void Skip(size_t claims) { i_ = claims % walkers_.size(); }

  size_t Next() {
    if (equal_) {
      const size_t i = i_;
      i_ = i + 1 == walkers_.size() ? 0 : i + 1;
      return i;
    }
    while (true) {
      Walker& w = walkers_[i_];
      if (!credited_) {
        w.credit += w.weight;
        credited_ = true;
      }
      if (w.credit >= max_weight_) {
        w.credit -= max_weight_;
        return i_;  // it may have more turns this round
      }
      credited_ = false;
      i_ = i_ + 1 == walkers_.size() ? 0 : i_ + 1;
    }
  }

 private:
  std::vector<Walker>& walkers_;
  const uint32_t max_weight_;
  const bool equal_;
  size_t i_ = 0;
  bool credited_ = false;  // walkers_[i_] got its credit for this round
};

// The first `claims` claims, each walker probing its permutation for its
// next free slot in a bitmap of taken slots (2 KiB at M = 16,381, in L1;
// returned for the tail). Steps along the permutation need no division:
// pos + skip < 2M. With equal weights the turns are whole rounds (each
// walker once, in order) instead of a Turns::Next per claim: 10% fewer
// instructions, ~5% less CPU time a table.
std::vector<uint64_t> ClaimByProbing(std::vector<Walker>& walkers, Turns& turns, uint32_t claims,
                                     uint32_t size, uint32_t* slots) {
  std::vector<uint64_t> taken((size + 63) / 64, 0);
  uint64_t* const bits = taken.data();
  auto claim = [bits, size, slots](Walker& w) {
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
  };
  if (turns.equal()) {
    for (size_t round = claims / walkers.size(); round > 0; --round) {
      for (Walker& w : walkers) {
        claim(w);
      }
    }
    for (size_t i = 0; i < claims % walkers.size(); ++i) {
      claim(walkers[i]);
    }
    turns.Skip(claims);
  } else {
    for (uint32_t c = 0; c < claims; ++c) {
      claim(walkers[turns.Next()]);
    }
  }
  return taken;
}

// The last free slots of a table, claimed without probing. A walker at slot
// p reaches slot s after (s - p) / skip mod M steps of its permutation, so
// its next free slot is the free slot it reaches in the fewest steps: each
// walker's step counts to the R slots free when the tail begins are computed
// once (N x R multiplications), a claimed slot's counts are set out of reach,
// and a turn takes the walker's minimum (R compares, no unpredictable
// branch). Worth it while N x R stays well below the M x ln(R) probes saved.
class Tail {
 public:
  static uint32_t Size(uint32_t table_size, size_t walkers) {
    return static_cast<uint32_t>(std::min<size_t>(64, table_size / (2 * walkers)));
  }

  Tail(const std::vector<Walker>& walkers, absl::Span<const uint64_t> taken, uint32_t size)
      : walkers_(walkers.size()) {
    for (uint32_t word = 0; word < taken.size(); ++word) {
      for (uint64_t free_bits = ~taken[word]; free_bits != 0; free_bits &= free_bits - 1) {
        const uint32_t s = word * 64 + static_cast<uint32_t>(__builtin_ctzll(free_bits));
        if (s < size) {
          free_.push_back(s);
        }
      }
    }
    const size_t r = free_.size();
    steps_.resize(walkers.size() * r);
    // Lemire's remainder by multiplication (steps < M^2 < 2^32 for M < 2^16,
    // the usual sizes); a division otherwise.
    const uint64_t reciprocal = ~uint64_t{0} / size + 1;
    for (size_t i = 0; i < walkers.size(); ++i) {
      const uint32_t inverse = InverseMod(walkers[i].skip, size);
      const uint32_t from = size - walkers[i].pos;  // adding it subtracts pos mod M
      uint32_t* steps = steps_.data() + i * r;
      for (size_t f = 0; f < r; ++f) {
        uint32_t distance = free_[f] + from;
        distance -= distance >= size ? size : 0;
        if (size < (1u << 16)) {
          const uint64_t low = reciprocal * (distance * inverse);
          steps[f] = static_cast<uint32_t>((static_cast<unsigned __int128>(low) * size) >> 64);
        } else {
          steps[f] = static_cast<uint32_t>(uint64_t{distance} * inverse % size);
        }
      }
    }
  }

  // The slot walker i takes next.
  uint32_t Claim(size_t i) {
    const size_t r = free_.size();
    const uint32_t* steps = steps_.data() + i * r;
    uint32_t fewest = kClaimed;
    for (size_t f = 0; f < r; ++f) {
      fewest = std::min(fewest, steps[f]);
    }
    const size_t f = std::find(steps, steps + r, fewest) - steps;
    for (size_t w = 0; w < walkers_; ++w) {
      steps_[w * r + f] = kClaimed;
    }
    return free_[f];
  }

 private:
  static constexpr uint32_t kClaimed = UINT32_MAX;
  size_t walkers_;
  std::vector<uint32_t> free_;   // the slots free when the tail began
  std::vector<uint32_t> steps_;  // walker i's steps to free_[f]: [i * R + f]
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

uint32_t MaglevTableSizeFor(const DatapathConfig& config, size_t backend_count) {
  const uint32_t cap = config.maglev_table_size;
  if (config.maglev_slots_per_backend == 0) {
    return cap;
  }
  const uint64_t want = static_cast<uint64_t>(config.maglev_slots_per_backend) * backend_count;
  for (uint32_t size : kMaglevSizeLadder) {
    if (size >= cap) {
      break;
    }
    if (size >= want) {
      return size;
    }
  }
  return cap;
}

absl::StatusOr<MaglevTable> MaglevTable::Create(const MaglevOptions& options) {
  if (options.table_size > kMaxMaglevTableSize) {
    return absl::InvalidArgumentError(absl::StrCat("maglev: table_size ", options.table_size,
                                                   " is above the limit ", kMaxMaglevTableSize));
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

  // The slot array is written once per slot and never read.
  const uint32_t size = static_cast<uint32_t>(m);
  std::vector<uint32_t> slots(size);
  Turns turns(walkers, max_weight);
  const uint32_t tail_size = Tail::Size(size, walkers.size());
  const std::vector<uint64_t> taken =
      ClaimByProbing(walkers, turns, size - tail_size, size, slots.data());
  if (tail_size > 0) {
    Tail tail(walkers, taken, size);
    for (uint32_t free_slots = tail_size; free_slots > 0; --free_slots) {
      const size_t i = turns.Next();
      slots[tail.Claim(i)] = walkers[i].id;
    }
  }
  return slots;
}

}  // namespace dpv2
