// libFuzzer target for the packet parser, rewrites and reply builders.
//   meson setup build-fuzz -Dfuzz=true (with CXX=clang++), then
//   ./build-fuzz/tests/fuzz/packet_fuzzer -max_len=2048
#include <cstdio>
#include <cstdlib>

#include "tests/fuzz/packet_fuzz_body.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string err = dpv2::fuzz::CheckPacketInvariants(absl::MakeConstSpan(data, size));
  if (!err.empty()) {
    std::fprintf(stderr, "packet invariant broken: %s\n", err.c_str());
    std::abort();
  }
  return 0;
}
