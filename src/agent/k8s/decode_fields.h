// Field decoders shared by the per-kind decoders: metadata, selectors,
// protocols, ports, addresses. Each reads one field, applies the API server's
// default, validates, and records an error with the field path on failure.
//
//   ObjectMeta meta = DecodeObjectMeta(root["metadata"], /*namespaced=*/true);
//   L4Proto proto = DecodeProtocol(port["protocol"]);  // TCP when absent
//   std::optional<IpAddr> ip = DecodeIp(root["spec"]["clusterIP"]);
#ifndef DPV2_AGENT_K8S_DECODE_FIELDS_H_
#define DPV2_AGENT_K8S_DECODE_FIELDS_H_

#include <optional>
#include <string>

#include "agent/k8s/json_field.h"
#include "agent/k8s/objects.h"
#include "dpv2/net.h"
#include "dpv2/policy.h"

namespace dpv2::agent::k8s {

// name (required, a DNS subdomain), namespace ("default" when absent for
// namespaced kinds; ignored for cluster-scoped ones), labels, annotations.
ObjectMeta DecodeObjectMeta(const JsonField& metadata, bool namespaced);

// meta/v1 LabelSelector; absent and {} are both "everything".
LabelSelector DecodeLabelSelector(const JsonField& field);

// TCP (default), UDP or SCTP.
L4Proto DecodeProtocol(const JsonField& field);

// An integer in [lo, hi]; nullopt when absent or invalid (error recorded).
std::optional<int64_t> DecodeIntInRange(const JsonField& field, int64_t lo, int64_t hi);

// A port number 1-65535.
std::optional<uint16_t> DecodePort(const JsonField& field);

// An IP address (v4 or v6).
std::optional<IpAddr> DecodeIp(const JsonField& field);

// Records `Unsupported value: "x": supported values: "A", "B"` unless the
// string is one of `allowed`; returns it when valid.
std::optional<std::string> DecodeEnum(const JsonField& field,
                                      std::initializer_list<const char*> allowed);

// A named port (IANA service name syntax) or a number 1-65535.
std::optional<IntOrString> DecodeIntOrStringPort(const JsonField& field);

}  // namespace dpv2::agent::k8s

#endif  // DPV2_AGENT_K8S_DECODE_FIELDS_H_
