// Addresses, prefixes, protocols and 5-tuples (dpv2/net.h).
//
// Parsing is strict in the way Kubernetes validation is: IPv4 octets are
// decimal without leading zeros, IPv6 takes one "::" and an optional trailing
// dotted quad, and nothing else (no zones, no brackets, no spaces).
#include "dpv2/net.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dpv2 {
namespace {

absl::Status BadAddr(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid IP address \"", text, "\": ", why));
}

// Parses a dotted quad into out[0..3]; on failure returns the reason.
bool ParseV4Into(absl::string_view s, uint8_t out[4], std::string* why) {
  int part = 0;
  size_t i = 0;
  while (true) {
    if (i >= s.size() || !absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) {
      *why = absl::StrCat("octet ", part + 1, " is not a decimal number");
      return false;
    }
    size_t start = i;
    int value = 0;
    while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) {
      value = value * 10 + (s[i] - '0');
      if (value > 255) {
        *why = absl::StrCat("octet ", part + 1, " is greater than 255");
        return false;
      }
      ++i;
    }
    if (i - start > 1 && s[start] == '0') {
      // Leading zeros are ambiguous (octal in some parsers); Kubernetes rejects them.
      *why = absl::StrCat("octet ", part + 1, " has a leading zero");
      return false;
    }
    out[part++] = static_cast<uint8_t>(value);
    if (part == 4) {
      if (i != s.size()) {
        *why = "unexpected text after the fourth octet";
        return false;
      }
      return true;
    }
    if (i >= s.size() || s[i] != '.') {
      *why = "expected four octets separated by '.'";
      return false;
    }
    ++i;
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool ParseV6Into(absl::string_view s, uint8_t out[16], std::string* why) {
  uint16_t groups[8] = {};
  int count = 0;
  int gap = -1;  // index in groups where "::" stands
  size_t i = 0;
  if (s.size() < 2) {
    *why = "too short";
    return false;
  }
  if (s[0] == ':') {
    if (s[1] != ':') {
      *why = "a leading ':' must be part of \"::\"";
      return false;
    }
    gap = 0;
    i = 2;
    if (i == s.size()) {
      std::memset(out, 0, 16);
      return true;
    }
  }
  while (i < s.size()) {
    if (count == 8) {
      *why = "more than 8 groups";
      return false;
    }
    // A dotted quad may end the address.
    size_t end = s.find_first_of(":", i);
    absl::string_view piece = s.substr(i, end == absl::string_view::npos ? s.size() - i : end - i);
    if (end == absl::string_view::npos && piece.find('.') != absl::string_view::npos) {
      if (count > 6) {
        *why = "embedded IPv4 address leaves no room";
        return false;
      }
      uint8_t v4[4];
      std::string v4why;
      if (!ParseV4Into(piece, v4, &v4why)) {
        *why = absl::StrCat("embedded IPv4 address: ", v4why);
        return false;
      }
      groups[count++] = static_cast<uint16_t>(v4[0] << 8 | v4[1]);
      groups[count++] = static_cast<uint16_t>(v4[2] << 8 | v4[3]);
      i = s.size();
      break;
    }
    if (piece.empty() || piece.size() > 4) {
      *why = piece.empty() ? "empty group" : absl::StrCat("group \"", piece, "\" has more than 4 hex digits");
      return false;
    }
    uint32_t value = 0;
    for (char c : piece) {
      int h = HexValue(c);
      if (h < 0) {
        *why = absl::StrCat("group \"", piece, "\" is not hexadecimal");
        return false;
      }
      value = value << 4 | static_cast<uint32_t>(h);
    }
    groups[count++] = static_cast<uint16_t>(value);
    i += piece.size();
    if (i == s.size()) {
      break;
    }
    // s[i] == ':'
    ++i;
    if (i < s.size() && s[i] == ':') {
      if (gap >= 0) {
        *why = "\"::\" appears more than once";
        return false;
      }
      gap = count;
      ++i;
    } else if (i == s.size()) {
      *why = "ends with a single ':'";
      return false;
    }
  }
  if (gap < 0 && count != 8) {
    *why = absl::StrCat("has ", count, " groups, want 8 (or \"::\")");
    return false;
  }
  if (gap >= 0 && count == 8) {
    *why = "\"::\" stands for no group";
    return false;
  }
  uint16_t full[8] = {};
  if (gap < 0) {
    std::memcpy(full, groups, sizeof(full));
  } else {
    int tail = count - gap;
    for (int k = 0; k < gap; ++k) full[k] = groups[k];
    for (int k = 0; k < tail; ++k) full[8 - tail + k] = groups[gap + k];
  }
  for (int k = 0; k < 8; ++k) {
    out[2 * k] = static_cast<uint8_t>(full[k] >> 8);
    out[2 * k + 1] = static_cast<uint8_t>(full[k]);
  }
  return true;
}

// Parses a prefix length: decimal, no sign, no leading zeros, 0..max.
bool ParseLength(absl::string_view s, int max, int* out) {
  if (s.empty() || s.size() > 3 || (s.size() > 1 && s[0] == '0')) return false;
  int v = 0;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
    v = v * 10 + (c - '0');
  }
  if (v > max) return false;
  *out = v;
  return true;
}

IpAddr Masked(const IpAddr& a, int length, bool* had_host_bits) {
  std::array<uint8_t, 16> b = a.bytes();
  bool host = false;
  for (size_t i = 0; i < a.size(); ++i) {
    int bits = length - static_cast<int>(i) * 8;
    uint8_t mask = bits >= 8 ? 0xff : bits <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits));
    if ((b[i] & ~mask) != 0) host = true;
    b[i] &= mask;
  }
  if (had_host_bits != nullptr) *had_host_bits = host;
  return a.is_v4() ? IpAddr::V4Bytes(b.data()) : IpAddr::V6Bytes(b.data());
}

}  // namespace

absl::StatusOr<L4Proto> ParseL4Proto(absl::string_view text) {
  std::string t = absl::AsciiStrToLower(text);
  if (t == "tcp") return L4Proto::kTCP;
  if (t == "udp") return L4Proto::kUDP;
  if (t == "sctp") return L4Proto::kSCTP;
  if (t == "icmp") return L4Proto::kICMP;
  if (t == "icmpv6" || t == "ipv6-icmp") return L4Proto::kICMPv6;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown L4 protocol \"", text, "\" (want TCP, UDP, SCTP, ICMP or ICMPv6)"));
}

absl::string_view L4ProtoName(L4Proto proto) {
  switch (proto) {
    case L4Proto::kTCP:
      return "TCP";
    case L4Proto::kUDP:
      return "UDP";
    case L4Proto::kSCTP:
      return "SCTP";
    case L4Proto::kICMP:
      return "ICMP";
    case L4Proto::kICMPv6:
      return "ICMPv6";
  }
  return "unknown";
}

absl::StatusOr<IpAddr> IpAddr::Parse(absl::string_view text) {
  if (text.empty()) return BadAddr(text, "empty");
  std::string why;
  if (text.find(':') != absl::string_view::npos) {
    uint8_t b[16];
    if (!ParseV6Into(text, b, &why)) return BadAddr(text, why);
    return V6Bytes(b);
  }
  uint8_t b[4];
  if (!ParseV4Into(text, b, &why)) return BadAddr(text, why);
  return V4Bytes(b);
}

IpAddr IpAddr::V4(uint32_t host_order) {
  uint8_t b[4] = {static_cast<uint8_t>(host_order >> 24), static_cast<uint8_t>(host_order >> 16),
                  static_cast<uint8_t>(host_order >> 8), static_cast<uint8_t>(host_order)};
  return V4Bytes(b);
}

IpAddr IpAddr::V4Bytes(const uint8_t bytes[4]) {
  IpAddr a;
  a.family_ = Family::kV4;
  std::memcpy(a.bytes_.data(), bytes, 4);
  return a;
}

IpAddr IpAddr::V6Bytes(const uint8_t bytes[16]) {
  IpAddr a;
  a.family_ = Family::kV6;
  std::memcpy(a.bytes_.data(), bytes, 16);
  return a;
}

IpAddr IpAddr::FromAbi(const dpv2_addr& addr, Family family) {
  return family == Family::kV4 ? V4Bytes(addr.b) : V6Bytes(addr.b);
}

dpv2_addr IpAddr::ToAbi() const {
  dpv2_addr a{};
  std::memcpy(a.b, bytes_.data(), size());
  return a;
}

std::string IpAddr::ToString() const {
  const auto& b = bytes_;
  if (is_v4()) return absl::StrFormat("%d.%d.%d.%d", b[0], b[1], b[2], b[3]);
  uint16_t g[8];
  for (int k = 0; k < 8; ++k) g[k] = static_cast<uint16_t>(b[2 * k] << 8 | b[2 * k + 1]);
  // RFC 5952 4.2: compress the longest run of two or more zero groups, the
  // first one on a tie.
  int best = -1;
  int best_len = 1;
  for (int k = 0; k < 8;) {
    if (g[k] != 0) {
      ++k;
      continue;
    }
    int start = k;
    while (k < 8 && g[k] == 0) ++k;
    if (k - start > best_len) {
      best = start;
      best_len = k - start;
    }
  }
  // RFC 5952 5: IPv4-mapped addresses keep the dotted quad.
  bool mapped = g[0] == 0 && g[1] == 0 && g[2] == 0 && g[3] == 0 && g[4] == 0 && g[5] == 0xffff;
  std::string out;
  int last = mapped ? 6 : 8;
  for (int k = 0; k < last; ++k) {
    if (k == best) {
      out += "::";
      k += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    absl::StrAppend(&out, absl::Hex(g[k]));
  }
  if (mapped) {
    if (out.back() != ':') out += ':';
    absl::StrAppend(&out, b[12], ".", b[13], ".", b[14], ".", b[15]);
  }
  return out;
}

std::ostream& operator<<(std::ostream& os, const IpAddr& addr) { return os << addr.ToString(); }

absl::StatusOr<Prefix> Prefix::ParseLenient(absl::string_view text, bool* had_host_bits) {
  if (had_host_bits != nullptr) *had_host_bits = false;
  size_t slash = text.find('/');
  absl::string_view addr_text = text.substr(0, slash);
  absl::StatusOr<IpAddr> addr = IpAddr::Parse(addr_text);
  if (!addr.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid prefix \"", text, "\": ", addr.status().message()));
  }
  int max = addr->is_v4() ? 32 : 128;
  int length = max;
  if (slash != absl::string_view::npos) {
    absl::string_view len_text = text.substr(slash + 1);
    if (!ParseLength(len_text, max, &length)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid prefix \"", text, "\": length \"",
                                                     len_text, "\" is not a number in 0..", max));
    }
  }
  Prefix p;
  p.addr_ = Masked(*addr, length, had_host_bits);
  p.length_ = length;
  return p;
}

absl::StatusOr<Prefix> Prefix::Parse(absl::string_view text) {
  bool host_bits = false;
  absl::StatusOr<Prefix> p = ParseLenient(text, &host_bits);
  if (!p.ok()) return p.status();
  if (host_bits) {
    return absl::InvalidArgumentError(absl::StrCat("invalid prefix \"", text,
                                                   "\": host bits set (did you mean \"",
                                                   p->ToString(), "\"?)"));
  }
  return p;
}

// Masks off host bits: callers build prefixes from an address and a length
// (an ipcache entry, a pod CIDR), where the address need not be the base.
absl::StatusOr<Prefix> Prefix::Make(const IpAddr& addr, int length) {
  int max = addr.is_v4() ? 32 : 128;
  if (length < 0 || length > max) {
    return absl::InvalidArgumentError(absl::StrCat("invalid prefix length ", length, " for ",
                                                   addr.ToString(), ": want 0..", max));
  }
  Prefix p;
  p.addr_ = Masked(addr, length, nullptr);
  p.length_ = length;
  return p;
}

bool Prefix::Contains(const IpAddr& addr) const {
  if (addr.family() != family()) return false;
  return Masked(addr, length_, nullptr) == addr_;
}

bool Prefix::Contains(const Prefix& other) const {
  return other.family() == family() && other.length_ >= length_ && Contains(other.addr_);
}

std::string Prefix::ToString() const { return absl::StrCat(addr_.ToString(), "/", length_); }

std::ostream& operator<<(std::ostream& os, const Prefix& p) { return os << p.ToString(); }

std::string FiveTuple::ToString() const {
  absl::string_view name = L4ProtoName(proto);
  std::string proto_text =
      name == "unknown" ? absl::StrCat("proto ", static_cast<int>(proto)) : std::string(name);
  auto endpoint = [](const IpAddr& a, uint16_t port) {
    return a.is_v4() ? absl::StrCat(a.ToString(), ":", port)
                     : absl::StrCat("[", a.ToString(), "]:", port);
  };
  return absl::StrCat(proto_text, " ", endpoint(src, sport), " -> ", endpoint(dst, dport));
}

}  // namespace dpv2
