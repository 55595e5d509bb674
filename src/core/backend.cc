// Names and decoding shared by every backend: verdicts, counters, drop
// reasons and dpv2_event records.
#include "dpv2/backend.h"

#include <arpa/inet.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dpv2 {
namespace {

constexpr absl::string_view kCounterNames[] = {
#define DPV2_X_NAME(name, value, label) label,
    DPV2_COUNTERS(DPV2_X_NAME)
#undef DPV2_X_NAME
};
static_assert(std::size(kCounterNames) == DPV2_CNT_MAX);

constexpr absl::string_view kDropNames[] = {
#define DPV2_X_NAME(name, value, label) label,
    DPV2_DROP_REASONS(DPV2_X_NAME)
#undef DPV2_X_NAME
};
static_assert(std::size(kDropNames) == DPV2_DROP_MAX);

absl::string_view EventTypeName(uint8_t type) {
  switch (type) {
    case DPV2_EVENT_DROP:
      return "DROPPED";
    case DPV2_EVENT_TRACE:
      return "FORWARDED";
    case DPV2_EVENT_POLICY_VERDICT:
      return "POLICY";
    default:
      return "UNKNOWN";
  }
}

}  // namespace

absl::string_view VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kPass:
      return "PASS";
    case Verdict::kRedirect:
      return "REDIRECT";
    case Verdict::kTx:
      return "TX";
    case Verdict::kDrop:
      return "DROP";
  }
  return "UNKNOWN";
}

absl::string_view CounterName(dpv2_counter c) {
  return c < DPV2_CNT_MAX ? kCounterNames[c] : "unknown";
}

absl::string_view DropReasonName(dpv2_drop_reason r) {
  return r < DPV2_DROP_MAX ? kDropNames[r] : "unknown";
}

absl::Status CheckPacketInput(const PacketInput& input, absl::string_view backend) {
  if (input.frame.size() < kMinFrameLen || input.frame.size() > kMaxFrameLen) {
    return absl::InvalidArgumentError(absl::StrCat(backend, " RunPacket: frame of ",
                                                   input.frame.size(), " bytes is outside ",
                                                   kMinFrameLen, "-", kMaxFrameLen));
  }
  return absl::OkStatus();
}

FlowEvent FlowEvent::FromAbi(const dpv2_event& ev) {
  const Family family = ev.family == DPV2_FAMILY_V6 ? Family::kV6 : Family::kV4;
  FlowEvent out;
  out.timestamp_ns = ev.timestamp_ns;
  out.type = ev.type;
  out.obs_point = ev.obs_point;
  out.drop_reason = ev.drop_reason < DPV2_DROP_MAX
                        ? static_cast<dpv2_drop_reason>(ev.drop_reason)
                        : DPV2_DROP_INTERNAL;
  out.flags = ev.flags;
  out.tuple.src = IpAddr::FromAbi(ev.saddr, family);
  out.tuple.dst = IpAddr::FromAbi(ev.daddr, family);
  out.tuple.sport = ntohs(ev.sport);
  out.tuple.dport = ntohs(ev.dport);
  out.tuple.proto = static_cast<L4Proto>(ev.proto);
  out.orig_dst = IpAddr::FromAbi(ev.orig_daddr, family);
  out.orig_dport = ntohs(ev.orig_dport);
  out.ifindex = ev.ifindex;
  out.pkt_len = ev.pkt_len;
  out.src_identity = ev.src_identity;
  out.dst_identity = ev.dst_identity;
  out.service_id = ev.service_id;
  out.backend_id = ev.backend_id;
  out.policy_match_id = ev.policy_match_id;
  out.tcp_flags = ev.tcp_flags;
  return out;
}

std::string FlowEvent::ToString() const {
  std::string line = absl::StrCat(EventTypeName(type), " ", tuple.ToString());
  if (flags & DPV2_EV_F_TRANSLATED) {
    absl::StrAppend(&line, " (frontend ", orig_dst.ToString(), ":", orig_dport, ")");
  }
  if (type == DPV2_EVENT_POLICY_VERDICT) {
    absl::StrAppend(&line, (flags & DPV2_EV_F_EGRESS) ? " egress " : " ingress ",
                    (flags & DPV2_EV_F_ALLOWED) ? "allowed" : "denied");
  }
  if (type == DPV2_EVENT_DROP) absl::StrAppend(&line, " reason=", DropReasonName(drop_reason));
  if (flags & DPV2_EV_F_REJECTED) absl::StrAppend(&line, " rejected");
  if (flags & DPV2_EV_F_REPLY) absl::StrAppend(&line, " reply");
  if (flags & DPV2_EV_F_NEW) absl::StrAppend(&line, " new");
  absl::StrAppendFormat(&line, " identity %u->%u", src_identity, dst_identity);
  return line;
}

}  // namespace dpv2
