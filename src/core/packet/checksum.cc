// Implementation of dpv2/checksum.h (in progress).
#include "dpv2/checksum.h"

namespace dpv2 {
uint32_t ChecksumAdd(absl::Span<const uint8_t>, uint32_t sum) { return sum; }
uint16_t ChecksumFold(uint32_t) { return 0; }
uint16_t InternetChecksum(absl::Span<const uint8_t>, uint32_t) { return 0; }
uint32_t PseudoHeaderSum(const IpAddr&, const IpAddr&, uint8_t, uint32_t) { return 0; }
uint16_t ChecksumReplace16(uint16_t csum, uint16_t, uint16_t) { return csum; }
uint16_t ChecksumReplace32(uint16_t csum, uint32_t, uint32_t) { return csum; }
uint16_t ChecksumReplaceBytes(uint16_t csum, absl::Span<const uint8_t>, absl::Span<const uint8_t>) { return csum; }
uint16_t ChecksumReplaceAddr(uint16_t csum, const IpAddr&, const IpAddr&) { return csum; }
uint32_t Crc32c(absl::Span<const uint8_t>, uint32_t crc) { return crc; }
}  // namespace dpv2
