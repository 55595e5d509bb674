// Kubernetes' name and label syntax rules (apimachinery's validation
// package), returning "" when valid or the reason, worded like the API
// server's messages so that users recognise them.
//
//   std::string why = Dns1123LabelError("Web");
//   if (!why.empty()) field.Fail(why);
#ifndef DPV2_AGENT_K8S_NAMES_H_
#define DPV2_AGENT_K8S_NAMES_H_

#include <string>

#include "absl/strings/string_view.h"

namespace dpv2::agent::k8s {

// Lowercase alphanumerics and '-', alphanumeric at both ends, <= 63.
std::string Dns1123LabelError(absl::string_view value);
// Dot-separated DNS-1123 labels, <= 253 (most object names).
std::string Dns1123SubdomainError(absl::string_view value);
// A DNS-1123 label that starts with a letter (Service names).
std::string Dns1035LabelError(absl::string_view value);
// A named port: <= 15 chars, lowercase alphanumerics and '-', at least one
// letter, no leading, trailing or doubled '-'.
std::string IanaSvcNameError(absl::string_view value);
// Label and annotation keys: [prefix/]name.
std::string QualifiedNameError(absl::string_view value);
// Label values: empty, or <= 63 alphanumerics with '-', '_', '.' inside.
std::string LabelValueError(absl::string_view value);

}  // namespace dpv2::agent::k8s

#endif  // DPV2_AGENT_K8S_NAMES_H_
