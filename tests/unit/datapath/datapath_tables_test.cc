#include "core/datapath/datapath_tables.h"

#include <arpa/inet.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>

#include "dpv2/net.h"

namespace dpv2 {
namespace {

constexpr uint32_t kM = 7;

DatapathConfig Config() {
  DatapathConfig c;
  c.maglev_table_size = kM;
  c.max_services = 4;
  c.max_backends = 4;
  c.max_tables = 4;
  return c;
}

dpv2_addr Addr(const char* text) { return IpAddr::Parse(text)->ToAbi(); }

BackendEntry Backend(uint32_t id, const char* ip, uint16_t port = 8080) {
  BackendEntry b{.id = id, .value = {}};
  b.value.addr = Addr(ip);
  b.value.port = htons(port);
  b.value.proto = DPV2_PROTO_TCP;
  b.value.family = DPV2_FAMILY_V4;
  return b;
}

LookupTable Table(uint32_t id, std::vector<uint32_t> backends) {
  LookupTable t{.id = id, .slots = {}};
  for (uint32_t i = 0; i < kM; ++i) {
    t.slots.push_back(backends[i % backends.size()]);
  }
  return t;
}

dpv2_lb_key ServiceKey(const char* ip, uint16_t port) {
  dpv2_lb_key k{};
  k.addr = Addr(ip);
  k.port = htons(port);
  k.proto = DPV2_PROTO_TCP;
  k.family = DPV2_FAMILY_V4;
  k.scope = DPV2_LB_SCOPE_EXT;
  return k;
}

ServiceEntry Service(const char* ip, uint16_t port, uint32_t service_id, uint32_t table_id,
                     uint16_t backend_count) {
  ServiceEntry s{.key = ServiceKey(ip, port), .value = {}};
  s.value.service_id = service_id;
  s.value.table_id = table_id;
  s.value.backend_count = backend_count;
  return s;
}

// One service 10.96.0.1:80 -> table 1 -> backends 1, 2.
ChangeBatch BaseBatch() {
  ChangeBatch b;
  b.backends_upsert = {Backend(1, "10.0.0.1"), Backend(2, "10.0.0.2")};
  b.tables_upsert = {Table(1, {1, 2})};
  b.services_upsert = {Service("10.96.0.1", 80, 100, 1, 2)};
  return b;
}

// Everything a rejected batch could have touched is as before.
void RequireUnchanged(const DatapathTables& t) {
  CHECK(t.service_count() == 1);
  CHECK(t.backend_count() == 2);
  CHECK(t.table_count() == 1);
  CHECK(t.endpoint_count() == 0);
  CHECK(t.ipcache_count() == 0);
  REQUIRE(t.FindService(ServiceKey("10.96.0.1", 80)) != nullptr);
  CHECK(t.FindService(ServiceKey("10.96.0.1", 80))->table_id == 1);
  CHECK(t.FindTable(1).size() == kM);
  CHECK(t.FindBackend(1) != nullptr);
  CHECK(t.FindBackend(2) != nullptr);
}

TEST_CASE("a valid batch makes services, tables and backends visible") {
  DatapathTables t(Config());
  REQUIRE(t.Apply(BaseBatch()).ok());
  RequireUnchanged(t);
  CHECK(t.FindService(ServiceKey("10.96.0.1", 81)) == nullptr);
}

TEST_CASE("key padding does not affect service lookups") {
  DatapathTables t(Config());
  REQUIRE(t.Apply(BaseBatch()).ok());
  dpv2_lb_key k = ServiceKey("10.96.0.1", 80);
  std::memset(k.pad, 0xab, sizeof(k.pad));
  CHECK(t.FindService(k) != nullptr);
}

TEST_CASE("a batch with an invalid entry is rejected whole and changes nothing") {
  DatapathTables t(Config());
  REQUIRE(t.Apply(BaseBatch()).ok());

  SECTION("backend id 0") {
    ChangeBatch b;
    b.backends_upsert = {Backend(3, "10.0.0.3"), Backend(0, "10.0.0.4")};
    absl::Status s = t.Apply(b);
    CHECK(absl::IsInvalidArgument(s));
    CHECK(s.message() == "apply: backend id must not be 0");
    CHECK(t.FindBackend(3) == nullptr);
  }
  SECTION("a lookup table larger than maglev_table_size") {
    ChangeBatch b;
    b.tables_upsert = {LookupTable{.id = 2, .slots = {1, 2, 1, 2, 1, 2, 1, 2}}};
    absl::Status s = t.Apply(b);
    CHECK(s.message() == "apply: lookup table 2: 8 slots, want 1 to maglev_table_size 7");
  }
  SECTION("a lookup table of no slots") {
    ChangeBatch b;
    b.tables_upsert = {LookupTable{.id = 2, .slots = {}}};
    CHECK(t.Apply(b).message() == "apply: lookup table 2: 0 slots, want 1 to maglev_table_size 7");
  }
  SECTION("a table slot naming a backend that is absent after the batch") {
    ChangeBatch b;
    b.tables_upsert = {Table(2, {1, 9})};
    CHECK(t.Apply(b).message() ==
          "apply: lookup table 2: slot 1 names backend 9, absent after the batch");
  }
  SECTION("a table slot naming a backend the same batch deletes") {
    ChangeBatch b;
    b.backends_upsert = {Backend(3, "10.0.0.3")};
    b.tables_upsert = {Table(2, {3})};
    b.backends_delete = {3};
    CHECK_FALSE(t.Apply(b).ok());
    CHECK(t.FindBackend(3) == nullptr);
  }
  SECTION("a service naming a table absent after the batch") {
    ChangeBatch b;
    b.services_upsert = {Service("10.96.0.2", 80, 101, 5, 1)};
    CHECK(t.Apply(b).message() ==
          "apply: service TCP 10.96.0.2:80 EXT: table_id 5 absent after the batch");
  }
  SECTION("service id 0") {
    ChangeBatch b;
    b.services_upsert = {Service("10.96.0.2", 80, 0, 1, 2)};
    CHECK(t.Apply(b).message() == "apply: service TCP 10.96.0.2:80 EXT: service_id must not be 0");
  }
  SECTION("a service with a bad scope") {
    ChangeBatch b;
    ServiceEntry s = Service("10.96.0.2", 80, 101, 1, 2);
    s.key.scope = 7;
    b.services_upsert = {s};
    CHECK_FALSE(t.Apply(b).ok());
  }
  SECTION("deleting a table a service still uses") {
    ChangeBatch b;
    b.tables_delete = {1};
    CHECK(absl::IsFailedPrecondition(t.Apply(b)));
  }
  SECTION("deleting a backend a table still names") {
    ChangeBatch b;
    b.backends_delete = {2};
    CHECK(t.Apply(b).message() == "apply: backend 2: deleted while 1 lookup table(s) still name it");
  }
  SECTION("an endpoint with ifindex 0") {
    ChangeBatch b;
    EndpointEntry e{};
    e.key.addr = Addr("10.0.1.5");
    e.key.family = DPV2_FAMILY_V4;
    e.value.endpoint_id = 1;
    b.endpoints_upsert = {e};
    CHECK(t.Apply(b).message() == "apply: endpoint 10.0.1.5: ifindex must not be 0");
  }
  SECTION("an ipcache prefix longer than the address") {
    ChangeBatch b;
    IpcacheEntry e{};
    e.key.family = DPV2_FAMILY_V4;
    e.key.prefixlen = 32 + 33;
    b.ipcache_upsert = {e};
    CHECK_FALSE(t.Apply(b).ok());
  }
  SECTION("a source range with an unknown family") {
    ChangeBatch b;
    dpv2_src_range_key r{};
    r.service_id = 100;
    r.family = 5;
    r.prefixlen = 64;
    b.source_ranges_upsert = {r};
    CHECK_FALSE(t.Apply(b).ok());
  }
  SECTION("a policy entry with a prefix length out of range") {
    ChangeBatch b;
    PolicyEntry p{};
    p.key.prefixlen = 3;
    p.key.endpoint_id = 1;
    p.value.verdict = DPV2_POLICY_ALLOW;
    b.policy_upsert = {p};
    CHECK_FALSE(t.Apply(b).ok());
  }
  RequireUnchanged(t);
}

TEST_CASE("a table is replaced by writing a new id, repointing the service and deleting the old") {
  DatapathTables t(Config());
  REQUIRE(t.Apply(BaseBatch()).ok());
  ChangeBatch b;
  b.backends_upsert = {Backend(3, "10.0.0.3")};
  b.tables_upsert = {Table(2, {1, 3})};
  b.services_upsert = {Service("10.96.0.1", 80, 100, 2, 2)};
  b.tables_delete = {1};
  b.backends_delete = {2};
  REQUIRE(t.Apply(b).ok());
  CHECK(t.FindService(ServiceKey("10.96.0.1", 80))->table_id == 2);
  CHECK(t.FindTable(1).empty());
  CHECK(t.FindBackend(2) == nullptr);
  CHECK(t.FindBackend(3) != nullptr);
}

// Apply keeps each table's distinct backends instead of scanning its slots
// again: replacing a table in place, twice in one batch or deleting it must
// move every backend's count of naming tables.
TEST_CASE("a backend can be deleted once no table names it, however its tables changed") {
  DatapathTables t(Config());
  ChangeBatch setup;
  setup.backends_upsert = {Backend(1, "10.0.0.1"), Backend(2, "10.0.0.2"),
                           Backend(3, "10.0.0.3")};
  setup.tables_upsert = {Table(1, {1, 2}), Table(2, {2, 3})};
  REQUIRE(t.Apply(setup).ok());
  auto delete_backend = [&t](uint32_t id, std::vector<LookupTable> tables_upsert = {},
                             std::vector<uint32_t> tables_delete = {}) {
    ChangeBatch b;
    b.tables_upsert = std::move(tables_upsert);
    b.tables_delete = std::move(tables_delete);
    b.backends_delete = {id};
    return t.Apply(b);
  };
  CHECK(delete_backend(1).message() ==
        "apply: backend 1: deleted while 1 lookup table(s) still name it");
  // Table 1 rewritten in place without backend 1, in the same batch.
  REQUIRE(delete_backend(1, {Table(1, {2, 3})}).ok());
  CHECK(delete_backend(2).message() ==
        "apply: backend 2: deleted while 2 lookup table(s) still name it");
  // Rewritten twice in one batch: the last version counts.
  auto rewrite_twice = [&t](std::vector<uint32_t> first, std::vector<uint32_t> last) {
    ChangeBatch b;
    b.tables_upsert = {Table(1, std::move(first)), Table(1, std::move(last))};
    b.tables_delete = {2};
    return t.Apply(b);
  };
  REQUIRE(rewrite_twice({3}, {2, 3}).ok());
  CHECK(t.FindTable(2).empty());
  CHECK(delete_backend(2).message() ==
        "apply: backend 2: deleted while 1 lookup table(s) still name it");
  REQUIRE(rewrite_twice({2}, {3}).ok());
  REQUIRE(delete_backend(2).ok());
  CHECK(delete_backend(3).message() ==
        "apply: backend 3: deleted while 1 lookup table(s) still name it");
  REQUIRE(delete_backend(3, {}, {1}).ok());
  CHECK(t.table_count() == 0);
  CHECK(t.FindBackend(3) == nullptr);
}

TEST_CASE("a service without backends needs no lookup table") {
  DatapathTables t(Config());
  ChangeBatch b;
  b.services_upsert = {Service("10.96.0.9", 80, 7, 0, 0)};
  REQUIRE(t.Apply(b).ok());
  CHECK(t.FindService(ServiceKey("10.96.0.9", 80))->backend_count == 0);
}

TEST_CASE("capacities count the entries after the batch and name the full table") {
  DatapathTables t(Config());
  REQUIRE(t.Apply(BaseBatch()).ok());
  ChangeBatch fill;
  for (uint16_t port = 81; port <= 83; ++port) {
    fill.services_upsert.push_back(Service("10.96.0.1", port, 100 + port, 1, 2));
  }
  REQUIRE(t.Apply(fill).ok());
  CHECK(t.service_count() == 4);

  ChangeBatch over;
  over.services_upsert = {Service("10.96.0.1", 84, 200, 1, 2)};
  absl::Status s = t.Apply(over);
  CHECK(absl::IsResourceExhausted(s));
  CHECK(s.message() == "apply: services table full (4 entries)");
  CHECK(t.service_count() == 4);

  // Updating existing keys, or adding one while deleting another, fits.
  ChangeBatch update;
  update.services_upsert = {Service("10.96.0.1", 81, 181, 1, 2)};
  CHECK(t.Apply(update).ok());
  ChangeBatch swap;
  swap.services_upsert = {Service("10.96.0.1", 84, 200, 1, 2)};
  swap.services_delete = {ServiceKey("10.96.0.1", 81)};
  CHECK(t.Apply(swap).ok());
  CHECK(t.FindService(ServiceKey("10.96.0.1", 84)) != nullptr);
  CHECK(t.FindService(ServiceKey("10.96.0.1", 81)) == nullptr);
}

TEST_CASE("deleting an absent key is not an error") {
  DatapathTables t(Config());
  ChangeBatch b;
  b.services_delete = {ServiceKey("10.96.0.7", 80)};
  b.backends_delete = {42};
  b.tables_delete = {42};
  CHECK(t.Apply(b).ok());
}

IpcacheEntry Ipcache(const char* ip, int length, uint32_t identity) {
  IpcacheEntry e{};
  const IpAddr a = *IpAddr::Parse(ip);
  e.key.family = static_cast<uint8_t>(a.family());
  e.key.prefixlen = 32 + length;
  e.key.addr = a.ToAbi();
  e.value.identity = identity;
  return e;
}

TEST_CASE("the ipcache answers with the longest matching prefix") {
  DatapathTables t(Config());
  ChangeBatch b;
  b.ipcache_upsert = {Ipcache("10.0.0.0", 8, 300), Ipcache("10.1.0.0", 16, 301),
                      Ipcache("10.1.2.3", 32, 302), Ipcache("fd00::", 8, 400)};
  REQUIRE(t.Apply(b).ok());
  auto id = [&](const char* ip) -> uint32_t {
    const IpAddr a = *IpAddr::Parse(ip);
    const dpv2_ipcache_value* v = t.LookupIpcache(static_cast<uint8_t>(a.family()), a.ToAbi());
    return v == nullptr ? 0 : v->identity;
  };
  CHECK(id("10.9.9.9") == 300);
  CHECK(id("10.1.9.9") == 301);
  CHECK(id("10.1.2.3") == 302);
  CHECK(id("11.0.0.1") == 0);
  CHECK(id("fd00::5") == 400);

  ChangeBatch del;
  del.ipcache_delete = {Ipcache("10.1.0.0", 16, 0).key};
  REQUIRE(t.Apply(del).ok());
  CHECK(id("10.1.9.9") == 300);
  CHECK(t.ipcache_count() == 3);
}

TEST_CASE("source ranges are looked up per service") {
  DatapathTables t(Config());
  ChangeBatch b;
  dpv2_src_range_key r{};
  r.service_id = 100;
  r.family = DPV2_FAMILY_V4;
  r.prefixlen = 64 + 24;
  r.addr = Addr("203.0.113.0");
  b.source_ranges_upsert = {r};
  REQUIRE(t.Apply(b).ok());
  CHECK(t.SourceRangeAllows(100, DPV2_FAMILY_V4, Addr("203.0.113.77")));
  CHECK_FALSE(t.SourceRangeAllows(100, DPV2_FAMILY_V4, Addr("203.0.114.1")));
  CHECK_FALSE(t.SourceRangeAllows(101, DPV2_FAMILY_V4, Addr("203.0.113.77")));
}

TEST_CASE("two copies that apply the same batches answer alike (RCU double buffer)") {
  DatapathTables a(Config());
  DatapathTables b(Config());
  ChangeBatch second;
  second.backends_upsert = {Backend(3, "10.0.0.3")};
  second.tables_upsert = {Table(2, {3, 1})};
  second.services_upsert = {Service("10.96.0.1", 80, 100, 2, 2)};
  second.tables_delete = {1};
  for (DatapathTables* t : {&a, &b}) {
    REQUIRE(t->Apply(BaseBatch()).ok());
    REQUIRE(t->Apply(second).ok());
  }
  DatapathTables copy = a;
  for (const DatapathTables* t : {&b, &copy}) {
    CHECK(t->service_count() == a.service_count());
    CHECK(t->FindService(ServiceKey("10.96.0.1", 80))->table_id == 2);
    absl::Span<const uint32_t> sa = a.FindTable(2);
    absl::Span<const uint32_t> sb = t->FindTable(2);
    CHECK(std::vector<uint32_t>(sa.begin(), sa.end()) == std::vector<uint32_t>(sb.begin(), sb.end()));
  }
}

TEST_CASE("lookup table blocks are rewritten in place, freed on delete and reused") {
  LookupTableStore store;
  store.Upsert(10, std::vector<uint32_t>{1, 2, 3});
  store.Upsert(20, std::vector<uint32_t>{4, 5, 6});
  CHECK(store.size() == 2);
  CHECK(std::vector<uint32_t>(store.Find(10).begin(), store.Find(10).end()) ==
        std::vector<uint32_t>{1, 2, 3});
  store.Upsert(10, std::vector<uint32_t>{7, 8, 9});  // replaced in its block
  CHECK(std::vector<uint32_t>(store.Find(10).begin(), store.Find(10).end()) ==
        std::vector<uint32_t>{7, 8, 9});
  const uint32_t* block_of_20 = store.Find(20).data();
  store.Erase(20);
  CHECK(store.Find(20).empty());
  CHECK_FALSE(store.Contains(20));
  store.Erase(20);  // absent: nothing happens
  store.Upsert(30, std::vector<uint32_t>{1, 1, 1});
  CHECK(store.Find(30).data() == block_of_20);  // the freed block, no growth
  CHECK(std::vector<uint32_t>(store.Find(10).begin(), store.Find(10).end()) ==
        std::vector<uint32_t>{7, 8, 9});
  std::vector<uint32_t> ids;
  store.ForEach([&](uint32_t id, absl::Span<const uint32_t> slots) {
    CHECK(slots.size() == 3);
    ids.push_back(id);
  });
  std::sort(ids.begin(), ids.end());
  CHECK(ids == std::vector<uint32_t>{10, 30});
}

TEST_CASE("lookup tables of different sizes are stored and found at their own size") {
  LookupTableStore store;
  store.Upsert(1, std::vector<uint32_t>{1, 2, 3});
  store.Upsert(2, std::vector<uint32_t>{4, 5, 6, 7, 8});
  CHECK(store.Find(1).size() == 3);
  CHECK(std::vector<uint32_t>(store.Find(2).begin(), store.Find(2).end()) ==
        std::vector<uint32_t>{4, 5, 6, 7, 8});
  const uint32_t* block_of_1 = store.Find(1).data();
  store.Upsert(1, std::vector<uint32_t>{9, 9, 9, 9, 9});  // moves to a block of 5
  CHECK(std::vector<uint32_t>(store.Find(1).begin(), store.Find(1).end()) ==
        std::vector<uint32_t>(5, 9));
  store.Upsert(3, std::vector<uint32_t>{7, 7, 7});  // takes the freed block of 3
  CHECK(store.Find(3).data() == block_of_1);
  store.Upsert(2, {});  // no slots: erased
  CHECK_FALSE(store.Contains(2));
  LookupTableStore copy;
  copy = store;
  CHECK(copy.size() == 2);
  CHECK(std::vector<uint32_t>(copy.Find(3).begin(), copy.Find(3).end()) ==
        std::vector<uint32_t>(3, 7));
  CHECK(copy.Find(1).size() == 5);

  DatapathTables t(Config());
  ChangeBatch b = BaseBatch();
  b.tables_upsert.push_back(LookupTable{.id = 2, .slots = {1, 2, 1}});
  REQUIRE(t.Apply(b).ok());
  CHECK(t.FindTable(2).size() == 3);
  CHECK(t.FindTable(1).size() == kM);
  const ChangeBatch dump = t.Dump();
  REQUIRE(dump.tables_upsert.size() == 2);
  CHECK(dump.tables_upsert[1].slots == std::vector<uint32_t>{1, 2, 1});
}

TEST_CASE("LookupTableStore never moves a table's slots as it grows past a reservation") {
  // A store that grows by copying its tables stalls the one change that
  // needs a block more (655 MB copied at 10,000 tables of 16,381 slots).
  LookupTableStore store;
  store.Upsert(1, std::vector<uint32_t>{1, 2, 3, 4, 5});
  const uint32_t* first = store.Find(1).data();
  store.Reserve(5, 3);
  for (uint32_t id = 2; id <= 300; ++id) {
    store.Upsert(id, std::vector<uint32_t>(5, id));
  }
  CHECK(store.Find(1).data() == first);
  CHECK(std::vector<uint32_t>(store.Find(1).begin(), store.Find(1).end()) ==
        std::vector<uint32_t>{1, 2, 3, 4, 5});
  int intact = 0;
  for (uint32_t id = 2; id <= 300; ++id) {
    const absl::Span<const uint32_t> slots = store.Find(id);
    intact += slots.size() == 5 &&
              std::all_of(slots.begin(), slots.end(), [id](uint32_t s) { return s == id; });
  }
  CHECK(intact == 299);
  LookupTableStore copy;
  copy = store;  // blocks of its own, same contents
  CHECK(copy.size() == 300);
  CHECK(copy.Find(1).data() != first);
  CHECK(std::vector<uint32_t>(copy.Find(1).begin(), copy.Find(1).end()) ==
        std::vector<uint32_t>{1, 2, 3, 4, 5});
  CHECK(std::vector<uint32_t>(copy.Find(300).begin(), copy.Find(300).end()) ==
        std::vector<uint32_t>(5, 300));
}

TEST_CASE("node addresses are written, replaced and deleted per family, and dumped") {
  DatapathTables t(Config());
  CHECK(t.NodeAddress(DPV2_FAMILY_V4) == nullptr);
  ChangeBatch b;
  b.node_addresses_upsert = {{.family = DPV2_FAMILY_V6, .addr = Addr("fd00:1::10")},
                             {.family = DPV2_FAMILY_V4, .addr = Addr("192.168.1.10")}};
  REQUIRE(t.Apply(b).ok());
  REQUIRE(t.NodeAddress(DPV2_FAMILY_V4) != nullptr);
  CHECK(std::memcmp(t.NodeAddress(DPV2_FAMILY_V4), Addr("192.168.1.10").b, 16) == 0);
  REQUIRE(t.NodeAddress(DPV2_FAMILY_V6) != nullptr);
  CHECK(std::memcmp(t.NodeAddress(DPV2_FAMILY_V6), Addr("fd00:1::10").b, 16) == 0);
  ChangeBatch dump = t.Dump();
  REQUIRE(dump.node_addresses_upsert.size() == 2);
  CHECK(dump.node_addresses_upsert[0].family == DPV2_FAMILY_V4);
  CHECK(dump.node_addresses_upsert[1].family == DPV2_FAMILY_V6);

  ChangeBatch change;
  change.node_addresses_upsert = {{.family = DPV2_FAMILY_V4, .addr = Addr("192.168.1.11")}};
  change.node_addresses_delete = {DPV2_FAMILY_V6};
  REQUIRE(t.Apply(change).ok());
  CHECK(std::memcmp(t.NodeAddress(DPV2_FAMILY_V4), Addr("192.168.1.11").b, 16) == 0);
  CHECK(t.NodeAddress(DPV2_FAMILY_V6) == nullptr);
  CHECK(t.Dump().node_addresses_upsert.size() == 1);
}

TEST_CASE("a bad node address is rejected by name and changes nothing") {
  DatapathTables t(Config());
  ChangeBatch b = BaseBatch();
  b.backends_upsert.push_back(Backend(3, "10.0.0.3"));
  SECTION("a family that is neither 4 nor 6") {
    b.node_addresses_upsert = {{.family = 5, .addr = Addr("192.168.1.10")}};
    CHECK(t.Apply(b).message() == "apply: node address: family 5 is not 4 or 6");
  }
  SECTION("an IPv4 address with bytes beyond the first 4") {
    b.node_addresses_upsert = {{.family = DPV2_FAMILY_V4, .addr = Addr("fd00:1::10")}};
    CHECK(t.Apply(b).message() ==
          "apply: node address of family 4: addr has bytes beyond the first 4");
  }
  SECTION("a delete of family 0") {
    b.node_addresses_delete = {0};
    CHECK(t.Apply(b).message() == "apply: node address delete: family 0 is not 4 or 6");
  }
  CHECK(t.service_count() == 0);
  CHECK(t.FindBackend(3) == nullptr);
  CHECK(t.NodeAddress(DPV2_FAMILY_V4) == nullptr);
}

}  // namespace
}  // namespace dpv2
