// Maglev tables: balance, minimal disruption, determinism, weights, errors.
#include "dpv2/maglev.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <map>
#include <random>

#include "absl/strings/str_cat.h"

namespace dpv2 {
namespace {

std::vector<MaglevBackend> Backends(int n, int first_id = 1) {
  std::vector<MaglevBackend> v;
  for (int i = 0; i < n; ++i) {
    v.push_back({.id = static_cast<uint32_t>(first_id + i),
                 .identity = absl::StrCat("10.0.", i / 250, ".", i % 250 + 1, ":8080/TCP")});
  }
  return v;
}

std::map<uint32_t, int> Counts(const std::vector<uint32_t>& slots) {
  std::map<uint32_t, int> c;
  for (uint32_t id : slots) {
    ++c[id];
  }
  return c;
}

TEST_CASE("Maglev fills every slot with a given backend and balances within 1%") {
  const MaglevTable m = *MaglevTable::Create({});  // 16381 slots, > 100 x 100 backends
  const std::vector<MaglevBackend> backends = Backends(100);
  const std::vector<uint32_t> slots = *m.Populate(backends);
  REQUIRE(slots.size() == 16381);
  const std::map<uint32_t, int> counts = Counts(slots);
  REQUIRE(counts.size() == 100);
  const double ideal = 16381.0 / 100;
  for (const auto& [id, n] : counts) {
    CHECK(id >= 1);
    CHECK(id <= 100);
    // The paper's population gives each backend floor or ceil of M/N.
    CHECK(std::abs(n - ideal) <= 0.01 * ideal + 1);
  }
}

TEST_CASE("Maglev removing one of N backends moves about M/N slots, none between survivors") {
  const MaglevTable m = *MaglevTable::Create({.table_size = 65521, .seed = 42});
  const int n = 50;
  std::vector<MaglevBackend> backends = Backends(n);
  const std::vector<uint32_t> before = *m.Populate(backends);
  const uint32_t removed = backends[17].id;
  backends.erase(backends.begin() + 17);
  const std::vector<uint32_t> after = *m.Populate(backends);

  int moved = 0;
  int moved_between_survivors = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    if (before[i] != after[i]) {
      ++moved;
      if (before[i] != removed) {
        ++moved_between_survivors;
      }
    }
    CHECK(after[i] != removed);
  }
  const double m_over_n = 65521.0 / n;
  CHECK(moved >= m_over_n * 0.9);
  CHECK(moved <= m_over_n * 1.3 + 16);
  // Maglev is not perfectly stable: a few survivor slots shuffle (the paper
  // measures a small fraction); bound it to a small share of the table.
  CHECK(moved_between_survivors <= 0.3 * m_over_n);
}

TEST_CASE("Maglev adding one backend takes about M/(N+1) slots") {
  const MaglevTable m = *MaglevTable::Create({.seed = 3});
  std::vector<MaglevBackend> backends = Backends(40);
  const std::vector<uint32_t> before = *m.Populate(backends);
  backends.push_back({.id = 999, .identity = "10.9.9.9:8080/TCP"});
  const std::vector<uint32_t> after = *m.Populate(backends);
  int moved = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    moved += before[i] != after[i] ? 1 : 0;
  }
  const double share = 16381.0 / 41;
  CHECK(Counts(after).at(999) >= share - 2);
  CHECK(moved <= share * 1.3 + 16);
}

TEST_CASE("Maglev is independent of input order and of ids, and depends on the seed") {
  const MaglevTable m = *MaglevTable::Create({.table_size = 251, .seed = 9});
  std::vector<MaglevBackend> backends = Backends(7);
  const std::vector<uint32_t> a = *m.Populate(backends);
  std::mt19937 rng(1);
  std::shuffle(backends.begin(), backends.end(), rng);
  CHECK(*m.Populate(backends) == a);

  // Other ids, same identities: the same slot pattern under the id renaming.
  std::vector<MaglevBackend> renamed = Backends(7, 100);
  const std::vector<uint32_t> b = *m.Populate(renamed);
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(b[i] == a[i] + 99);
  }

  const MaglevTable other_seed = *MaglevTable::Create({.table_size = 251, .seed = 10});
  CHECK(*other_seed.Populate(Backends(7)) != a);
}

TEST_CASE("Maglev hash and tables are pinned: every node and version computes the same") {
  // A change here changes every node's tables during an upgrade (connections
  // move): it must be deliberate.
  CHECK(MaglevHash("", 0) == 0xf52a15e9a9b5e89bULL);
  CHECK(MaglevHash("10.0.0.1:80/TCP", 1) == 0x0713e5dcc933b5e9ULL);
  CHECK(MaglevHash("10.0.0.1:80/TCP", 2) == 0x83197194d18a55c0ULL);
  const MaglevTable m = *MaglevTable::Create({.table_size = 7});
  CHECK(*m.Populate({{.id = 1, .identity = "a"}, {.id = 2, .identity = "b"}}) ==
        std::vector<uint32_t>{1, 2, 2, 1, 1, 1, 2});
}

TEST_CASE("Maglev weights give proportional shares") {
  const MaglevTable m = *MaglevTable::Create({.seed = 5});
  std::vector<MaglevBackend> backends = {
      {.id = 1, .identity = "a", .weight = 1},
      {.id = 2, .identity = "b", .weight = 2},
      {.id = 3, .identity = "c", .weight = 5},
      {.id = 4, .identity = "d", .weight = 0},
  };
  const std::map<uint32_t, int> counts = Counts(*m.Populate(backends));
  CHECK_FALSE(counts.contains(4));
  const double unit = 16381.0 / 8;
  CHECK(std::abs(counts.at(1) - unit) <= unit * 0.02);
  CHECK(std::abs(counts.at(2) - 2 * unit) <= unit * 0.04);
  CHECK(std::abs(counts.at(3) - 5 * unit) <= unit * 0.1);
}

TEST_CASE("Maglev with no weighted backend yields an empty table") {
  const MaglevTable m = *MaglevTable::Create({.table_size = 7});
  CHECK(m.Populate({})->empty());
  CHECK(m.Populate({{.id = 1, .identity = "a", .weight = 0}})->empty());
}

TEST_CASE("Maglev rejects non-prime and oversized tables") {
  CHECK(MaglevTable::Create({.table_size = 16380}).status().message() ==
        "maglev: table_size 16380 is not a prime");
  CHECK_FALSE(MaglevTable::Create({.table_size = 0}).ok());
  CHECK_FALSE(MaglevTable::Create({.table_size = 1}).ok());
  CHECK_FALSE(MaglevTable::Create({.table_size = 1u << 25}).ok());
  CHECK(MaglevTable::Create({.table_size = 65521}).ok());
}

TEST_CASE("Maglev rejects id 0, duplicate identities and more backends than slots") {
  const MaglevTable m = *MaglevTable::Create({.table_size = 5});
  CHECK(m.Populate({{.id = 0, .identity = "a"}}).status().message() ==
        "maglev: backends[0] \"a\": id 0 is reserved");
  CHECK(m.Populate({{.id = 1, .identity = "a"}, {.id = 2, .identity = "a"}}).status().message() ==
        "maglev: backends[1] \"a\": duplicate identity");
  CHECK(m.Populate(Backends(6)).status().message() == "maglev: 6 backends do not fit in 5 slots");
  CHECK(m.Populate(Backends(5)).ok());
}

// Fingerprints (FNV-1a over the slots' bytes) of tables computed by the
// first implementation (slot-array probes): a faster population must give
// every node the same tables as before, or a rolling upgrade moves flows.
TEST_CASE("Maglev tables are identical to the first implementation's, weights included") {
  struct Case {
    uint32_t size;
    uint64_t seed;
    int backends;
    int weights;  // 0: all 1; 1: 1, 2, 5; 2: i % 4 (some 0)
    uint64_t fingerprint;
  };
  const Case cases[] = {
      {16381, 7, 10, 0, 0x4a0cac1d6cb31a58ULL}, {65521, 42, 100, 0, 0x509d21c6c7103aeaULL},
      {1021, 0, 3, 1, 0xe776e17eee81ff92ULL},   {13, 1, 13, 0, 0xfdd7c6486999cca5ULL},
      {16381, 5, 1, 0, 0x9228ceba7dd8ea91ULL},  {251, 9, 40, 2, 0xc466db6a6597f067ULL},
      {16381, 3, 1000, 0, 0x1e768faac9ff7d1bULL},
  };
  for (const Case& c : cases) {
    CAPTURE(c.size, c.seed, c.backends, c.weights);
    const MaglevTable m = *MaglevTable::Create({.table_size = c.size, .seed = c.seed});
    std::vector<MaglevBackend> backends;
    for (int i = 0; i < c.backends; ++i) {
      const uint32_t weight = c.weights == 0   ? 1
                              : c.weights == 1 ? (i == 0 ? 1 : i == 1 ? 2 : 5)
                                               : static_cast<uint32_t>(i % 4);
      backends.push_back({.id = static_cast<uint32_t>(100 + i),
                          .identity = absl::StrCat("10.1.", i / 250, ".", i % 250 + 1, ":80/TCP"),
                          .weight = weight});
    }
    const std::vector<uint32_t> slots = *m.Populate(backends);
    REQUIRE(slots.size() == c.size);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (uint32_t id : slots) {
      for (int b = 0; b < 4; ++b) {
        h ^= (id >> (8 * b)) & 0xff;
        h *= 0x100000001b3ULL;
      }
    }
    CHECK(h == c.fingerprint);
  }
}

// The paper's population written plainly: turns in identity order, each
// walker probing its permutation (offset + j * skip mod M) slot by slot.
std::vector<uint32_t> PlainPopulate(uint32_t size, uint64_t seed,
                                    std::vector<MaglevBackend> backends) {
  std::erase_if(backends, [](const MaglevBackend& b) { return b.weight == 0; });
  if (backends.empty()) {
    return {};
  }
  std::sort(backends.begin(), backends.end(),
            [](const MaglevBackend& a, const MaglevBackend& b) { return a.identity < b.identity; });
  uint32_t max_weight = 0;
  for (const MaglevBackend& b : backends) {
    max_weight = std::max(max_weight, b.weight);
  }
  struct Walk {
    uint64_t offset, skip, next = 0, credit = 0;
  };
  std::vector<Walk> walks;
  for (const MaglevBackend& b : backends) {
    walks.push_back({.offset = MaglevHash(b.identity, seed) % size,
                     .skip = MaglevHash(b.identity, seed ^ 0x9e3779b97f4a7c15ULL) % (size - 1) + 1});
  }
  std::vector<uint32_t> slots(size, 0);
  uint32_t filled = 0;
  while (filled < size) {
    for (size_t i = 0; i < walks.size() && filled < size; ++i) {
      for (walks[i].credit += backends[i].weight; walks[i].credit >= max_weight && filled < size;
           walks[i].credit -= max_weight) {
        uint64_t slot;
        do {
          slot = (walks[i].offset + walks[i].next++ * walks[i].skip) % size;
        } while (slots[slot] != 0);
        slots[slot] = backends[i].id;
        ++filled;
      }
    }
  }
  return slots;
}

TEST_CASE("Maglev tables equal the paper's plain probing fill, the last free slots included") {
  // Populate finds a table's last free slots by arithmetic instead of
  // probing (and by division above M = 2^16): random sets, sizes and
  // weights must give the plain fill's table slot for slot.
  std::mt19937 rng(11);
  for (uint32_t size : {2u, 7u, 251u, 1021u, 16381u, 65537u}) {
    for (int trial = 0; trial < (size > 20000 ? 3 : 12); ++trial) {
      const int n = 1 + static_cast<int>(rng() % std::min<uint32_t>(size, trial % 2 ? 200 : 12));
      const bool weighted = trial % 3 == 2;
      std::vector<MaglevBackend> backends;
      for (int i = 0; i < n; ++i) {
        backends.push_back({.id = static_cast<uint32_t>(i + 1),
                            .identity = absl::StrCat("10.2.", rng() % 256, ".", i, ":", rng() % 65536),
                            .weight = weighted ? static_cast<uint32_t>(rng() % 4) : 1u});
      }
      const uint64_t seed = rng();
      CAPTURE(size, n, weighted, seed);
      const MaglevTable m = *MaglevTable::Create({.table_size = size, .seed = seed});
      const std::vector<uint32_t> plain = PlainPopulate(size, seed, backends);
      const std::vector<uint32_t> slots = *m.Populate(backends);
      CHECK(slots == plain);
    }
  }
}

}  // namespace
}  // namespace dpv2

namespace dpv2 {
namespace {

// MaglevTable::Create accepts exactly the primes up to 2^24.
bool IsPrimeForTest(uint32_t n) { return MaglevTable::Create({.table_size = n}).ok(); }

TEST_CASE("the Maglev size ladder holds the largest prime below each power of two, 2^8 to 2^24") {
  uint32_t power = 8;
  for (uint32_t size : kMaglevSizeLadder) {
    INFO(size);
    CHECK(IsPrimeForTest(size));
    CHECK(size < (1u << power));
    for (uint32_t n = size + 1; n < (1u << power); ++n) {
      CHECK_FALSE(IsPrimeForTest(n));
    }
    ++power;
  }
  CHECK(power == 25);
}

TEST_CASE("a Service's Maglev size is the smallest ladder step of slots_per_backend x N slots") {
  const DatapathConfig c{.maglev_table_size = 16381, .maglev_slots_per_backend = 100};
  CHECK(MaglevTableSizeFor(c, 0) == 251);
  CHECK(MaglevTableSizeFor(c, 1) == 251);
  CHECK(MaglevTableSizeFor(c, 2) == 251);  // 200
  CHECK(MaglevTableSizeFor(c, 3) == 509);  // 300
  CHECK(MaglevTableSizeFor(c, 5) == 509);  // 500
  CHECK(MaglevTableSizeFor(c, 6) == 1021);
  CHECK(MaglevTableSizeFor(c, 10) == 1021);  // the usual Service: 16x smaller than the cap
  CHECK(MaglevTableSizeFor(c, 11) == 2039);
  CHECK(MaglevTableSizeFor(c, 20) == 2039);
  CHECK(MaglevTableSizeFor(c, 21) == 4093);
  CHECK(MaglevTableSizeFor(c, 81) == 8191);
  CHECK(MaglevTableSizeFor(c, 82) == 16381);
  // The cap: above it the table stays at maglev_table_size.
  CHECK(MaglevTableSizeFor(c, 164) == 16381);
  CHECK(MaglevTableSizeFor(c, 1000) == 16381);
  const DatapathConfig big{.maglev_table_size = 131071, .maglev_slots_per_backend = 100};
  CHECK(MaglevTableSizeFor(big, 164) == 32749);
  CHECK(MaglevTableSizeFor(big, 1000) == 131071);
  CHECK(MaglevTableSizeFor(big, 100000) == 131071);
  const DatapathConfig one_slot{.maglev_table_size = 131071, .maglev_slots_per_backend = 1};
  CHECK(MaglevTableSizeFor(one_slot, 300) == 509);
}

TEST_CASE("a Maglev cap off the ladder is used as it is, and a cap below the floor sizes every "
          "table") {
  const DatapathConfig off{.maglev_table_size = 20011, .maglev_slots_per_backend = 100};
  CHECK(MaglevTableSizeFor(off, 163) == 16381);
  CHECK(MaglevTableSizeFor(off, 164) == 20011);
  CHECK(MaglevTableSizeFor(off, 5000) == 20011);
  const DatapathConfig tiny{.maglev_table_size = 31, .maglev_slots_per_backend = 100};
  CHECK(MaglevTableSizeFor(tiny, 1) == 31);
  CHECK(MaglevTableSizeFor(tiny, 30) == 31);
}

TEST_CASE("maglev_slots_per_backend 0 gives every table maglev_table_size") {
  const DatapathConfig c{.maglev_table_size = 65521, .maglev_slots_per_backend = 0};
  CHECK(MaglevTableSizeFor(c, 1) == 65521);
  CHECK(MaglevTableSizeFor(c, 10) == 65521);
  CHECK(MaglevTableSizeFor(c, 10000) == 65521);
}

TEST_CASE("a table at its ladder size balances within the M/N bound Maglev promises") {
  const DatapathConfig c{};
  for (int n : {3, 10, 11, 40}) {
    const uint32_t m = MaglevTableSizeFor(c, n);
    const std::vector<uint32_t> slots = *MaglevTable::Create({.table_size = m})->Populate(
        Backends(n));
    REQUIRE(slots.size() == m);
    const std::map<uint32_t, int> counts = Counts(slots);
    REQUIRE(counts.size() == static_cast<size_t>(n));
    const double ideal = static_cast<double>(m) / n;
    for (const auto& [id, k] : counts) {
      INFO("n " << n << " m " << m << " backend " << id << " slots " << k);
      CHECK(std::abs(k - ideal) <= 1.0);  // floor or ceil of M/N: <= 1% at M >= 100 N
    }
  }
}

}  // namespace
}  // namespace dpv2
