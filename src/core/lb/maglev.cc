#include "dpv2/maglev.h"

namespace dpv2 {

absl::StatusOr<MaglevTable> MaglevTable::Create(const MaglevOptions& options) {
  return MaglevTable(options);
}

absl::StatusOr<std::vector<uint32_t>> MaglevTable::Populate(
    absl::Span<const MaglevBackend> /*backends*/) const {
  return absl::UnimplementedError("MaglevTable::Populate: not yet implemented");
}

uint64_t MaglevHash(absl::string_view data, uint64_t seed) {
  uint64_t h = 1469598103934665603ULL ^ seed;
  for (unsigned char c : data) {
    h = (h ^ c) * 1099511628211ULL;
  }
  return h;
}

}  // namespace dpv2
