// Internet checksum, RFC 1624 incremental updates and CRC32c (dpv2/checksum.h).
#include <catch2/catch.hpp>

#include <random>
#include <vector>

#include "dpv2/checksum.h"

namespace dpv2 {
namespace {

// RFC 1624 eqn 3 and a recomputation may differ only in the sign of zero
// (0x0000 against 0xffff), which both stand for the same sum.
bool SameChecksum(uint16_t a, uint16_t b) {
  return a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0);
}

uint16_t Word(const std::vector<uint8_t>& b, size_t i) {
  return static_cast<uint16_t>(b[i] << 8 | b[i + 1]);
}

TEST_CASE("the Internet checksum matches the RFC 1071 worked example", "[checksum]") {
  // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to 0xddf2.
  std::vector<uint8_t> data = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  CHECK(ChecksumFold(ChecksumAdd(data)) == 0xddf2);
  CHECK(InternetChecksum(data) == 0x220d);
}

TEST_CASE("an IPv4 header checksum is computed and verifies to zero", "[checksum]") {
  // A captured header whose checksum field holds 0xb861.
  std::vector<uint8_t> h = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                            0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
  CHECK(InternetChecksum(h) == 0xb861);
  h[10] = 0xb8;
  h[11] = 0x61;
  CHECK(InternetChecksum(h) == 0);
}

TEST_CASE("an odd trailing byte is padded with zero", "[checksum]") {
  std::vector<uint8_t> odd = {0x12, 0x34, 0x56};
  std::vector<uint8_t> even = {0x12, 0x34, 0x56, 0x00};
  CHECK(InternetChecksum(odd) == InternetChecksum(even));
  CHECK(InternetChecksum({}) == 0xffff);
}

TEST_CASE("the pseudo-header sum counts addresses, protocol and length", "[checksum]") {
  IpAddr a = *IpAddr::Parse("10.0.0.1");
  IpAddr b = *IpAddr::Parse("10.0.0.2");
  // 0a00 + 0001 + 0a00 + 0002 + 0006 + 0014 = 0x141d
  CHECK(PseudoHeaderSum(a, b, 6, 20) == 0x141d);
  IpAddr c = *IpAddr::Parse("fd00::1");
  IpAddr d = *IpAddr::Parse("fd00::2");
  // fd00 + 1 + fd00 + 2 + 0x3a + 8 = 0x1fa45 -> folded 0xfa46
  CHECK(ChecksumFold(PseudoHeaderSum(c, d, 58, 8)) == 0xfa46);
}

TEST_CASE("incremental updates equal a full recomputation on random data", "[checksum]") {
  std::mt19937 rng(1624);
  for (int iter = 0; iter < 2000; ++iter) {
    size_t len = 2 * (1 + rng() % 40);
    std::vector<uint8_t> data(len);
    for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
    uint16_t csum = InternetChecksum(data);
    std::vector<uint8_t> changed = data;
    size_t at = 2 * (rng() % (len / 2));
    uint16_t old_word = Word(changed, at);
    uint16_t new_word = static_cast<uint16_t>(rng());
    if (iter % 7 == 0) new_word = static_cast<uint16_t>(~old_word);  // extreme change
    changed[at] = static_cast<uint8_t>(new_word >> 8);
    changed[at + 1] = static_cast<uint8_t>(new_word);
    INFO("iteration " << iter);
    uint16_t want = InternetChecksum(changed);
    uint16_t got = ChecksumReplace16(csum, old_word, new_word);
    CHECK(SameChecksum(got, want));

    // A run of bytes (an address) in one update.
    std::vector<uint8_t> run = changed;
    size_t run_len = std::min<size_t>(len - (len % 4 == 0 ? 0 : 2), 16) & ~size_t{3};
    if (run_len >= 4) {
      std::vector<uint8_t> old_bytes(run.begin(), run.begin() + run_len);
      std::vector<uint8_t> new_bytes(run_len);
      for (uint8_t& b : new_bytes) b = static_cast<uint8_t>(rng());
      std::copy(new_bytes.begin(), new_bytes.end(), run.begin());
      uint16_t want_run = InternetChecksum(run);
      uint16_t got_run = ChecksumReplaceBytes(want, old_bytes, new_bytes);
      CHECK(SameChecksum(got_run, want_run));
      if (run_len == 4) {
        uint32_t o = static_cast<uint32_t>(old_bytes[0]) << 24 | old_bytes[1] << 16 |
                     old_bytes[2] << 8 | old_bytes[3];
        uint32_t n = static_cast<uint32_t>(new_bytes[0]) << 24 | new_bytes[1] << 16 |
                     new_bytes[2] << 8 | new_bytes[3];
        uint16_t got32 = ChecksumReplace32(want, o, n);
        CHECK(SameChecksum(got32, want_run));
      }
    }
  }
}

TEST_CASE("an address replacement updates a checksum as recomputation does", "[checksum]") {
  std::mt19937 rng(42);
  for (int iter = 0; iter < 500; ++iter) {
    bool v6 = iter % 2 == 1;
    uint8_t a[16], b[16];
    for (int i = 0; i < 16; ++i) {
      a[i] = static_cast<uint8_t>(rng());
      b[i] = static_cast<uint8_t>(rng());
    }
    IpAddr old_addr = v6 ? IpAddr::V6Bytes(a) : IpAddr::V4Bytes(a);
    IpAddr new_addr = v6 ? IpAddr::V6Bytes(b) : IpAddr::V4Bytes(b);
    std::vector<uint8_t> data(old_addr.bytes().begin(), old_addr.bytes().begin() + old_addr.size());
    data.push_back(0x12);
    data.push_back(0x34);
    uint16_t csum = InternetChecksum(data);
    std::copy(new_addr.bytes().begin(), new_addr.bytes().begin() + new_addr.size(), data.begin());
    uint16_t want = InternetChecksum(data);
    uint16_t got = ChecksumReplaceAddr(csum, old_addr, new_addr);
    CHECK(SameChecksum(got, want));
  }
}

TEST_CASE("CRC32c matches the RFC 3720 B.4 test vectors", "[checksum]") {
  std::vector<uint8_t> zeros(32, 0x00), ones(32, 0xff), inc(32), dec(32);
  for (int i = 0; i < 32; ++i) {
    inc[i] = static_cast<uint8_t>(i);
    dec[i] = static_cast<uint8_t>(31 - i);
  }
  CHECK(Crc32c(zeros) == 0x8a9136aau);
  CHECK(Crc32c(ones) == 0x62a8ab43u);
  CHECK(Crc32c(inc) == 0x46dd794eu);
  CHECK(Crc32c(dec) == 0x113fdb5cu);
  // "123456789", the catalogue check value of CRC-32C.
  std::string check = "123456789";
  CHECK(Crc32c(absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(check.data()), check.size())) ==
        0xe3069283u);
}

TEST_CASE("CRC32c continues across pieces", "[checksum]") {
  std::vector<uint8_t> data(100);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 + 3);
  absl::Span<const uint8_t> all(data);
  for (size_t cut : {0, 1, 37, 99, 100}) {
    CHECK(Crc32c(all.subspan(cut), Crc32c(all.subspan(0, cut))) == Crc32c(all));
  }
}

}  // namespace
}  // namespace dpv2
