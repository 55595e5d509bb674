#include "dpv2/batch.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dpv2 {
namespace {

template <typename T>
void AppendAll(std::vector<T>& to, const std::vector<T>& from) {
  to.insert(to.end(), from.begin(), from.end());
}

}  // namespace

bool ChangeBatch::empty() const { return size() == 0; }

size_t ChangeBatch::size() const {
  return node_addresses_upsert.size() + node_addresses_delete.size() + backends_upsert.size() + tables_upsert.size() + source_ranges_upsert.size() +
         endpoints_upsert.size() + ipcache_upsert.size() + policy_upsert.size() +
         services_upsert.size() + services_delete.size() + policy_delete.size() +
         ipcache_delete.size() + endpoints_delete.size() + source_ranges_delete.size() +
         tables_delete.size() + backends_delete.size();
}

std::string ChangeBatch::Summary() const {
  std::vector<std::string> parts;
  auto add = [&parts](size_t n, const char* what) {
    if (n > 0) parts.push_back(absl::StrCat(n, " ", what));
  };
  add(node_addresses_upsert.size(), "node addresses +");
  add(backends_upsert.size(), "backends +");
  add(tables_upsert.size(), "tables +");
  add(source_ranges_upsert.size(), "source ranges +");
  add(endpoints_upsert.size(), "endpoints +");
  add(ipcache_upsert.size(), "ipcache +");
  add(policy_upsert.size(), "policy +");
  add(services_upsert.size(), "services +");
  add(services_delete.size(), "services -");
  add(policy_delete.size(), "policy -");
  add(ipcache_delete.size(), "ipcache -");
  add(endpoints_delete.size(), "endpoints -");
  add(source_ranges_delete.size(), "source ranges -");
  add(tables_delete.size(), "tables -");
  add(backends_delete.size(), "backends -");
  add(node_addresses_delete.size(), "node addresses -");
  if (parts.empty()) return "empty";
  return absl::StrJoin(parts, ", ");
}

void ChangeBatch::Append(const ChangeBatch& other) {
  AppendAll(node_addresses_upsert, other.node_addresses_upsert);
  AppendAll(backends_upsert, other.backends_upsert);
  AppendAll(tables_upsert, other.tables_upsert);
  AppendAll(source_ranges_upsert, other.source_ranges_upsert);
  AppendAll(endpoints_upsert, other.endpoints_upsert);
  AppendAll(ipcache_upsert, other.ipcache_upsert);
  AppendAll(policy_upsert, other.policy_upsert);
  AppendAll(services_upsert, other.services_upsert);
  AppendAll(services_delete, other.services_delete);
  AppendAll(policy_delete, other.policy_delete);
  AppendAll(ipcache_delete, other.ipcache_delete);
  AppendAll(endpoints_delete, other.endpoints_delete);
  AppendAll(source_ranges_delete, other.source_ranges_delete);
  AppendAll(tables_delete, other.tables_delete);
  AppendAll(backends_delete, other.backends_delete);
  AppendAll(node_addresses_delete, other.node_addresses_delete);
}

}  // namespace dpv2
