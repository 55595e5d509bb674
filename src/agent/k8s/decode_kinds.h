// One decoder per Kubernetes kind. Each takes the object's root and its
// already-decoded metadata, records field errors, and returns the decoded
// object (meaningful only when no error was recorded).
//
//   FieldErrors errors;
//   ServiceObject svc = DecodeService(JsonField(&obj, "", &errors), meta);
//   if (errors.empty()) { objects.services[key] = svc; }
#ifndef DPV2_AGENT_K8S_DECODE_KINDS_H_
#define DPV2_AGENT_K8S_DECODE_KINDS_H_

#include <vector>

#include "agent/k8s/json_field.h"
#include "agent/k8s/objects.h"

namespace dpv2::agent::k8s {

// `warnings` receives facts that make a valid object partly unusable
// offline (a Service whose clusterIP the API server would allocate).
ServiceObject DecodeService(const JsonField& root, const ObjectMeta& meta,
                            std::vector<std::string>* warnings);
EndpointSliceObject DecodeEndpointSlice(const JsonField& root, const ObjectMeta& meta);
PodObject DecodePod(const JsonField& root, const ObjectMeta& meta);
NamespaceInfo DecodeNamespace(const JsonField& root, const ObjectMeta& meta);
NodeObject DecodeNode(const JsonField& root, const ObjectMeta& meta);
NetworkPolicy DecodeNetworkPolicy(const JsonField& root, const ObjectMeta& meta,
                                  std::vector<std::string>* warnings);
AdminNetworkPolicy DecodeAdminNetworkPolicy(const JsonField& root, const ObjectMeta& meta);
BaselineAdminNetworkPolicy DecodeBaselineAdminNetworkPolicy(const JsonField& root,
                                                            const ObjectMeta& meta);
NetworkLoggingObject DecodeNetworkLogging(const JsonField& root, const ObjectMeta& meta);

}  // namespace dpv2::agent::k8s

#endif  // DPV2_AGENT_K8S_DECODE_KINDS_H_
