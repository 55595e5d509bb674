// Implementation of dpv2/net.h (in progress).
#include "dpv2/net.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace dpv2 {

absl::StatusOr<L4Proto> ParseL4Proto(absl::string_view text) {
  return absl::UnimplementedError(absl::StrCat("ParseL4Proto: ", text));
}
absl::string_view L4ProtoName(L4Proto) { return ""; }
absl::StatusOr<IpAddr> IpAddr::Parse(absl::string_view) { return absl::UnimplementedError("IpAddr::Parse"); }
IpAddr IpAddr::V4(uint32_t) { return IpAddr(); }
IpAddr IpAddr::V4Bytes(const uint8_t[4]) { return IpAddr(); }
IpAddr IpAddr::V6Bytes(const uint8_t[16]) { return IpAddr(); }
IpAddr IpAddr::FromAbi(const dpv2_addr&, Family) { return IpAddr(); }
dpv2_addr IpAddr::ToAbi() const { return dpv2_addr{}; }
std::string IpAddr::ToString() const { return ""; }
std::ostream& operator<<(std::ostream& os, const IpAddr& addr) { return os << addr.ToString(); }
absl::StatusOr<Prefix> Prefix::Parse(absl::string_view) { return absl::UnimplementedError("Prefix::Parse"); }
absl::StatusOr<Prefix> Prefix::ParseLenient(absl::string_view, bool*) { return absl::UnimplementedError("Prefix::Parse"); }
absl::StatusOr<Prefix> Prefix::Make(const IpAddr&, int) { return absl::UnimplementedError("Prefix::Make"); }
bool Prefix::Contains(const IpAddr&) const { return false; }
bool Prefix::Contains(const Prefix&) const { return false; }
std::string Prefix::ToString() const { return ""; }
std::ostream& operator<<(std::ostream& os, const Prefix& p) { return os << p.ToString(); }
std::string FiveTuple::ToString() const { return ""; }

}  // namespace dpv2
