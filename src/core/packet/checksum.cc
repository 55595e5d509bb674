// Internet checksum, RFC 1624 incremental updates and CRC32c (dpv2/checksum.h).
#include "dpv2/checksum.h"

#include <algorithm>
#include <array>

namespace dpv2 {

uint32_t ChecksumAdd(absl::Span<const uint8_t> data, uint32_t sum) {
  // Accumulate in 64 bits so that no carry is lost on long buffers.
  uint64_t acc = sum;
  size_t i = 0;
  for (; i + 1 < data.size(); i += 2) {
    acc += static_cast<uint32_t>(data[i] << 8 | data[i + 1]);
  }
  if (i < data.size()) {
    acc += static_cast<uint32_t>(data[i] << 8);
  }
  while (acc >> 32) {
    acc = (acc & 0xffffffffu) + (acc >> 32);
  }
  return static_cast<uint32_t>(acc);
}

uint16_t ChecksumFold(uint32_t sum) {
  while (sum >> 16) {
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return static_cast<uint16_t>(sum);
}

uint16_t InternetChecksum(absl::Span<const uint8_t> data, uint32_t initial) {
  return static_cast<uint16_t>(~ChecksumFold(ChecksumAdd(data, initial)));
}

uint32_t PseudoHeaderSum(const IpAddr& src, const IpAddr& dst, uint8_t proto,
                         uint32_t l4_length) {
  uint32_t sum = ChecksumAdd(absl::MakeConstSpan(src.bytes().data(), src.size()));
  sum = ChecksumAdd(absl::MakeConstSpan(dst.bytes().data(), dst.size()), sum);
  uint64_t acc = sum;
  acc += proto;
  acc += l4_length >> 16;
  acc += l4_length & 0xffff;
  return ChecksumFold(static_cast<uint32_t>(acc & 0xffffffffu) + static_cast<uint32_t>(acc >> 32));
}

uint16_t ChecksumReplace16(uint16_t csum, uint16_t old_word, uint16_t new_word) {
  // HC' = ~(~HC + ~m + m')
  uint32_t sum = static_cast<uint16_t>(~csum);
  sum += static_cast<uint16_t>(~old_word);
  sum += new_word;
  return static_cast<uint16_t>(~ChecksumFold(sum));
}

uint16_t ChecksumReplace32(uint16_t csum, uint32_t old_value, uint32_t new_value) {
  uint32_t sum = static_cast<uint16_t>(~csum);
  sum += static_cast<uint16_t>(~(old_value >> 16));
  sum += static_cast<uint16_t>(~old_value);
  sum += new_value >> 16;
  sum += new_value & 0xffff;
  return static_cast<uint16_t>(~ChecksumFold(sum));
}

uint16_t ChecksumReplaceBytes(uint16_t csum, absl::Span<const uint8_t> old_bytes,
                              absl::Span<const uint8_t> new_bytes) {
  // One's complement addition is associative: carries are folded once at
  // the end (64 bits cannot overflow on any frame), which gives the same
  // field as folding after every word, in fewer instructions (per packet:
  // every NATed address goes through here).
  uint64_t sum = static_cast<uint16_t>(~csum);
  size_t n = std::min(old_bytes.size(), new_bytes.size()) & ~size_t{1};
  for (size_t i = 0; i < n; i += 2) {
    sum += static_cast<uint16_t>(~(old_bytes[i] << 8 | old_bytes[i + 1]));
    sum += static_cast<uint16_t>(new_bytes[i] << 8 | new_bytes[i + 1]);
  }
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffffffu) + (sum >> 32);
  return static_cast<uint16_t>(~ChecksumFold(static_cast<uint32_t>(sum)));
}

uint16_t ChecksumReplaceAddr(uint16_t csum, const IpAddr& old_addr, const IpAddr& new_addr) {
  return ChecksumReplaceBytes(csum, absl::MakeConstSpan(old_addr.bytes().data(), old_addr.size()),
                              absl::MakeConstSpan(new_addr.bytes().data(), new_addr.size()));
}

namespace {

// Reflected Castagnoli polynomial.
constexpr uint32_t kCrc32cPoly = 0x82f63b78u;

constexpr std::array<uint32_t, 256> MakeCrc32cTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) {
      c = (c & 1) ? (c >> 1) ^ kCrc32cPoly : c >> 1;
    }
    table[i] = c;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kCrc32cTable = MakeCrc32cTable();

}  // namespace

uint32_t Crc32c(absl::Span<const uint8_t> data, uint32_t crc) {
  uint32_t c = ~crc;
  for (uint8_t byte : data) {
    c = kCrc32cTable[(c ^ byte) & 0xff] ^ (c >> 8);
  }
  return ~c;
}

}  // namespace dpv2
