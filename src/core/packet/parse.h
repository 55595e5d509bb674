// ParsePacket's two parsers, for the datapath and for the test that proves
// they agree. ParseCommonFrame decodes only the frame most traffic is
// (untagged IPv4 without options or fragmentation, carrying a whole TCP or
// UDP header) with the few checks such a frame can fail, and declines
// everything else; ParseAnyFrame is the full parser of dpv2/packet.h.
// ParsePacketInto tries the first and falls back to the second, writing the
// caller's ParseResult in place (a burst keeps it; nothing is copied).
//
//   ParseResult r;
//   ParsePacketInto(frame, &r);   // == ParsePacket(frame), without a copy
//   bool fast = ParseCommonFrame(frame, &r);   // false: r is unspecified
#ifndef DPV2_CORE_PACKET_PARSE_H_
#define DPV2_CORE_PACKET_PARSE_H_

#include <cstdint>

#include "absl/types/span.h"
#include "dpv2/packet.h"

namespace dpv2 {

// True when `frame` is a common frame; *out is then exactly what
// ParseAnyFrame gives (drop NONE). False for any other frame (well-formed
// or not), leaving *out unspecified.
bool ParseCommonFrame(absl::Span<const uint8_t> frame, ParseResult* out);

// The full parser (every layer and drop reason of dpv2/packet.h).
void ParseAnyFrame(absl::Span<const uint8_t> frame, ParseResult* out);

// ParsePacket(frame), written to *out.
inline void ParsePacketInto(absl::Span<const uint8_t> frame, ParseResult* out) {
  if (!ParseCommonFrame(frame, out)) {
    ParseAnyFrame(frame, out);
  }
}

}  // namespace dpv2

#endif  // DPV2_CORE_PACKET_PARSE_H_
