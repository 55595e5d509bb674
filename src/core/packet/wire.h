// Big-endian loads and stores on frame bytes, shared by the packet sources.
// Callers check bounds first; these only spell the byte order once.
#ifndef DPV2_CORE_PACKET_WIRE_H_
#define DPV2_CORE_PACKET_WIRE_H_

#include <cstddef>
#include <cstdint>

namespace dpv2::wire {

inline uint16_t Load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t Load32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) << 24 | static_cast<uint32_t>(p[1]) << 16 |
         static_cast<uint32_t>(p[2]) << 8 | p[3];
}
inline void Store16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void Store32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
// SCTP keeps its CRC32c in little-endian byte order.
inline void StoreLe32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v >> 16);
  p[3] = static_cast<uint8_t>(v >> 24);
}
inline uint32_t LoadLe32(const uint8_t* p) {
  return static_cast<uint32_t>(p[3]) << 24 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[1]) << 8 | p[0];
}

// One's complement fold of a 32-bit sum to 16 bits: two rounds reach a
// 16-bit value for any 32-bit input (same result as ChecksumFold's loop,
// without a call on the per-packet rewrite path).
inline uint16_t Fold16(uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}
// RFC 1624 eqn. 3 for one 16-bit word (same result as ChecksumReplace16).
inline uint16_t Replace16(uint16_t csum, uint16_t old_word, uint16_t new_word) {
  return static_cast<uint16_t>(~Fold16(static_cast<uint32_t>(static_cast<uint16_t>(~csum)) +
                                       static_cast<uint16_t>(~old_word) + new_word));
}

// Header offsets used by more than one source file.
inline constexpr size_t kIPv4SrcOffset = 12;
inline constexpr size_t kIPv4DstOffset = 16;
inline constexpr size_t kIPv4CsumOffset = 10;
inline constexpr size_t kIPv6SrcOffset = 8;
inline constexpr size_t kIPv6DstOffset = 24;
inline constexpr size_t kIPv6HeaderLen = 40;
inline constexpr size_t kIPv4MinHeaderLen = 20;
inline constexpr size_t kTcpCsumOffset = 16;
inline constexpr size_t kUdpCsumOffset = 6;
inline constexpr size_t kIcmpCsumOffset = 2;
inline constexpr size_t kSctpCsumOffset = 8;
inline constexpr size_t kTcpMinHeaderLen = 20;
inline constexpr size_t kUdpHeaderLen = 8;
inline constexpr size_t kSctpCommonHeaderLen = 12;
inline constexpr size_t kIcmpHeaderLen = 8;

inline bool IsIcmpEcho(bool v6, uint8_t type) {
  return v6 ? (type == 128 || type == 129) : (type == 0 || type == 8);
}
inline bool IsIcmpError(bool v6, uint8_t type) {
  return v6 ? (type >= 1 && type <= 4)
            : (type == 3 || type == 4 || type == 5 || type == 11 || type == 12);
}

}  // namespace dpv2::wire

#endif  // DPV2_CORE_PACKET_WIRE_H_
