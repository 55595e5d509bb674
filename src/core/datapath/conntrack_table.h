// ConntrackTable: the connection tracking table of one in-memory datapath
// instance (the sim backend, or one DPDK lcore), keyed and valued by the ABI
// layouts dpv2_ct_key / dpv2_ct_value so that dumps read alike on every
// backend.
//
// Capacity is fixed (TCP and non-TCP entries counted separately, as the two
// BPF maps are); a full table refuses new entries and the datapath drops the
// packet with DPV2_DROP_CT_FULL. Timeouts follow SEMANTICS.md section 3 and
// are computed by UpdateConntrackEntry, the one statement of the TCP state
// machine. Garbage collection deletes an entry only if it is still expired at
// the moment of deletion, so an entry the datapath refreshed after the
// collector read it survives. Not thread-safe: one owner thread.
//
//   ConntrackTable ct(config);
//   dpv2_ct_value* v = ct.Find(key, now);
//   if (v == nullptr) v = ct.Create(key, initial, now);   // nullptr: full
#ifndef DPV2_CORE_DATAPATH_CONNTRACK_TABLE_H_
#define DPV2_CORE_DATAPATH_CONNTRACK_TABLE_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "core/datapath/abi_key.h"
#include "core/datapath/flat_table.h"
#include "dpv2/abi/abi.h"
#include "dpv2/backend.h"
#include "dpv2/datapath_config.h"
#include "dpv2/packet.h"

namespace dpv2 {

inline constexpr uint64_t kNanosPerSecond = 1'000'000'000;

// Which way a packet travels relative to the entry's key.
enum class CtDirection : uint8_t {
  kOriginal,  // the direction of the packet that created the entry
  kReply,
};

enum class CtUpdateResult : uint8_t {
  kRefreshed,
  kReopened,  // a SYN on a closing TCP entry reopened it
};

// Applies one packet to an entry: counters, TCP flags, closing bits and the
// new expiry (now + the lifetime of the resulting state):
//  - RST (either way) marks both directions closing;
//  - FIN marks the sender's direction closing;
//  - a SYN without RST/FIN in the original direction on an entry with a
//    closing bit clears both bits and SEEN_NON_SYN: the entry is reopened;
//  - any TCP packet without SYN sets SEEN_NON_SYN;
//  - lifetime: both closing => tcp_close_s; else SEEN_NON_SYN =>
//    tcp_established_s; else tcp_syn_s. Non-TCP protocols: non_tcp_s.
// (Inline: it runs twice for every packet of a service connection.)
inline constexpr uint16_t kCtClosingBoth = DPV2_CT_F_TX_CLOSING | DPV2_CT_F_RX_CLOSING;
inline CtUpdateResult UpdateConntrackEntry(dpv2_ct_value& value, uint8_t proto, CtDirection dir,
                                    uint8_t tcp_flags, uint32_t bytes, uint64_t now_ns,
                                    const ConntrackTimeouts& timeouts) {
  CtUpdateResult result = CtUpdateResult::kRefreshed;
  uint64_t lifetime_s = timeouts.non_tcp_s;
  if (proto == DPV2_PROTO_TCP) {
    if (tcp_flags & kTcpRst) {
      value.flags |= kCtClosingBoth;
    } else if (tcp_flags & kTcpFin) {
      value.flags |= dir == CtDirection::kOriginal ? DPV2_CT_F_TX_CLOSING : DPV2_CT_F_RX_CLOSING;
    } else if ((tcp_flags & kTcpSyn) && dir == CtDirection::kOriginal &&
               (value.flags & kCtClosingBoth)) {
      value.flags &= static_cast<uint16_t>(~(kCtClosingBoth | DPV2_CT_F_SEEN_NON_SYN));
      result = CtUpdateResult::kReopened;
    }
    if (!(tcp_flags & kTcpSyn)) {
      value.flags |= DPV2_CT_F_SEEN_NON_SYN;
    }
    if ((value.flags & kCtClosingBoth) == kCtClosingBoth) {
      lifetime_s = timeouts.tcp_close_s;
    } else if (value.flags & DPV2_CT_F_SEEN_NON_SYN) {
      lifetime_s = timeouts.tcp_established_s;
    } else {
      lifetime_s = timeouts.tcp_syn_s;
    }
    value.tcp_flags_seen |= tcp_flags;
  }
  if (dir == CtDirection::kReply) {
    value.flags |= DPV2_CT_F_REPLY_SEEN;
  }
  value.packets += 1;
  value.bytes += bytes;
  value.expires_ns = now_ns + lifetime_s * kNanosPerSecond;
  return result;
}

class ConntrackTable {
 public:
  explicit ConntrackTable(const DatapathConfig& config);

  // The hash the lookups below take, of a key with its padding cleared
  // (Normalized); computed once per key and packet. Every access to the
  // table goes through it (FlatTable's own KeyHash would place keys
  // elsewhere). It is TupleHash, xor kServiceSalt for a SERVICE key: a
  // packet's reply lookup, its plain entry and its SERVICE entry all come
  // from one TupleHash (pipeline.cc hashes each packet's tuple once).
  static uint64_t Hash(const dpv2_ct_key& normalized_key) {
    return TupleHash(normalized_key) ^
           ((normalized_key.flags & DPV2_CT_KEY_SERVICE) != 0 ? kServiceSalt : 0);
  }
  // The same for both directions of a tuple: the two addresses are taken in
  // their numeric order, and so are the two ports (an ICMP key keeps its
  // identifier in sport both ways). So a key and its reversed key share a
  // home slot: a forward packet's reply-direction miss and its own plain
  // entry read the same line. Flags are left out (Hash adds them).
  static uint64_t TupleHash(const dpv2_ct_key& k) {
    uint16_t p0 = k.sport;
    uint16_t p1 = k.dport;
    if (p1 < p0) {
      std::swap(p0, p1);
    }
    const uint64_t rest = uint64_t{p0} | uint64_t{p1} << 16 | uint64_t{k.proto} << 32 |
                          uint64_t{k.family} << 40;
    if (k.family == DPV2_FAMILY_V4) {
      uint32_t a;
      uint32_t b;
      std::memcpy(&a, k.saddr.b, 4);
      std::memcpy(&b, k.daddr.b, 4);
      const uint64_t words[2] = {std::min(a, b) | uint64_t{std::max(a, b)} << 32, rest};
      return HashKeyBytes(words, sizeof(words));
    }
    uint64_t a[2];
    uint64_t b[2];
    std::memcpy(a, k.saddr.b, 16);
    std::memcpy(b, k.daddr.b, 16);
    const bool swap = a[0] > b[0] || (a[0] == b[0] && a[1] > b[1]);
    const uint64_t words[5] = {swap ? b[0] : a[0], swap ? b[1] : a[1], swap ? a[0] : b[0],
                               swap ? a[1] : b[1], rest};
    return HashKeyBytes(words, sizeof(words));
  }
  // A random-looking constant (odd bits in the low half, which pick the
  // slot and the tag), so that a SERVICE entry lands apart from its tuple.
  static constexpr uint64_t kServiceSalt = 0x5bd1e9955bd1e995ull;
  void Prefetch(uint64_t hash) const { entries_.Prefetch(hash); }

  // The live entry for `key` (now < expires_ns), or nullptr.
  dpv2_ct_value* Find(const dpv2_ct_key& key, uint64_t now_ns);
  dpv2_ct_value* Find(const dpv2_ct_key& normalized_key, uint64_t hash, uint64_t now_ns) {
    dpv2_ct_value* v = entries_.Find(normalized_key, hash);
    return v == nullptr || now_ns >= v->expires_ns ? nullptr : v;
  }
  // The entry for `key` whether or not it expired (GC may not have run).
  dpv2_ct_value* FindAny(const dpv2_ct_key& key);
  dpv2_ct_value* FindAny(const dpv2_ct_key& normalized_key, uint64_t hash) {
    return entries_.Find(normalized_key, hash);
  }
  // Inserts `value` under `key`, overwriting an entry of the same key (live
  // or expired) without counting against the capacity. Returns nullptr when
  // the key is new and its table (TCP or other) is full. May grow the table:
  // pointers from earlier Find/Create calls are invalid afterwards.
  dpv2_ct_value* Create(const dpv2_ct_key& key, const dpv2_ct_value& value);
  // The same for a normalized key and its Hash, known to the caller;
  // `inserted`, when not null, tells whether the key was new.
  dpv2_ct_value* Create(const dpv2_ct_key& normalized_key, uint64_t hash,
                        const dpv2_ct_value& value, bool* inserted = nullptr);
  bool Erase(const dpv2_ct_key& key);
  // Room for `entries` without growing (growth rehashes every entry, a
  // pause a DPDK lcore avoids by reserving at start).
  void Reserve(size_t entries) {
    entries_.Reserve(entries);
    ++generation_;
  }

  // Garbage collection in two steps, as a concurrent collector would run:
  // the keys that were expired when scanned, then a conditional delete.
  std::vector<dpv2_ct_key> ExpiredKeys(uint64_t now_ns) const;
  // Deletes `key` only if it is still present and still expired at now_ns.
  bool EraseIfExpired(const dpv2_ct_key& key, uint64_t now_ns);
  GcStats CollectGarbage(uint64_t now_ns);

  void Flush();
  std::vector<ConntrackEntry> Dump() const;

  // Changes whenever an entry is created, overwritten or erased: while it
  // stays the same, a pointer from Find is still valid and a Find that
  // missed would miss again (a burst looks its frames up ahead of running
  // them, and reuses the answers only if the generation did not move).
  uint64_t generation() const { return generation_; }

  size_t tcp_entries() const { return tcp_entries_; }
  size_t other_entries() const { return other_entries_; }
  size_t size() const { return entries_.size(); }
  // Slots; a Create that changes it rehashed (moved every entry).
  size_t capacity() const { return entries_.capacity(); }
  const ConntrackTimeouts& timeouts() const { return timeouts_; }

 private:
  void Count(uint8_t proto, int delta);

  ConntrackTimeouts timeouts_;
  uint32_t tcp_capacity_;
  uint32_t other_capacity_;
  size_t tcp_entries_ = 0;
  size_t other_entries_ = 0;
  uint64_t generation_ = 0;
  FlatTable<dpv2_ct_key, dpv2_ct_value> entries_;
};

}  // namespace dpv2

#endif  // DPV2_CORE_DATAPATH_CONNTRACK_TABLE_H_
