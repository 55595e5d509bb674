// The packet fuzz body: parse, describe, rewrite and reply to one frame, and
// check the invariants that must hold for any input. Shared by the libFuzzer
// target (tests/fuzz/packet_fuzzer.cc) and the gcc-built smoke test that runs
// it over random and mutated frames (tests/unit/packet/fuzz_smoke_test.cc).
//
//   std::string err = dpv2::fuzz::CheckPacketInvariants(frame);
//   if (!err.empty()) abort();
#ifndef DPV2_TESTS_FUZZ_PACKET_FUZZ_BODY_H_
#define DPV2_TESTS_FUZZ_PACKET_FUZZ_BODY_H_

#include <cstdint>
#include <string>

#include "absl/types/span.h"

namespace dpv2::fuzz {

// Empty when every invariant holds, else what broke.
std::string CheckPacketInvariants(absl::Span<const uint8_t> data);

}  // namespace dpv2::fuzz

#endif  // DPV2_TESTS_FUZZ_PACKET_FUZZ_BODY_H_
