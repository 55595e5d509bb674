// The datapath of docs/datapath.md. The order of the stages is the contract
// every backend follows: parse, (ND bypass), anti-spoofing, fragments, ICMP
// errors related to a tracked flow, the reply direction, service
// connections, plain flows; policy after translation; delivery.
#include "core/datapath/pipeline.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "core/datapath/steering.h"
#include "core/packet/parse.h"
#include "core/packet/rewrite.h"
#include "dpv2/abi/hash.h"
#include "dpv2/packet.h"

namespace dpv2 {
namespace {

constexpr uint16_t kCtClosing = DPV2_CT_F_TX_CLOSING | DPV2_CT_F_RX_CLOSING;

uint8_t AbiFamily(Family f) { return static_cast<uint8_t>(f); }

bool IsIcmp(uint8_t proto) { return proto == DPV2_PROTO_ICMP || proto == DPV2_PROTO_ICMPV6; }

bool HasPorts(uint8_t proto) {
  return proto == DPV2_PROTO_TCP || proto == DPV2_PROTO_UDP || proto == DPV2_PROTO_SCTP;
}

// IpAddr::ToAbi without the call (once per address and frame); copies of
// constant length, which compile to moves where a variable one is a call.
dpv2_addr AbiAddr(const IpAddr& a) {
  dpv2_addr out{};
  if (a.is_v4()) {
    std::memcpy(out.b, a.bytes().data(), 4);
  } else {
    std::memcpy(out.b, a.bytes().data(), 16);
  }
  return out;
}

// Address equality as two word compares (memcmp of 16 bytes is a call).
bool SameAddr(const dpv2_addr& a, const dpv2_addr& b) {
  uint64_t a0;
  uint64_t a1;
  uint64_t b0;
  uint64_t b1;
  std::memcpy(&a0, a.b, 8);
  std::memcpy(&a1, a.b + 8, 8);
  std::memcpy(&b0, b.b, 8);
  std::memcpy(&b1, b.b + 8, 8);
  return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

// Conntrack keys: ICMP keeps the echo identifier in sport and 0 in dport in
// both directions, so that a request and its reply are one flow. Written
// in place, every byte once: a zeroed temporary copied over (MakeCtKey)
// costs the copy and, right after the piecewise stores, 16-byte reloads
// that store-to-load forwarding cannot serve (a stall per key a packet).
void SetCtKey(dpv2_ct_key* key, const dpv2_addr& saddr, const dpv2_addr& daddr, uint16_t sport,
              uint16_t dport, uint8_t proto, uint8_t family, uint8_t flags) {
  static_assert(sizeof(dpv2_ct_key) == 2 * sizeof(dpv2_addr) + 8, "every field set below");
  key->saddr = saddr;
  key->daddr = daddr;
  key->sport = htons(sport);
  key->dport = IsIcmp(proto) ? 0 : htons(dport);
  key->proto = proto;
  key->family = family;
  key->flags = flags;
  key->pad = 0;
}

dpv2_ct_key MakeCtKey(const dpv2_addr& saddr, const dpv2_addr& daddr, uint16_t sport,
                      uint16_t dport, uint8_t proto, uint8_t family, uint8_t flags) {
  dpv2_ct_key key;
  SetCtKey(&key, saddr, daddr, sport, dport, proto, family, flags);
  return key;
}

// ICMPv6 the node's stack handles for a pod, with addresses no endpoint
// entry lists: neighbor discovery (133-137) from any source, MLD (130-132,
// 143) from a link-local or the unspecified source (docs/datapath.md).
bool IsNeighborDiscovery(const ParsedPacket& pkt) {
  if (pkt.family != Family::kV6 || pkt.proto != DPV2_PROTO_ICMPV6) {
    return false;
  }
  if (pkt.icmp_type >= 133 && pkt.icmp_type <= 137) {
    return true;
  }
  const bool mld = (pkt.icmp_type >= 130 && pkt.icmp_type <= 132) || pkt.icmp_type == 143;
  const std::array<uint8_t, 16>& a = pkt.src.bytes();
  const bool link_local = a[0] == 0xfe && (a[1] & 0xc0) == 0x80;
  const bool unspecified = std::all_of(a.begin(), a.end(), [](uint8_t b) { return b == 0; });
  return mld && (link_local || unspecified);
}

// A TCP SYN (without RST/FIN) on an entry with a closing bit reopens it.
bool ReopensEntry(const dpv2_ct_value& value, uint8_t proto, uint8_t tcp_flags) {
  return proto == DPV2_PROTO_TCP && (tcp_flags & kTcpSyn) && !(tcp_flags & (kTcpRst | kTcpFin)) &&
         (value.flags & kCtClosing) != 0;
}

// Forward packets the established fast path may serve (docs/datapath.md,
// "Established fast path"): port-bearing, whole, not an ICMP error, not a
// TCP SYN (a new or reopening connection, which the full pipeline handles
// and stamps).
bool FastPathCandidate(const ParsedPacket& pkt) {
  return HasPorts(pkt.proto) && !pkt.is_fragment && !pkt.is_icmp_error &&
         !(pkt.proto == DPV2_PROTO_TCP && (pkt.tcp_flags & kTcpSyn));
}

// Whether a forward packet's SERVICE or plain entry was checked at the
// tables' current revision by a packet from the same place (the stamp is
// written by PacketRun::Stamp).
bool StampCurrent(const dpv2_ct_value& e, uint32_t revision, Entry entry, uint32_t ifindex) {
  return e.revision == revision && e.in_ifindex == ifindex &&
         ((e.cache_flags & DPV2_CT_C_FROM_POD) != 0) == (entry == Entry::kFromPod);
}

// The frontend's key (EXT scope) and hash, for a frame with ports.
void KeyService(PreparedFrame* p) {
  const ParsedPacket& pkt = p->parsed->pkt;
  p->service_key = dpv2_lb_key{};
  p->service_key.addr = p->daddr;
  p->service_key.port = htons(pkt.dport);
  p->service_key.proto = pkt.proto;
  p->service_key.family = AbiFamily(pkt.family);
  p->service_key.scope = DPV2_LB_SCOPE_EXT;
  p->service_hash = KeyHash(p->service_key);
  p->service_keyed = true;
}

// The first pass over a frame: parse, and the keys (and hashes) of the
// lookups every IP frame makes, which the burst prefetches. The frontend is
// keyed here only for a packet the fast path cannot serve (a SYN, ICMP...):
// for the others the burst's second pass keys it if their entry's stamp
// does not hold, and the run otherwise.
void Prepare(absl::Span<const uint8_t> frame, const ParseResult* parsed, PreparedFrame* p) {
  if (parsed == nullptr) {
    ParsePacketInto(frame, &p->own);
    parsed = &p->own;
  }
  p->parsed = parsed;
  p->keyed = false;
  p->fast_candidate = false;
  p->service_keyed = false;
  p->looked_up = false;
  p->plain_looked_up = false;
  p->service_looked_up = false;
  p->stamped = false;
  p->flow_from_stamp = false;
  p->reply_service_keyed = false;
  p->wants_slot = false;
  p->has_maglev_slot = false;
  p->backend = nullptr;
  const ParsedPacket& pkt = parsed->pkt;
  if (parsed->drop != DPV2_DROP_NONE || !parsed->is_ip) {
    return;
  }
  // Locals, so that the keys are built from registers rather than from
  // the bytes just stored.
  const dpv2_addr saddr = AbiAddr(pkt.src);
  const dpv2_addr daddr = AbiAddr(pkt.dst);
  p->saddr = saddr;
  p->daddr = daddr;
  if (pkt.is_fragment) {
    return;
  }
  const uint8_t family = AbiFamily(pkt.family);
  p->keyed = true;
  SetCtKey(&p->reply_key, daddr, saddr, IsIcmp(pkt.proto) ? pkt.sport : pkt.dport, pkt.sport,
           pkt.proto, family, 0);
  // One hash of the tuple serves the reply, plain and SERVICE keys.
  p->reply_hash = ConntrackTable::TupleHash(p->reply_key);
  SetCtKey(&p->service_ct_key, saddr, daddr, pkt.sport, pkt.dport, pkt.proto, family,
           DPV2_CT_KEY_SERVICE);
  p->service_ct_hash = p->reply_hash ^ ConntrackTable::kServiceSalt;
  p->fast_candidate = FastPathCandidate(pkt);
  if (HasPorts(pkt.proto) && !p->fast_candidate) {
    KeyService(p);
  }
}

// The Maglev hash of a frame's tuple (the ABI's dpv2_tuple_hash, as BPF
// computes it).
uint32_t TupleHash(const PreparedFrame& p) {
  // The fields MakeCtKey would store, without building (and zeroing) a key.
  const ParsedPacket& pkt = p.parsed->pkt;
  return dpv2_tuple_hash(&p.saddr, &p.daddr, htons(pkt.sport),
                         IsIcmp(pkt.proto) ? 0 : htons(pkt.dport), pkt.proto,
                         AbiFamily(pkt.family));
}

class PacketRun {
 public:
  PacketRun(const DatapathTables& tables, DatapathState& state, const BurstFrame& in,
            PreparedFrame& prepared, uint8_t* reply_buffer, uint64_t now_ns,
            std::vector<dpv2_event>* collected)
      : tables_(tables),
        state_(state),
        entry_(in.entry),
        ifindex_(in.ifindex),
        frame_(in.frame),
        prepared_(prepared),
        reply_buffer_(reply_buffer),
        now_(now_ns),
        collected_(collected) {}

  FrameResult Run();

 private:
  // The packet as it leaves (after translation), for events and policy.
  struct Flow {
    dpv2_addr saddr{};
    dpv2_addr daddr{};
    uint16_t sport = 0;
    uint16_t dport = 0;
    dpv2_addr orig_daddr{};  // the frontend when translated
    uint16_t orig_dport = 0;
    uint32_t service_id = 0;
    uint32_t backend_id = 0;
    uint32_t src_identity = 0;
    uint32_t dst_identity = 0;
    // Identities are looked up only when something reads them (policy, a
    // new entry, an event): an established flow without policy needs none.
    bool identities_pending = false;
  };

  // The established fast path: a forward packet whose conntrack entry was
  // stamped at the current tables revision by a packet from the same place
  // would pass anti-spoofing and policy again and find the same frontend
  // and backend, so it skips them (a SERVICE entry needs its backend and
  // flow entry, a plain entry nothing more). False when the full pipeline
  // must run; nothing has changed then.
  bool ForwardFast(FrameResult* result);
  // The entry a reply of this packet's connection is tracked under (stage 6).
  dpv2_ct_value* ReplyEntry() {
    return LookedUp(prepared_.reply_entry)
               ? Live(prepared_.reply_entry)
               : state_.conntrack.Find(prepared_.reply_key, prepared_.reply_hash, now_);
  }
  // A forward packet passed anti-spoofing and policy: its entry remembers
  // the tables revision, the ingress and the policy directions that allowed
  // it, and what those tables answered that the fast path needs again
  // (the layout eBPF stamps: abi/ct.h): DPV2_CT_C_PASS when `dst` (after
  // translation) is no local endpoint; a SERVICE entry also keeps its
  // backend's address and port (network order) in nat_addr/nat_port, where
  // it held the frontend, which its key names (ConntrackTable::Dump reports
  // that).
  void Stamp(dpv2_ct_value& e, const dpv2_addr& dst) {
    e.revision = tables_.revision();
    e.in_ifindex = ifindex_;
    e.cache_flags = static_cast<uint8_t>((entry_ == Entry::kFromPod ? DPV2_CT_C_FROM_POD : 0) |
                                         policy_checked_ |
                                         (EndpointOf(dst) == nullptr ? DPV2_CT_C_PASS : 0));
  }
  void StampService(dpv2_ct_value& e, const dpv2_backend& backend) {
    Stamp(e, backend.addr);
    e.nat_addr = backend.addr;
    e.nat_port = backend.port;
  }
  // Delivery as the stamp found it: no endpoint lookup for a destination
  // that was no local endpoint.
  FrameResult DeliverStamped(const dpv2_ct_value& e, const dpv2_addr& dst) {
    if (e.cache_flags & DPV2_CT_C_PASS) {
      state_.counters[DPV2_CNT_PASSED] += 1;
      return FrameResult{.verdict = Verdict::kPass};
    }
    return Deliver(dst);
  }
  bool StampCurrent(const dpv2_ct_value& e) const {
    return dpv2::StampCurrent(e, tables_.revision(), entry_, ifindex_);
  }
  // POLICY_ALLOWED counts every lookup the full pipeline would have made.
  void CountStampedPolicy(const dpv2_ct_value& e) {
    state_.counters[DPV2_CNT_POLICY_ALLOWED] +=
        ((e.cache_flags & DPV2_CT_C_EGRESS) != 0) + ((e.cache_flags & DPV2_CT_C_INGRESS) != 0);
  }

  FrameResult HandleRelatedIcmp(bool* handled);
  FrameResult HandleReply(dpv2_ct_value& entry, const dpv2_ct_key& key);
  FrameResult HandleService(const dpv2_lb_value& svc);
  FrameResult HandlePlainFlow();

  // Policy after translation; NONE when allowed. Emits verdict events for a
  // new connection; policy_checked_ names the directions whose lookup
  // allowed it.
  dpv2_drop_reason CheckPolicy(Flow& flow, bool new_connection);
  uint32_t IdentityOf(const dpv2_addr& addr);
  void ResolveIdentities(Flow& flow);
  // FindEndpoint, remembered for the addresses of this packet (a packet asks
  // about the same two or three addresses several times). A box with no
  // local pods (the dpv2-lb appliance) asks every packet for its delivery:
  // that answer is known ahead, here, without a call (a new connection asks
  // four times).
  const dpv2_endpoint_value* EndpointOf(const dpv2_addr& addr) {
    return tables_.endpoint_count() == 0 ? nullptr : LookUpEndpoint(addr);
  }
  const dpv2_endpoint_value* LookUpEndpoint(const dpv2_addr& addr);

  // FindBackend(id), or the backend the burst found ahead for this frame.
  const dpv2_backend* BackendOf(uint32_t backend_id) const {
    return prepared_.backend != nullptr && prepared_.backend_id == backend_id
               ? prepared_.backend
               : tables_.FindBackend(backend_id);
  }
  // The flow entry's key (client -> backend) and its hash: the burst's when
  // it built them for `backend`, else built in `scratch`.
  const dpv2_ct_key& FlowKey(const dpv2_backend& backend, dpv2_ct_key* scratch,
                             uint64_t* hash) const {
    if (prepared_.backend == &backend) {
      *hash = prepared_.flow_hash;
      return prepared_.flow_key;
    }
    *scratch = MakeCtKey(saddr_, backend.addr, pkt_.sport, ntohs(backend.port), proto_, family_, 0);
    *hash = ConntrackTable::Hash(*scratch);
    return *scratch;
  }

  // An SNATed connection's flow entry key (node:port -> backend) and hash.
  const dpv2_ct_key& SnatFlowKey(const dpv2_snat_value& source, const dpv2_backend& backend,
                                 dpv2_ct_key* scratch, uint64_t* hash) const {
    *scratch = MakeCtKey(source.addr, backend.addr, ntohs(source.port), ntohs(backend.port),
                         proto_, family_, 0);
    *hash = ConntrackTable::Hash(*scratch);
    return *scratch;
  }
  // A new SNATed connection's source port (docs/datapath.md, "SNAT"; its
  // source address is the node's, or the client's own for a source port
  // collision): writes its reverse and forward SNAT entries and the source
  // into `source`, or returns the drop reason (nothing written then).
  dpv2_drop_reason ClaimSnatPort(const dpv2_addr& snat_addr, const dpv2_backend& backend,
                                 dpv2_snat_value* source);
  // The reverse SNAT entry this packet's client gets (created now), and
  // whether an existing one names that client.
  dpv2_snat_value SnatClient() const {
    dpv2_snat_value client{};
    client.addr = saddr_;
    client.port = htons(pkt_.sport);
    client.created_ns = now_;
    return client;
  }
  bool IsSnatClient(const dpv2_snat_value& entry) const {
    return SameAddr(entry.addr, saddr_) && entry.port == htons(pkt_.sport);
  }
  // Whether a flow entry is the connection translated from this packet's
  // frontend with exactly `nat_flags` of REV_NAT | SNAT (REV_NAT: a service
  // connection; REV_NAT | SNAT: an SNATed or remapped one).
  bool IsFlowOfThisFrontend(const dpv2_ct_value& e, uint16_t nat_flags) const {
    return (e.flags & (DPV2_CT_F_REV_NAT | DPV2_CT_F_SNAT)) == nat_flags &&
           SameAddr(e.nat_addr, daddr_) && e.nat_port == htons(pkt_.dport);
  }
  // Whether a live flow entry under an SNAT port's key (nullptr: none) is
  // this packet's connection's: REV_NAT | SNAT and this frontend. With the
  // reverse SNAT entry naming this client it is then the same connection;
  // otherwise another connection of the client holds the port.
  bool IsOwnSnatFlow(const dpv2_ct_value* flow) const {
    return flow == nullptr || IsFlowOfThisFrontend(*flow, DPV2_CT_F_REV_NAT | DPV2_CT_F_SNAT);
  }
  // Whether a live flow entry under a new connection's flow key (client ->
  // backend) is another connection's (docs/datapath.md, "Source port
  // collisions"): a plain flow, a remapped connection's (SNAT), or one
  // translated from another frontend. REV_NAT without SNAT and this
  // frontend is the connection's own, reopened.
  bool HeldByOtherConnection(const dpv2_ct_value& e) const {
    return !IsFlowOfThisFrontend(e, DPV2_CT_F_REV_NAT);
  }
  // With flow steering over several instances (DPDK lcores), whether a reply
  // to this client's address and `port` is steered to the instance its
  // original port's packets go to (steering.h keys a connection on its
  // client end).
  bool SteeredAlike(uint16_t port) const {
    const uint32_t n = state_.steering_instances;
    return n <= 1 || ClientSteeringHash(saddr_, port, proto_, family_) % n ==
                         ClientSteeringHash(saddr_, pkt_.sport, proto_, family_) % n;
  }

  // Whether the burst's look-ahead answer (hit or miss) still holds.
  bool LookedUp(const dpv2_ct_value*) const {
    return prepared_.looked_up && prepared_.ct_generation == state_.conntrack.generation();
  }
  // A look-ahead hit, unless an update since made it expire.
  dpv2_ct_value* Live(dpv2_ct_value* v) const {
    return v != nullptr && now_ < v->expires_ns ? v : nullptr;
  }

  FrameResult Deliver(const dpv2_addr& daddr);
  FrameResult Drop(dpv2_drop_reason reason, Flow* flow);
  FrameResult Reject(Flow& flow);
  void Emit(uint8_t type, uint16_t flags, dpv2_drop_reason reason, Flow* flow,
            uint32_t policy_match_id = 0);
  Flow PacketFlow() const;

  const DatapathTables& tables_;
  DatapathState& state_;
  Entry entry_;
  uint32_t ifindex_;
  absl::Span<uint8_t> frame_;
  PreparedFrame& prepared_;
  uint8_t* reply_buffer_;  // kMaxRejectReplyLen bytes
  uint64_t now_;
  std::vector<dpv2_event>* collected_;

  struct KnownEndpoint {
    dpv2_addr addr;
    const dpv2_endpoint_value* ep;
  };
  std::array<KnownEndpoint, 4> known_endpoints_;
  size_t known_count_ = 0;
  uint8_t policy_checked_ = 0;  // DPV2_CT_C_EGRESS | DPV2_CT_C_INGRESS

  const ParsedPacket& pkt_ = prepared_.parsed->pkt;
  uint8_t family_ = 0;
  uint8_t proto_ = 0;
  dpv2_addr saddr_{};
  dpv2_addr daddr_{};
};

FrameResult PacketRun::Run() {
  state_.counters[DPV2_CNT_PACKETS] += 1;
  state_.counters[DPV2_CNT_BYTES] += frame_.size();

  const ParseResult& parsed = *prepared_.parsed;
  if (parsed.drop != DPV2_DROP_NONE) {
    return Drop(parsed.drop, nullptr);
  }
  if (!parsed.is_ip) {
    // ARP and other non-IP frames are not the datapath's business.
    state_.counters[DPV2_CNT_PASSED] += 1;
    return FrameResult{.verdict = Verdict::kPass};
  }
  family_ = AbiFamily(pkt_.family);
  proto_ = pkt_.proto;
  saddr_ = prepared_.saddr;
  daddr_ = prepared_.daddr;

  // Neighbor discovery uses link-local and unspecified sources a pod's
  // endpoint entry does not list; it never reaches services or policy.
  if (IsNeighborDiscovery(pkt_)) {
    state_.counters[DPV2_CNT_PASSED] += 1;
    return FrameResult{.verdict = Verdict::kPass};
  }

  // Stage 6's reply lookup first for a fast-path candidate: a forward packet
  // of a stamped connection then needs nothing else before its own entry.
  // Only lookups happen before anti-spoofing, so a packet the fast path
  // declines meets the stages in their order.
  dpv2_ct_value* reply = nullptr;
  bool reply_known = false;
  if (prepared_.fast_candidate) {
    reply = ReplyEntry();
    reply_known = true;
    if (FrameResult r; reply == nullptr && ForwardFast(&r)) {
      return r;
    }
  }

  if (entry_ == Entry::kFromPod) {
    const dpv2_endpoint_value* ep = EndpointOf(saddr_);
    if (ep == nullptr || ep->ifindex != ifindex_) {
      Flow flow = PacketFlow();
      return Drop(DPV2_DROP_SPOOFED_SOURCE, &flow);
    }
  }

  if (pkt_.is_fragment) {
    Flow flow = PacketFlow();
    return Drop(DPV2_DROP_FRAGMENT, &flow);
  }

  if (pkt_.is_icmp_error && pkt_.has_inner) {
    bool handled = false;
    FrameResult r = HandleRelatedIcmp(&handled);
    if (handled) {
      return r;
    }
  }

  // The reply direction first: a reply of a tracked flow is never a new
  // connection, whatever its destination port.
  // (Prepare keyed every IP frame that is not a fragment; nothing changed
  // conntrack since the fast path looked.)
  if (!reply_known) {
    reply = ReplyEntry();
  }
  if (reply != nullptr) {
    return HandleReply(*reply, prepared_.reply_key);
  }

  if (HasPorts(proto_)) {
    if (!prepared_.service_keyed) {
      KeyService(&prepared_);
    }
    const dpv2_lb_value* svc =
        prepared_.service_looked_up
            ? prepared_.service
            : tables_.FindService(prepared_.service_key, prepared_.service_hash);
    if (svc != nullptr && (svc->flags & DPV2_LB_F_TWO_SCOPES) && entry_ == Entry::kFromPod) {
      dpv2_lb_key key = prepared_.service_key;
      key.scope = DPV2_LB_SCOPE_INT;
      if (const dpv2_lb_value* internal = tables_.FindService(key); internal != nullptr) {
        svc = internal;
      }
    }
    if (svc != nullptr) {
      return HandleService(*svc);
    }
  }
  return HandlePlainFlow();
}

bool PacketRun::ForwardFast(FrameResult* result) {
  const uint32_t bytes = static_cast<uint32_t>(frame_.size());
  const ConntrackTimeouts& timeouts = state_.conntrack.timeouts();
  dpv2_ct_value* service_entry =
      LookedUp(prepared_.service_entry)
          ? Live(prepared_.service_entry)
          : state_.conntrack.Find(prepared_.service_ct_key, prepared_.service_ct_hash, now_);
  if (service_entry == nullptr) {
    // A plain flow: its entry is keyed like the SERVICE one without the
    // flag, and hashed like the reply key (one tuple).
    dpv2_ct_value* entry = nullptr;
    if (LookedUp(prepared_.plain_entry) && prepared_.plain_looked_up) {
      entry = Live(prepared_.plain_entry);
    } else {
      dpv2_ct_key key = prepared_.service_ct_key;
      key.flags = 0;
      entry = state_.conntrack.Find(key, prepared_.reply_hash, now_);
    }
    if (entry == nullptr || !StampCurrent(*entry)) {
      return false;
    }
    CountStampedPolicy(*entry);
    UpdateConntrackEntry(*entry, proto_, CtDirection::kOriginal, pkt_.tcp_flags, bytes, now_,
                         timeouts);
    *result = DeliverStamped(*entry, daddr_);
    return true;
  }
  if (!StampCurrent(*service_entry)) {
    return false;
  }
  // The stamp's backend (nat_addr/nat_port): the backends table has not
  // changed since, so it exists and has that address. The flow entry's key:
  // the burst's, built from the same stamp, while conntrack is unchanged.
  const dpv2_addr backend_addr = service_entry->nat_addr;
  const uint16_t backend_port = ntohs(service_entry->nat_port);
  dpv2_ct_key scratch;
  const dpv2_ct_key* flow_key = &prepared_.flow_key;
  uint64_t flow_hash = prepared_.flow_hash;
  if (!(prepared_.flow_from_stamp && LookedUp(prepared_.service_entry))) {
    scratch = MakeCtKey(saddr_, backend_addr, pkt_.sport, backend_port, proto_, family_, 0);
    flow_key = &scratch;
    flow_hash = ConntrackTable::Hash(scratch);
  }
  dpv2_ct_value* flow_entry = state_.conntrack.Find(*flow_key, flow_hash, now_);
  if (flow_entry == nullptr) {
    return false;  // the full pipeline recreates it
  }
  CountStampedPolicy(*service_entry);
  UpdateConntrackEntry(*service_entry, proto_, CtDirection::kOriginal, pkt_.tcp_flags, bytes,
                       now_, timeouts);
  UpdateConntrackEntry(*flow_entry, proto_, CtDirection::kOriginal, pkt_.tcp_flags, bytes, now_,
                       timeouts);
  state_.counters[DPV2_CNT_SERVICE_ESTABLISHED] += 1;
  RewriteDestinationAbi(frame_, pkt_, backend_addr, backend_port);
  *result = DeliverStamped(*service_entry, backend_addr);
  return true;
}

PacketRun::Flow PacketRun::PacketFlow() const {
  Flow flow;
  flow.saddr = saddr_;
  flow.daddr = daddr_;
  flow.sport = pkt_.sport;
  flow.dport = pkt_.dport;
  flow.orig_daddr = daddr_;
  flow.orig_dport = pkt_.dport;
  return flow;
}

FrameResult PacketRun::HandleRelatedIcmp(bool* handled) {
  const uint8_t inner_proto = pkt_.inner_proto;
  const dpv2_addr inner_src = pkt_.inner_src.ToAbi();
  const dpv2_addr inner_dst = pkt_.inner_dst.ToAbi();
  // The quoted packet travelled in the flow's original direction (e.g. a
  // client's packet after DNAT), or in its reply direction.
  const dpv2_ct_key original = MakeCtKey(inner_src, inner_dst, pkt_.inner_sport,
                                         pkt_.inner_dport, inner_proto, family_, 0);
  dpv2_ct_value* entry = state_.conntrack.Find(original, now_);
  if (entry == nullptr) {
    const dpv2_ct_key reverse =
        MakeCtKey(inner_dst, inner_src, IsIcmp(inner_proto) ? pkt_.inner_sport : pkt_.inner_dport,
                  pkt_.inner_sport, inner_proto, family_, 0);
    entry = state_.conntrack.Find(reverse, now_);
    if (entry == nullptr) {
      return {};
    }
  } else if (entry->flags & DPV2_CT_F_REV_NAT) {
    // An SNATed connection's error goes to the client its reverse SNAT
    // entry (keyed like the flow entry) names, as its replies do.
    const dpv2_snat_value* client = nullptr;
    if (entry->flags & DPV2_CT_F_SNAT) {
      client = state_.snat.Find(original);
      if (client == nullptr) {
        *handled = true;
        Flow flow = PacketFlow();
        return Drop(DPV2_DROP_NAT_FAILED, &flow);
      }
    }
    // The client sees the frontend: the quote names it, and so does the
    // outer source when the backend itself sent the error.
    const IpAddr frontend = IpAddr::FromAbi(entry->nat_addr, pkt_.family);
    const uint16_t frontend_port = ntohs(entry->nat_port);
    const bool from_backend = pkt_.src == pkt_.inner_dst;
    RewriteInnerDestination(frame_, pkt_, frontend, frontend_port);
    if (client != nullptr) {
      // The quote leaves as the client sent it, the error addressed to it.
      RewriteInnerSource(frame_, pkt_, IpAddr::FromAbi(client->addr, pkt_.family),
                         ntohs(client->port));
      RewriteDestinationAbi(frame_, pkt_, client->addr, 0);
      daddr_ = client->addr;
    }
    if (from_backend) {
      RewriteSource(frame_, pkt_, frontend, 0);
    }
    state_.counters[DPV2_CNT_REV_NAT] += 1;
  }
  *handled = true;
  // Related packets bypass policy, like replies.
  return Deliver(daddr_);
}

FrameResult PacketRun::HandleReply(dpv2_ct_value& entry, const dpv2_ct_key& key) {
  const bool first_reply = (entry.flags & DPV2_CT_F_REPLY_SEEN) == 0;
  Flow flow = PacketFlow();
  flow.service_id = entry.service_id;
  flow.backend_id = entry.backend_id;
  // An SNATed connection's reply goes back to the client its reverse SNAT
  // entry (keyed like the flow entry) names.
  dpv2_addr client = key.saddr;
  uint16_t client_port = ntohs(key.sport);
  const bool snat = (entry.flags & DPV2_CT_F_SNAT) != 0;
  if (snat) {
    const dpv2_snat_value* mapping = state_.snat.Find(key);
    if (mapping == nullptr) {
      return Drop(DPV2_DROP_NAT_FAILED, &flow);
    }
    client = mapping->addr;
    client_port = ntohs(mapping->port);
  }
  UpdateConntrackEntry(entry, proto_, CtDirection::kReply, pkt_.tcp_flags,
                       static_cast<uint32_t>(frame_.size()), now_, state_.conntrack.timeouts());
  uint16_t flags = DPV2_EV_F_REPLY;
  if (entry.flags & DPV2_CT_F_REV_NAT) {
    const uint16_t frontend_port = ntohs(entry.nat_port);
    RewriteSourceAbi(frame_, pkt_, entry.nat_addr, frontend_port);
    if (snat) {
      RewriteDestinationAbi(frame_, pkt_, client, client_port);
      flow.daddr = client;
      flow.dport = client_port;
    }
    state_.counters[DPV2_CNT_REV_NAT] += 1;
    flags |= DPV2_EV_F_TRANSLATED;
    flow.saddr = entry.nat_addr;
    flow.sport = frontend_port;
    flow.orig_daddr = entry.nat_addr;
    flow.orig_dport = frontend_port;
    // Keep the SERVICE entry's TCP state in step with the connection, so that
    // it closes (and can be reopened) with it. Its key: the burst's, built
    // from this entry while conntrack has not changed since (never for an
    // SNATed one, whose client is not the key's destination).
    dpv2_ct_key scratch;
    const dpv2_ct_key* service_key = &prepared_.reply_service_key;
    uint64_t service_hash = prepared_.reply_service_hash;
    if (snat || !(prepared_.reply_service_keyed && LookedUp(prepared_.reply_entry) &&
                  prepared_.reply_entry == &entry)) {
      SetCtKey(&scratch, client, entry.nat_addr, client_port, frontend_port, proto_,
               family_, DPV2_CT_KEY_SERVICE);
      service_key = &scratch;
      service_hash = ConntrackTable::Hash(scratch);
    }
    if (dpv2_ct_value* service = state_.conntrack.Find(*service_key, service_hash, now_);
        service != nullptr) {
      UpdateConntrackEntry(*service, proto_, CtDirection::kReply, pkt_.tcp_flags,
                           static_cast<uint32_t>(frame_.size()), now_,
                           state_.conntrack.timeouts());
    }
  }
  flow.src_identity = entry.dst_identity;
  flow.dst_identity = entry.src_identity;
  if (first_reply) {
    Emit(DPV2_EVENT_TRACE, flags, DPV2_DROP_NONE, &flow);
  }
  return Deliver(flow.daddr);
}

FrameResult PacketRun::HandleService(const dpv2_lb_value& svc) {
  const uint32_t bytes = static_cast<uint32_t>(frame_.size());
  const ConntrackTimeouts& timeouts = state_.conntrack.timeouts();
  Flow flow = PacketFlow();
  flow.service_id = svc.service_id;

  const dpv2_ct_key& service_key = prepared_.service_ct_key;
  dpv2_ct_value* service_entry =
      LookedUp(prepared_.service_entry)
          ? Live(prepared_.service_entry)
          : state_.conntrack.Find(service_key, prepared_.service_ct_hash, now_);
  const dpv2_backend* backend = nullptr;
  bool reopened = false;
  // An SNATed connection's source (its forward SNAT entry), whether the
  // reverse SNAT entry under that port is missing, and the flow entry under
  // it: without the forward entry, or with the reverse one naming another
  // client or the flow entry another frontend (the port went to another
  // connection), the connection is handled as new.
  dpv2_snat_value snat_source{};
  bool snat_reverse_missing = false;
  dpv2_ct_key snat_scratch;
  uint64_t snat_flow_hash = 0;
  dpv2_ct_value* snat_flow = nullptr;
  if (service_entry != nullptr) {
    reopened = ReopensEntry(*service_entry, proto_, pkt_.tcp_flags);
    if (!reopened) {
      // Established: keep the backend, even if it left the lookup table
      // (terminating); choose again only if it was deleted.
      backend = BackendOf(service_entry->backend_id);
    }
    if (backend != nullptr && (service_entry->flags & DPV2_CT_F_SNAT)) {
      const dpv2_snat_value* source = state_.snat.Find(service_key);
      const dpv2_snat_value* reverse = nullptr;
      if (source != nullptr) {
        snat_source = *source;
        reverse = state_.snat.Find(
            SnatFlowKey(snat_source, *backend, &snat_scratch, &snat_flow_hash));
        snat_reverse_missing = reverse == nullptr;
        snat_flow = state_.conntrack.Find(snat_scratch, snat_flow_hash, now_);
      }
      if (source == nullptr || (reverse != nullptr && !IsSnatClient(*reverse)) ||
          !IsOwnSnatFlow(snat_flow)) {
        backend = nullptr;
      }
    }
  }

  if (backend != nullptr) {
    const bool snat = (service_entry->flags & DPV2_CT_F_SNAT) != 0;
    flow.backend_id = service_entry->backend_id;
    flow.daddr = backend->addr;
    flow.dport = ntohs(backend->port);
    dpv2_ct_key scratch;
    uint64_t flow_hash = snat_flow_hash;
    const dpv2_ct_key& flow_key =
        snat ? snat_scratch : FlowKey(*backend, &scratch, &flow_hash);
    dpv2_ct_value* flow_entry =
        snat ? snat_flow : state_.conntrack.Find(flow_key, flow_hash, now_);
    flow.identities_pending = true;
    if (dpv2_drop_reason r = CheckPolicy(flow, /*new_connection=*/false); r != DPV2_DROP_NONE) {
      return Drop(r, &flow);
    }
    // The reverse SNAT entry was collected (with the flow entry, whose key
    // it shares): written again, before the flow entry as at creation.
    if (snat_reverse_missing && !state_.snat.Upsert(flow_key, SnatClient())) {
      return Drop(DPV2_DROP_CT_FULL, &flow);
    }
    if (flow_entry == nullptr) {
      // The flow entry expired or was collected on its own: recreate it.
      ResolveIdentities(flow);
      dpv2_ct_value value{};
      value.created_ns = now_;
      value.nat_addr = daddr_;
      value.nat_port = htons(pkt_.dport);
      value.flags = DPV2_CT_F_REV_NAT |
                    (service_entry->flags & (DPV2_CT_F_NODEPORT | DPV2_CT_F_SNAT));
      value.backend_id = flow.backend_id;
      value.service_id = svc.service_id;
      value.src_identity = flow.src_identity;
      value.dst_identity = flow.dst_identity;
      flow_entry = state_.conntrack.Create(flow_key, flow_hash, value);
      if (flow_entry == nullptr) {
        if (snat_reverse_missing) {
          state_.snat.Erase(flow_key);
        }
        return Drop(DPV2_DROP_CT_FULL, &flow);
      }
      state_.counters[DPV2_CNT_CT_CREATED] += 1;
      // Create may rehash.
      service_entry = state_.conntrack.FindAny(service_key, prepared_.service_ct_hash);
    }
    UpdateConntrackEntry(*service_entry, proto_, CtDirection::kOriginal, pkt_.tcp_flags, bytes,
                         now_, timeouts);
    UpdateConntrackEntry(*flow_entry, proto_, CtDirection::kOriginal, pkt_.tcp_flags, bytes, now_,
                         timeouts);
    state_.counters[DPV2_CNT_SERVICE_ESTABLISHED] += 1;
    RewriteDestinationAbi(frame_, pkt_, backend->addr, flow.dport);
    if (snat) {
      // Never stamped: the fast path knows no source translation.
      RewriteSourceAbi(frame_, pkt_, snat_source.addr, ntohs(snat_source.port));
    } else {
      StampService(*service_entry, *backend);
    }
    return Deliver(flow.daddr);
  }

  // A new connection (or a reopened one, or one whose backend was deleted).
  if ((svc.flags & DPV2_LB_F_SOURCE_RANGES) &&
      !tables_.SourceRangeAllows(svc.service_id, family_, saddr_)) {
    return Drop(DPV2_DROP_SOURCE_RANGE, &flow);
  }
  if (svc.backend_count == 0) {
    if (svc.flags & DPV2_LB_F_EMPTY_DROP) {
      return Drop(DPV2_DROP_LOCAL_NO_BACKEND, &flow);
    }
    return Reject(flow);
  }

  uint32_t backend_id = 0;
  dpv2_affinity_key affinity_key{};
  if (svc.flags & DPV2_LB_F_AFFINITY) {
    affinity_key.client = saddr_;
    affinity_key.service_id = svc.service_id;
    affinity_key.family = family_;
    const dpv2_affinity_value* a =
        state_.affinity.Find(affinity_key, svc.affinity_timeout_s, now_);
    if (a != nullptr && tables_.FindBackend(a->backend_id) != nullptr) {
      backend_id = a->backend_id;
      state_.counters[DPV2_CNT_AFFINITY_HIT] += 1;
    }
  }
  if (backend_id == 0 && prepared_.has_maglev_slot && &svc == prepared_.service) {
    backend_id = prepared_.maglev_table[prepared_.maglev_slot];  // found ahead (burst)
  } else if (backend_id == 0) {
    absl::Span<const uint32_t> table = tables_.FindTable(svc.table_id);
    if (table.empty()) {
      return Drop(DPV2_DROP_NO_LOOKUP_TABLE, &flow);
    }
    uint64_t slot;
    if (svc.flags & DPV2_LB_F_RANDOM) {
      slot = state_.NextRandom() % table.size();
    } else {
      slot = TupleHash(prepared_) % table.size();
    }
    backend_id = table[slot];
  }
  backend = BackendOf(backend_id);
  if (backend == nullptr) {
    return Drop(DPV2_DROP_BACKEND_MISSING, &flow);
  }
  flow.backend_id = backend_id;
  flow.daddr = backend->addr;
  flow.dport = ntohs(backend->port);
  flow.identities_pending = true;
  if (dpv2_drop_reason r = CheckPolicy(flow, /*new_connection=*/true); r != DPV2_DROP_NONE) {
    return Drop(r, &flow);
  }

  ResolveIdentities(flow);
  // SNAT to this node's address when the client is outside the cluster's
  // routing (from the network), the frontend external with Cluster policy
  // and the backend on another node (docs/datapath.md, "SNAT").
  const dpv2_addr* node_addr =
      entry_ == Entry::kFromNetwork &&
              (svc.flags & (DPV2_LB_F_NODEPORT | DPV2_LB_F_LOADBALANCER)) != 0 &&
              (svc.flags & DPV2_LB_F_LOCAL) == 0 && (backend->flags & DPV2_BACKEND_F_LOCAL) == 0
          ? tables_.NodeAddress(family_)
          : nullptr;
  // Or to the client's own address, with another source port, when a live
  // connection of the client holds this one's flow key (docs/datapath.md,
  // "Source port collisions").
  const dpv2_addr* snat_addr = node_addr;
  if (node_addr == nullptr) {
    dpv2_ct_key scratch;
    uint64_t hash;
    const dpv2_ct_key& key = FlowKey(*backend, &scratch, &hash);
    const dpv2_ct_value* held = state_.conntrack.Find(key, hash, now_);
    if (held != nullptr && HeldByOtherConnection(*held)) {
      snat_addr = &saddr_;
    }
  }
  dpv2_ct_value value{};
  value.created_ns = now_;
  value.nat_addr = daddr_;
  value.nat_port = htons(pkt_.dport);
  value.flags = static_cast<uint16_t>(((svc.flags & DPV2_LB_F_NODEPORT) ? DPV2_CT_F_NODEPORT : 0) |
                                      (snat_addr != nullptr ? DPV2_CT_F_SNAT : 0));
  value.backend_id = backend_id;
  value.service_id = svc.service_id;
  value.src_identity = flow.src_identity;
  value.dst_identity = flow.dst_identity;
  // A reopened or re-chosen connection overwrites its SERVICE entry in place,
  // so only a brand-new one can find the table full.
  bool new_service_key = false;
  dpv2_ct_value* new_service = state_.conntrack.Create(service_key, prepared_.service_ct_hash,
                                                       value, &new_service_key);
  if (new_service == nullptr) {
    return Drop(DPV2_DROP_CT_FULL, &flow);
  }
  if (snat_addr != nullptr) {
    if (dpv2_drop_reason r = ClaimSnatPort(*snat_addr, *backend, &snat_source);
        r != DPV2_DROP_NONE) {
      if (new_service_key) {
        state_.conntrack.Erase(service_key);
      }
      return Drop(r, &flow);
    }
  }
  dpv2_ct_key scratch;
  uint64_t flow_hash;
  const dpv2_ct_key& flow_key = snat_addr != nullptr
                                    ? SnatFlowKey(snat_source, *backend, &scratch, &flow_hash)
                                    : FlowKey(*backend, &scratch, &flow_hash);
  value.flags |= DPV2_CT_F_REV_NAT;
  // Forward packets find the SERVICE entry: the flow entry carries no stamp,
  // and its nat_addr/nat_port are the frontend replies are translated to.
  value.nat_addr = daddr_;
  value.nat_port = htons(pkt_.dport);
  value.revision = 0;
  value.in_ifindex = 0;
  value.cache_flags = 0;
  const size_t slots = state_.conntrack.capacity();
  dpv2_ct_value* new_flow = state_.conntrack.Create(flow_key, flow_hash, value);
  if (new_flow == nullptr) {
    // A reopened or re-chosen connection overwrote its SERVICE entry in
    // place: only a brand-new one is taken back.
    if (new_service_key) {
      state_.conntrack.Erase(service_key);
    }
    if (snat_addr != nullptr) {
      state_.snat.Erase(flow_key);
      state_.snat.Erase(service_key);
    }
    return Drop(DPV2_DROP_CT_FULL, &flow);
  }
  if (state_.conntrack.capacity() != slots) {
    // The table grew (rehashed): look the SERVICE entry up again.
    new_service = state_.conntrack.FindAny(service_key, prepared_.service_ct_hash);
  }
  // Stamped once both entries exist: a connection the table refused leaves
  // no stamp (a re-chosen one keeps its overwritten SERVICE entry). An
  // SNATed one never is: the fast path knows no source translation.
  if (snat_addr == nullptr) {
    StampService(*new_service, *backend);
  }
  UpdateConntrackEntry(*new_flow, proto_, CtDirection::kOriginal, pkt_.tcp_flags, bytes, now_,
                       timeouts);
  UpdateConntrackEntry(*new_service, proto_, CtDirection::kOriginal, pkt_.tcp_flags, bytes, now_,
                       timeouts);
  if (svc.flags & DPV2_LB_F_AFFINITY) {
    state_.affinity.Record(affinity_key, backend_id, now_);
  }
  state_.counters[DPV2_CNT_SERVICE_NEW] += 1;
  state_.counters[DPV2_CNT_CT_CREATED] += 2;
  if (reopened) {
    state_.counters[DPV2_CNT_CT_REOPENED] += 1;
  }
  Emit(DPV2_EVENT_TRACE, DPV2_EV_F_NEW | DPV2_EV_F_TRANSLATED, DPV2_DROP_NONE, &flow);
  RewriteDestinationAbi(frame_, pkt_, backend->addr, flow.dport);
  if (snat_addr != nullptr) {
    state_.counters[node_addr != nullptr ? DPV2_CNT_SNAT_NEW : DPV2_CNT_NAT_COLLISION] += 1;
    RewriteSourceAbi(frame_, pkt_, snat_source.addr, ntohs(snat_source.port));
  }
  return Deliver(flow.daddr);
}

dpv2_drop_reason PacketRun::ClaimSnatPort(const dpv2_addr& snat_addr,
                                          const dpv2_backend& backend,
                                          dpv2_snat_value* source) {
  const uint32_t first = state_.snat_port_min;
  const uint32_t range = uint32_t{state_.snat_port_max} - first + 1;
  const uint32_t start = TupleHash(prepared_) % range;
  // Ports another instance would be steered replies of are skipped without
  // counting as probes, within DPV2_SNAT_PROBES ports a steering instance.
  const uint32_t candidates = DPV2_SNAT_PROBES * std::max<uint32_t>(state_.steering_instances, 1);
  uint32_t probes = 0;
  for (uint32_t i = 0; i < candidates && probes < DPV2_SNAT_PROBES; ++i) {
    const uint16_t port = static_cast<uint16_t>(first + (start + i) % range);
    if (!SteeredAlike(port)) {
      continue;
    }
    ++probes;
    const dpv2_ct_key key =
        MakeCtKey(snat_addr, backend.addr, port, ntohs(backend.port), proto_, family_, 0);
    // Taken by a live flow entry of another connection (even without a
    // reverse entry: the client may use the port itself), or by a reverse
    // entry of another client.
    if (!IsOwnSnatFlow(state_.conntrack.Find(key, now_))) {
      continue;
    }
    const dpv2_snat_value* taken = state_.snat.Find(key);
    if (taken != nullptr && !IsSnatClient(*taken)) {
      continue;
    }
    if (!state_.snat.Upsert(key, SnatClient())) {
      return DPV2_DROP_CT_FULL;
    }
    source->addr = snat_addr;
    source->port = htons(port);
    source->created_ns = now_;
    if (!state_.snat.Upsert(prepared_.service_ct_key, *source)) {
      state_.snat.Erase(key);
      return DPV2_DROP_CT_FULL;
    }
    return DPV2_DROP_NONE;
  }
  return DPV2_DROP_NAT_NO_PORT;
}

FrameResult PacketRun::HandlePlainFlow() {
  const uint32_t bytes = static_cast<uint32_t>(frame_.size());
  Flow flow = PacketFlow();
  const dpv2_endpoint_value* dst_ep = EndpointOf(daddr_);
  // Only connections of local pods are tracked (for policy and replies);
  // other transit traffic passes untouched. ICMP errors that match no flow
  // are never tracked themselves.
  const bool tracked = (entry_ == Entry::kFromPod || dst_ep != nullptr) && !pkt_.is_icmp_error;
  flow.identities_pending = true;
  if (!tracked) {
    if (dpv2_drop_reason r = CheckPolicy(flow, /*new_connection=*/false); r != DPV2_DROP_NONE) {
      return Drop(r, &flow);
    }
    return Deliver(daddr_);
  }

  const dpv2_ct_key key = MakeCtKey(saddr_, daddr_, pkt_.sport, pkt_.dport, proto_, family_, 0);
  const uint64_t hash = prepared_.keyed ? prepared_.reply_hash : ConntrackTable::Hash(key);
  dpv2_ct_value* entry = state_.conntrack.Find(key, hash, now_);
  const bool reopened = entry != nullptr && ReopensEntry(*entry, proto_, pkt_.tcp_flags);
  const bool new_connection = entry == nullptr || reopened;
  if (dpv2_drop_reason r = CheckPolicy(flow, new_connection); r != DPV2_DROP_NONE) {
    return Drop(r, &flow);
  }
  if (entry == nullptr) {
    ResolveIdentities(flow);
    dpv2_ct_value value{};
    value.created_ns = now_;
    value.src_identity = flow.src_identity;
    value.dst_identity = flow.dst_identity;
    entry = state_.conntrack.Create(key, hash, value);
    if (entry == nullptr) {
      return Drop(DPV2_DROP_CT_FULL, &flow);
    }
    state_.counters[DPV2_CNT_CT_CREATED] += 1;
  }
  UpdateConntrackEntry(*entry, proto_, CtDirection::kOriginal, pkt_.tcp_flags, bytes, now_,
                       state_.conntrack.timeouts());
  Stamp(*entry, daddr_);
  if (reopened) {
    state_.counters[DPV2_CNT_CT_REOPENED] += 1;
  }
  if (new_connection) {
    Emit(DPV2_EVENT_TRACE, DPV2_EV_F_NEW, DPV2_DROP_NONE, &flow);
  }
  return Deliver(daddr_);
}

const dpv2_endpoint_value* PacketRun::LookUpEndpoint(const dpv2_addr& addr) {
  for (size_t i = 0; i < known_count_; ++i) {
    if (SameAddr(known_endpoints_[i].addr, addr)) {
      return known_endpoints_[i].ep;
    }
  }
  const dpv2_endpoint_value* ep = tables_.FindEndpoint(family_, addr);
  if (known_count_ < known_endpoints_.size()) {
    known_endpoints_[known_count_++] = {.addr = addr, .ep = ep};
  }
  return ep;
}

void PacketRun::ResolveIdentities(Flow& flow) {
  if (flow.identities_pending) {
    flow.src_identity = IdentityOf(flow.saddr);
    flow.dst_identity = IdentityOf(flow.daddr);
    flow.identities_pending = false;
  }
}

uint32_t PacketRun::IdentityOf(const dpv2_addr& addr) {
  if (const dpv2_endpoint_value* ep = EndpointOf(addr); ep != nullptr) {
    return ep->identity;
  }
  if (const dpv2_ipcache_value* v =
          tables_.ipcache_count() == 0 ? nullptr : tables_.LookupIpcache(family_, addr);
      v != nullptr) {
    return v->identity;
  }
  return DPV2_IDENTITY_WORLD;
}

dpv2_drop_reason PacketRun::CheckPolicy(Flow& flow, bool new_connection) {
  const uint16_t dport = IsIcmp(proto_) ? 0 : flow.dport;
  struct Direction {
    const dpv2_endpoint_value* ep;
    uint8_t dir;
    uint32_t flag;
  };
  policy_checked_ = 0;
  const dpv2_endpoint_value* src_ep = entry_ == Entry::kFromPod ? EndpointOf(flow.saddr) : nullptr;
  const dpv2_endpoint_value* dst_ep = EndpointOf(flow.daddr);
  const Direction directions[] = {
      {src_ep, DPV2_DIR_EGRESS, DPV2_EP_F_EGRESS_POLICY},
      {dst_ep, DPV2_DIR_INGRESS, DPV2_EP_F_INGRESS_POLICY},
  };
  for (const Direction& d : directions) {
    if (d.ep == nullptr || !(d.ep->flags & d.flag)) {
      continue;  // not isolated in this direction: allowed, not logged
    }
    ResolveIdentities(flow);
    const uint32_t peer = d.dir == DPV2_DIR_EGRESS ? flow.dst_identity : flow.src_identity;
    const PolicyDecision decision =
        tables_.policy().Lookup(d.ep->endpoint_id, d.dir, peer, proto_, dport);
    const bool allowed = decision.allowed();
    state_.counters[allowed ? DPV2_CNT_POLICY_ALLOWED : DPV2_CNT_POLICY_DENIED] += 1;
    if (new_connection) {
      uint16_t flags = allowed ? DPV2_EV_F_ALLOWED : 0;
      if (d.dir == DPV2_DIR_EGRESS) {
        flags |= DPV2_EV_F_EGRESS;
      }
      Emit(DPV2_EVENT_POLICY_VERDICT, flags, DPV2_DROP_NONE, &flow, decision.match_id);
    }
    if (!allowed) {
      return DPV2_DROP_POLICY_DENY;
    }
    policy_checked_ |= d.dir == DPV2_DIR_EGRESS ? DPV2_CT_C_EGRESS : DPV2_CT_C_INGRESS;
  }
  return DPV2_DROP_NONE;
}

FrameResult PacketRun::Deliver(const dpv2_addr& daddr) {
  if (const dpv2_endpoint_value* ep = EndpointOf(daddr); ep != nullptr) {
    SetEthernet(frame_, ep->mac, ep->host_mac);
    state_.counters[DPV2_CNT_REDIRECTED] += 1;
    return FrameResult{.verdict = Verdict::kRedirect, .out_ifindex = ep->ifindex};
  }
  state_.counters[DPV2_CNT_PASSED] += 1;
  return FrameResult{.verdict = Verdict::kPass};
}

FrameResult PacketRun::Drop(dpv2_drop_reason reason, Flow* flow) {
  state_.counters[DPV2_CNT_DROPPED] += 1;
  state_.drops[reason] += 1;
  Emit(DPV2_EVENT_DROP, 0, reason, flow);
  return FrameResult{.verdict = Verdict::kDrop, .drop_reason = reason};
}

FrameResult PacketRun::Reject(Flow& flow) {
  FrameResult result{.verdict = Verdict::kTx,
                     .drop_reason = DPV2_DROP_SERVICE_NO_BACKEND,
                     .out_ifindex = ifindex_};
  const absl::Span<uint8_t> buffer(reply_buffer_, kMaxRejectReplyLen);
  const size_t len = proto_ == DPV2_PROTO_TCP ? WriteTcpReset(frame_, pkt_, buffer)
                                              : WritePortUnreachable(frame_, pkt_, buffer);
  result.reply = absl::MakeConstSpan(reply_buffer_, len);
  state_.counters[DPV2_CNT_TX] += 1;
  state_.counters[DPV2_CNT_REJECTED] += 1;
  state_.drops[DPV2_DROP_SERVICE_NO_BACKEND] += 1;
  Emit(DPV2_EVENT_DROP, DPV2_EV_F_REJECTED, DPV2_DROP_SERVICE_NO_BACKEND, &flow);
  return result;
}

void PacketRun::Emit(uint8_t type, uint16_t flags, dpv2_drop_reason reason, Flow* flow,
                     uint32_t policy_match_id) {
  if (state_.events == nullptr && collected_ == nullptr) {
    return;
  }
  if (flow != nullptr) {
    ResolveIdentities(*flow);
  }
  dpv2_event ev;
  std::memset(&ev, 0, sizeof(ev));
  ev.timestamp_ns = now_;
  ev.type = type;
  ev.obs_point = entry_ == Entry::kFromPod ? DPV2_OBS_FROM_POD : DPV2_OBS_FROM_NETWORK;
  ev.drop_reason = static_cast<uint16_t>(reason);
  ev.flags = flags;
  ev.ifindex = ifindex_;
  ev.pkt_len = static_cast<uint32_t>(frame_.size());
  ev.policy_match_id = policy_match_id;
  if (flow != nullptr) {
    ev.family = family_;
    ev.proto = proto_;
    ev.src_identity = flow->src_identity;
    ev.dst_identity = flow->dst_identity;
    ev.service_id = flow->service_id;
    ev.backend_id = flow->backend_id;
    ev.saddr = flow->saddr;
    ev.daddr = flow->daddr;
    ev.sport = htons(flow->sport);
    ev.dport = htons(flow->dport);
    ev.orig_daddr = flow->orig_daddr;
    ev.orig_dport = htons(flow->orig_dport);
    ev.tcp_flags = pkt_.tcp_flags;
  }
  if (collected_ != nullptr) {
    collected_->push_back(ev);
  }
  if (state_.events != nullptr && !state_.events->Emit(ev)) {
    state_.counters[DPV2_CNT_EVENTS_LOST] += 1;
  }
}

}  // namespace

uint64_t DatapathState::NextRandom() {
  random_state ^= random_state >> 12;
  random_state ^= random_state << 25;
  random_state ^= random_state >> 27;
  return random_state * 0x2545F4914F6CDD1DULL;
}

GcStats DatapathState::CollectGarbage(uint64_t now_ns) {
  GcStats stats;
  for (const GcStats& s : {conntrack.CollectGarbage(now_ns), affinity.CollectGarbage(now_ns),
                           snat.CollectGarbage(conntrack, now_ns)}) {
    stats.scanned += s.scanned;
    stats.deleted += s.deleted;
  }
  return stats;
}

void ProcessBurst(const DatapathTables& tables, DatapathState& state,
                  absl::Span<const BurstFrame> frames, uint64_t now_ns, FrameResult* results) {
  const size_t n = std::min(frames.size(), kMaxBurst);
  // Pass 1: parse and key every frame, prefetch the slots of the reply and
  // SERVICE conntrack entries and of the frontend.
  for (size_t i = 0; i < n; ++i) {
    PreparedFrame& p = state.prepared[i];
    Prepare(frames[i].frame, frames[i].parsed, &p);
    if (p.keyed) {
      state.conntrack.Prefetch(p.reply_hash);
      state.conntrack.Prefetch(p.service_ct_hash);
      if (p.service_keyed) {
        tables.PrefetchService(p.service_hash);
      }
    }
  }
  // Pass 2 (bursts only: it pays when the prefetches of pass 1 had time to
  // land): the lookups every keyed frame makes, kept for pass 3 while the
  // conntrack table does not change; an established service connection
  // will read its backend.
  bool wants_slots = false;
  if (n > 1) {
    const uint64_t generation = state.conntrack.generation();
    const uint32_t revision = tables.revision();
    for (size_t i = 0; i < n; ++i) {
      PreparedFrame& p = state.prepared[i];
      if (!p.keyed) {
        continue;
      }
      p.looked_up = true;
      p.ct_generation = generation;
      p.reply_entry = state.conntrack.Find(p.reply_key, p.reply_hash, now_ns);
      if (p.reply_entry != nullptr && (p.reply_entry->flags & DPV2_CT_F_REV_NAT)) {
        // A reply the run reverse-NATs: it also updates the connection's
        // SERVICE entry (HandleReply), a third conntrack line.
        SetCtKey(&p.reply_service_key, p.reply_key.saddr, p.reply_entry->nat_addr,
                 ntohs(p.reply_key.sport), ntohs(p.reply_entry->nat_port), p.reply_key.proto,
                 p.reply_key.family, DPV2_CT_KEY_SERVICE);
        p.reply_service_hash = ConntrackTable::Hash(p.reply_service_key);
        state.conntrack.Prefetch(p.reply_service_hash);
        p.reply_service_keyed = true;
      }
      p.service_entry = state.conntrack.Find(p.service_ct_key, p.service_ct_hash, now_ns);
      // The fast path's entry: with a current stamp the run needs no
      // frontend (its reply lookup missed: not a reply).
      bool stamped = false;
      if (p.fast_candidate && p.reply_entry == nullptr) {
        if (p.service_entry != nullptr) {
          stamped = StampCurrent(*p.service_entry, revision, frames[i].entry, frames[i].ifindex);
        } else {
          dpv2_ct_key plain = p.service_ct_key;
          plain.flags = 0;
          p.plain_entry = state.conntrack.Find(plain, p.reply_hash, now_ns);
          p.plain_looked_up = true;
          stamped = p.plain_entry != nullptr &&
                    StampCurrent(*p.plain_entry, revision, frames[i].entry, frames[i].ifindex);
        }
      }
      p.service = nullptr;
      p.stamped = stamped;
      if (!stamped && HasPorts(p.parsed->pkt.proto)) {
        if (!p.service_keyed) {
          KeyService(&p);
        }
        p.service = tables.FindService(p.service_key, p.service_hash);
        p.service_looked_up = true;
      }
      if (p.service_entry != nullptr) {
        if (!stamped) {
          tables.PrefetchBackend(p.service_entry->backend_id);
        }
      } else if (p.service != nullptr && !(p.service->flags & DPV2_LB_F_RANDOM)) {
        // A new connection will read its Maglev table, a slot of it and the
        // slot's backend: a chain of misses on large tables, each started
        // for the whole burst before the next is read.
        tables.PrefetchTable(p.service->table_id);
        p.wants_slot = true;
        wants_slots = true;
      }
    }
  }
  if (wants_slots) {
    for (size_t i = 0; i < n; ++i) {
      PreparedFrame& p = state.prepared[i];
      if (p.wants_slot) {
        p.maglev_table = tables.FindTable(p.service->table_id);
        if (!p.maglev_table.empty()) {
          p.maglev_slot = static_cast<uint32_t>(TupleHash(p) % p.maglev_table.size());
          p.has_maglev_slot = true;
          __builtin_prefetch(&p.maglev_table[p.maglev_slot]);
        }
      }
    }
    for (size_t i = 0; i < n; ++i) {
      const PreparedFrame& p = state.prepared[i];
      if (p.has_maglev_slot) {
        tables.PrefetchBackend(p.maglev_table[p.maglev_slot]);
      }
    }
  }
  // The flow entry of every service connection whose backend is known
  // ahead (established: the SERVICE entry's; new: the Maglev slot's): its
  // key and hash built once, and its conntrack slot prefetched (an
  // established packet updates that entry, a new connection creates it).
  if (n > 1) {
    for (size_t i = 0; i < n; ++i) {
      PreparedFrame& p = state.prepared[i];
      const ParsedPacket& pkt = p.parsed->pkt;
      p.flow_from_stamp = false;
      if (p.looked_up && p.stamped && p.service_entry != nullptr) {
        // The fast path's flow entry: its backend is the stamp's.
        SetCtKey(&p.flow_key, p.saddr, p.service_entry->nat_addr, pkt.sport,
                 ntohs(p.service_entry->nat_port), pkt.proto, AbiFamily(pkt.family), 0);
        p.flow_hash = ConntrackTable::Hash(p.flow_key);
        p.flow_from_stamp = true;
        state.conntrack.Prefetch(p.flow_hash);
        continue;
      }
      uint32_t backend_id;
      if (p.looked_up && p.service_entry != nullptr) {
        backend_id = p.service_entry->backend_id;
      } else if (p.has_maglev_slot) {
        backend_id = p.maglev_table[p.maglev_slot];
      } else {
        continue;
      }
      const dpv2_backend* b = tables.FindBackend(backend_id);
      if (b == nullptr) {
        continue;
      }
      p.backend = b;
      p.backend_id = backend_id;
      SetCtKey(&p.flow_key, p.saddr, b->addr, pkt.sport, ntohs(b->port), pkt.proto,
               AbiFamily(pkt.family), 0);
      p.flow_hash = ConntrackTable::Hash(p.flow_key);
      state.conntrack.Prefetch(p.flow_hash);
    }
  }
  // Pass 3: the pipeline, frame by frame, in order.
  for (size_t i = 0; i < n; ++i) {
    results[i] = PacketRun(tables, state, frames[i], state.prepared[i], state.replies[i].data(),
                           now_ns, nullptr)
                     .Run();
  }
}

FrameResult ProcessFrame(const DatapathTables& tables, DatapathState& state, Entry entry,
                         uint32_t ifindex, absl::Span<uint8_t> frame, uint64_t now_ns,
                         std::vector<dpv2_event>* collected) {
  const BurstFrame in{.frame = frame, .entry = entry, .ifindex = ifindex};
  PreparedFrame& p = state.prepared[0];
  Prepare(frame, nullptr, &p);
  return PacketRun(tables, state, in, p, state.replies[0].data(), now_ns, collected).Run();
}

PacketOutcome Process(const DatapathTables& tables, DatapathState& state,
                      const PacketInput& input, uint64_t now_ns) {
  std::vector<uint8_t> frame = input.frame;
  std::vector<dpv2_event> events;
  FrameResult r = ProcessFrame(tables, state, input.entry, input.ifindex,
                               absl::MakeSpan(frame), now_ns, &events);
  PacketOutcome out;
  out.verdict = r.verdict;
  out.drop_reason = r.drop_reason;
  switch (r.verdict) {
    case Verdict::kPass:
    case Verdict::kRedirect:
      out.outputs.push_back(
          {.verdict = r.verdict, .out_ifindex = r.out_ifindex, .frame = std::move(frame)});
      break;
    case Verdict::kTx:
      out.outputs.push_back({.verdict = Verdict::kTx,
                             .out_ifindex = r.out_ifindex,
                             .frame = std::vector<uint8_t>(r.reply.begin(), r.reply.end())});
      break;
    case Verdict::kDrop:
      break;
  }
  out.events.reserve(events.size());
  for (const dpv2_event& ev : events) {
    out.events.push_back(FlowEvent::FromAbi(ev));
  }
  return out;
}

}  // namespace dpv2
