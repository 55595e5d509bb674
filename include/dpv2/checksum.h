// dpv2 checksums: the Internet checksum (RFC 1071), its incremental update
// (RFC 1624) and CRC32c (RFC 3720, used by SCTP).
//
// 16-bit checksum values are in host order as read from the wire with a
// big-endian load, so a field is written back with two bytes hi, lo. Every
// incremental update gives the same result as recomputing over the new bytes.
//
//   uint16_t c = dpv2::InternetChecksum(ip_header);          // 0 when valid
//   c = dpv2::ChecksumReplace16(c, old_port, new_port);
//   uint32_t crc = dpv2::Crc32c(sctp_packet);
#ifndef DPV2_CHECKSUM_H_
#define DPV2_CHECKSUM_H_

#include <cstdint>

#include "absl/types/span.h"
#include "dpv2/net.h"

namespace dpv2 {

// One's complement sum of `data` as big-endian 16-bit words (an odd last
// byte is padded with zero), added to `sum`, not folded. Chain calls over
// pieces whose lengths are even, except possibly the last.
uint32_t ChecksumAdd(absl::Span<const uint8_t> data, uint32_t sum = 0);

// Folds a 32-bit one's complement sum to 16 bits (not complemented).
uint16_t ChecksumFold(uint32_t sum);

// The checksum field value for `data`: ~fold(initial + sum(data)). Over a
// region that already holds a correct checksum field the result is 0.
uint16_t InternetChecksum(absl::Span<const uint8_t> data, uint32_t initial = 0);

// The unfolded sum of the TCP/UDP/ICMPv6 pseudo-header (RFC 768, RFC 8200
// section 8.1) for `l4_length` bytes of protocol `proto`.
uint32_t PseudoHeaderSum(const IpAddr& src, const IpAddr& dst, uint8_t proto,
                         uint32_t l4_length);

// RFC 1624 equation 3: the checksum after one 16-bit word of the covered data
// changes from old_word to new_word.
uint16_t ChecksumReplace16(uint16_t csum, uint16_t old_word, uint16_t new_word);
uint16_t ChecksumReplace32(uint16_t csum, uint32_t old_value, uint32_t new_value);
// The same for a run of bytes of even length (old and new the same size),
// e.g. an address in the covered data or the pseudo-header.
uint16_t ChecksumReplaceBytes(uint16_t csum, absl::Span<const uint8_t> old_bytes,
                              absl::Span<const uint8_t> new_bytes);
// For an address: 4 bytes for IPv4, 16 for IPv6 (both of one family).
uint16_t ChecksumReplaceAddr(uint16_t csum, const IpAddr& old_addr,
                             const IpAddr& new_addr);

// CRC32c (Castagnoli), as SCTP uses it: Crc32c(data) for a whole buffer;
// pass the previous result as `crc` to continue over a following piece.
// SCTP stores the value in little-endian byte order (RFC 4960 appendix B).
uint32_t Crc32c(absl::Span<const uint8_t> data, uint32_t crc = 0);

}  // namespace dpv2

#endif  // DPV2_CHECKSUM_H_
