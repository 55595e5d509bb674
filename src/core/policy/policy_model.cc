// Label selector evaluation and validation of the policy objects in
// <dpv2/policy.h>. Validation mirrors the API server's, so that a manifest the
// cluster would reject is rejected here too, with the field named.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "dpv2/policy.h"

namespace dpv2 {
namespace {

absl::Status Invalid(absl::string_view object, absl::string_view field, absl::string_view what) {
  if (field.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(object, ": ", what));
  }
  return absl::InvalidArgumentError(absl::StrCat(object, ": ", field, " ", what));
}

bool ValidPort(int64_t p) { return p >= 1 && p <= 65535; }

bool PolicyProtocol(L4Proto p) {
  return p == L4Proto::kTCP || p == L4Proto::kUDP || p == L4Proto::kSCTP;
}

absl::Status ValidateCidr(absl::string_view object, absl::string_view field,
                          const std::string& text, Prefix* out) {
  bool host_bits = false;
  absl::StatusOr<Prefix> p = Prefix::ParseLenient(text, &host_bits);
  if (!p.ok()) {
    return Invalid(object, field, absl::StrCat("\"", text, "\" is not a CIDR: ", p.status().message()));
  }
  if (text.find('/') == std::string::npos) {
    return Invalid(object, field, absl::StrCat("\"", text, "\" has no prefix length"));
  }
  if (out != nullptr) {
    *out = *p;
  }
  return absl::OkStatus();
}

absl::Status ValidatePeer(absl::string_view object, const std::string& field,
                          const NetworkPolicyPeer& peer) {
  const bool has_selector = peer.pod_selector.has_value() || peer.namespace_selector.has_value();
  if (!has_selector && !peer.ip_block.has_value()) {
    return Invalid(object, field, "sets none of podSelector, namespaceSelector, ipBlock");
  }
  if (has_selector && peer.ip_block.has_value()) {
    return Invalid(object, field, "sets ipBlock together with a selector");
  }
  if (peer.pod_selector) {
    if (absl::Status s = peer.pod_selector->Validate(absl::StrCat(field, ".podSelector"));
        !s.ok()) {
      return Invalid(object, "", s.message());
    }
  }
  if (peer.namespace_selector) {
    if (absl::Status s =
            peer.namespace_selector->Validate(absl::StrCat(field, ".namespaceSelector"));
        !s.ok()) {
      return Invalid(object, "", s.message());
    }
  }
  if (peer.ip_block) {
    Prefix cidr;
    if (absl::Status s =
            ValidateCidr(object, absl::StrCat(field, ".ipBlock.cidr"), peer.ip_block->cidr, &cidr);
        !s.ok()) {
      return s;
    }
    for (size_t i = 0; i < peer.ip_block->except.size(); ++i) {
      const std::string f = absl::StrCat(field, ".ipBlock.except[", i, "]");
      Prefix ex;
      if (absl::Status s = ValidateCidr(object, f, peer.ip_block->except[i], &ex); !s.ok()) {
        return s;
      }
      if (ex.family() != cidr.family() || !cidr.Contains(ex) || ex == cidr) {
        return Invalid(object, f,
                       absl::StrCat("\"", peer.ip_block->except[i], "\" is not strictly inside cidr \"",
                                    peer.ip_block->cidr, "\""));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidatePorts(absl::string_view object, const std::string& field,
                           const std::vector<NetworkPolicyPort>& ports) {
  for (size_t i = 0; i < ports.size(); ++i) {
    const NetworkPolicyPort& p = ports[i];
    const std::string f = absl::StrCat(field, ".ports[", i, "]");
    if (p.protocol && !PolicyProtocol(*p.protocol)) {
      return Invalid(object, absl::StrCat(f, ".protocol"),
                     absl::StrCat(L4ProtoName(*p.protocol), " is not TCP, UDP or SCTP"));
    }
    if (p.port) {
      if (const int32_t* n = std::get_if<int32_t>(&*p.port)) {
        if (!ValidPort(*n)) {
          return Invalid(object, absl::StrCat(f, ".port"), absl::StrCat(*n, " out of range 1-65535"));
        }
      } else {
        const std::string& name = std::get<std::string>(*p.port);
        if (name.empty() || name.size() > 15) {
          return Invalid(object, absl::StrCat(f, ".port"),
                         absl::StrCat("name \"", name, "\" must be 1-15 characters"));
        }
      }
    }
    if (p.end_port) {
      if (!p.port || !std::holds_alternative<int32_t>(*p.port)) {
        return Invalid(object, absl::StrCat(f, ".endPort"), "needs a numeric port");
      }
      const int32_t port = std::get<int32_t>(*p.port);
      if (!ValidPort(*p.end_port)) {
        return Invalid(object, absl::StrCat(f, ".endPort"),
                       absl::StrCat(*p.end_port, " out of range 1-65535"));
      }
      if (*p.end_port < port) {
        return Invalid(object, absl::StrCat(f, ".endPort"),
                       absl::StrCat(*p.end_port, " < port ", port));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateAnpPorts(absl::string_view object, const std::string& field,
                              const std::optional<std::vector<AdminNetworkPolicyPort>>& ports) {
  if (!ports) {
    return absl::OkStatus();
  }
  for (size_t i = 0; i < ports->size(); ++i) {
    const AdminNetworkPolicyPort& p = (*ports)[i];
    const std::string f = absl::StrCat(field, ".ports[", i, "]");
    const int set = p.port_number.has_value() + p.named_port.has_value() + p.port_range.has_value();
    if (set != 1) {
      return Invalid(object, f, "must set exactly one of portNumber, namedPort, portRange");
    }
    if (p.port_number) {
      if (!PolicyProtocol(p.port_number->protocol)) {
        return Invalid(object, absl::StrCat(f, ".portNumber.protocol"), "is not TCP, UDP or SCTP");
      }
      if (!ValidPort(p.port_number->port)) {
        return Invalid(object, absl::StrCat(f, ".portNumber.port"),
                       absl::StrCat(p.port_number->port, " out of range 1-65535"));
      }
    }
    if (p.named_port && p.named_port->empty()) {
      return Invalid(object, absl::StrCat(f, ".namedPort"), "is empty");
    }
    if (p.port_range) {
      if (!PolicyProtocol(p.port_range->protocol)) {
        return Invalid(object, absl::StrCat(f, ".portRange.protocol"), "is not TCP, UDP or SCTP");
      }
      if (!ValidPort(p.port_range->start) || !ValidPort(p.port_range->end) ||
          p.port_range->end < p.port_range->start) {
        return Invalid(object, absl::StrCat(f, ".portRange"),
                       absl::StrCat(p.port_range->start, "-", p.port_range->end,
                                    " is not a range within 1-65535"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateNamespacedPod(absl::string_view object, const std::string& field,
                                   const NamespacedPod& pods) {
  if (absl::Status s = pods.namespace_selector.Validate(absl::StrCat(field, ".namespaceSelector"));
      !s.ok()) {
    return Invalid(object, "", s.message());
  }
  if (absl::Status s = pods.pod_selector.Validate(absl::StrCat(field, ".podSelector")); !s.ok()) {
    return Invalid(object, "", s.message());
  }
  return absl::OkStatus();
}

absl::Status ValidateSubject(absl::string_view object, const AdminNetworkPolicySubject& subject) {
  if (subject.namespaces.has_value() == subject.pods.has_value()) {
    return Invalid(object, "spec.subject", "must set exactly one of namespaces, pods");
  }
  if (subject.namespaces) {
    if (absl::Status s = subject.namespaces->Validate("spec.subject.namespaces"); !s.ok()) {
      return Invalid(object, "", s.message());
    }
  } else {
    return ValidateNamespacedPod(object, "spec.subject.pods", *subject.pods);
  }
  return absl::OkStatus();
}

template <typename Rule>
absl::Status ValidateRuleCommon(absl::string_view object, const std::string& f, const Rule& rule,
                                bool baseline) {
  if (baseline && rule.action == AdminNetworkPolicyRuleAction::kPass) {
    return Invalid(object, absl::StrCat(f, ".action"), "Pass is not allowed in a baseline policy");
  }
  if (rule.name.size() > 100) {
    return Invalid(object, absl::StrCat(f, ".name"), "is longer than 100 characters");
  }
  return ValidateAnpPorts(object, f, rule.ports);
}

absl::Status ValidateAdminRules(absl::string_view object,
                                const std::vector<AdminNetworkPolicyIngressRule>& ingress,
                                const std::vector<AdminNetworkPolicyEgressRule>& egress,
                                bool baseline) {
  if (ingress.size() > 100 || egress.size() > 100) {
    return Invalid(object, ingress.size() > 100 ? "spec.ingress" : "spec.egress",
                   "has more than 100 rules");
  }
  for (size_t i = 0; i < ingress.size(); ++i) {
    const std::string f = absl::StrCat("spec.ingress[", i, "]");
    if (absl::Status s = ValidateRuleCommon(object, f, ingress[i], baseline); !s.ok()) {
      return s;
    }
    if (ingress[i].from.empty()) {
      return Invalid(object, absl::StrCat(f, ".from"), "is empty");
    }
    for (size_t j = 0; j < ingress[i].from.size(); ++j) {
      const AdminNetworkPolicyIngressPeer& peer = ingress[i].from[j];
      const std::string pf = absl::StrCat(f, ".from[", j, "]");
      if (peer.namespaces.has_value() == peer.pods.has_value()) {
        return Invalid(object, pf, "must set exactly one of namespaces, pods");
      }
      if (peer.namespaces) {
        if (absl::Status s = peer.namespaces->Validate(absl::StrCat(pf, ".namespaces")); !s.ok()) {
          return Invalid(object, "", s.message());
        }
      } else if (absl::Status s = ValidateNamespacedPod(object, absl::StrCat(pf, ".pods"), *peer.pods);
                 !s.ok()) {
        return s;
      }
    }
  }
  for (size_t i = 0; i < egress.size(); ++i) {
    const std::string f = absl::StrCat("spec.egress[", i, "]");
    if (absl::Status s = ValidateRuleCommon(object, f, egress[i], baseline); !s.ok()) {
      return s;
    }
    if (egress[i].to.empty()) {
      return Invalid(object, absl::StrCat(f, ".to"), "is empty");
    }
    for (size_t j = 0; j < egress[i].to.size(); ++j) {
      const AdminNetworkPolicyEgressPeer& peer = egress[i].to[j];
      const std::string pf = absl::StrCat(f, ".to[", j, "]");
      const int set = peer.namespaces.has_value() + peer.pods.has_value() +
                      peer.nodes.has_value() + peer.networks.has_value();
      if (set != 1) {
        return Invalid(object, pf, "must set exactly one of namespaces, pods, nodes, networks");
      }
      if (peer.namespaces) {
        if (absl::Status s = peer.namespaces->Validate(absl::StrCat(pf, ".namespaces")); !s.ok()) {
          return Invalid(object, "", s.message());
        }
      }
      if (peer.pods) {
        if (absl::Status s = ValidateNamespacedPod(object, absl::StrCat(pf, ".pods"), *peer.pods);
            !s.ok()) {
          return s;
        }
      }
      if (peer.nodes) {
        if (absl::Status s = peer.nodes->Validate(absl::StrCat(pf, ".nodes")); !s.ok()) {
          return Invalid(object, "", s.message());
        }
      }
      if (peer.networks) {
        if (peer.networks->empty()) {
          return Invalid(object, absl::StrCat(pf, ".networks"), "is empty");
        }
        for (size_t k = 0; k < peer.networks->size(); ++k) {
          if (absl::Status s = ValidateCidr(object, absl::StrCat(pf, ".networks[", k, "]"),
                                            (*peer.networks)[k], nullptr);
              !s.ok()) {
            return s;
          }
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LabelSelectorOperator> ParseLabelSelectorOperator(absl::string_view text) {
  if (text == "In") return LabelSelectorOperator::kIn;
  if (text == "NotIn") return LabelSelectorOperator::kNotIn;
  if (text == "Exists") return LabelSelectorOperator::kExists;
  if (text == "DoesNotExist") return LabelSelectorOperator::kDoesNotExist;
  return absl::InvalidArgumentError(
      absl::StrCat("label selector operator \"", text, "\" is not In, NotIn, Exists or DoesNotExist"));
}

absl::string_view LabelSelectorOperatorName(LabelSelectorOperator op) {
  switch (op) {
    case LabelSelectorOperator::kIn:
      return "In";
    case LabelSelectorOperator::kNotIn:
      return "NotIn";
    case LabelSelectorOperator::kExists:
      return "Exists";
    case LabelSelectorOperator::kDoesNotExist:
      return "DoesNotExist";
  }
  return "?";
}

bool LabelSelector::Matches(const Labels& labels) const {
  for (const auto& [k, v] : match_labels) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) {
      return false;
    }
  }
  for (const LabelSelectorRequirement& r : match_expressions) {
    auto it = labels.find(r.key);
    const bool has = it != labels.end();
    switch (r.op) {
      case LabelSelectorOperator::kIn:
        if (!has || std::find(r.values.begin(), r.values.end(), it->second) == r.values.end()) {
          return false;
        }
        break;
      case LabelSelectorOperator::kNotIn:
        if (has && std::find(r.values.begin(), r.values.end(), it->second) != r.values.end()) {
          return false;
        }
        break;
      case LabelSelectorOperator::kExists:
        if (!has) {
          return false;
        }
        break;
      case LabelSelectorOperator::kDoesNotExist:
        if (has) {
          return false;
        }
        break;
    }
  }
  return true;
}

absl::Status LabelSelector::Validate(absl::string_view where) const {
  for (const auto& [k, v] : match_labels) {
    if (k.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".matchLabels has an empty key"));
    }
  }
  for (size_t i = 0; i < match_expressions.size(); ++i) {
    const LabelSelectorRequirement& r = match_expressions[i];
    const std::string f = absl::StrCat(where, ".matchExpressions[", i, "]");
    if (r.key.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(f, ".key is empty"));
    }
    const bool needs_values =
        r.op == LabelSelectorOperator::kIn || r.op == LabelSelectorOperator::kNotIn;
    if (needs_values && r.values.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          f, ".values must be non-empty for operator ", LabelSelectorOperatorName(r.op)));
    }
    if (!needs_values && !r.values.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          f, ".values must be empty for operator ", LabelSelectorOperatorName(r.op)));
    }
  }
  return absl::OkStatus();
}

std::string LabelSelector::ToString() const {
  std::vector<std::string> parts;
  for (const auto& [k, v] : match_labels) {
    parts.push_back(absl::StrCat(k, "=", v));
  }
  std::vector<std::string> exprs;
  for (const LabelSelectorRequirement& r : match_expressions) {
    std::vector<std::string> values = r.values;
    std::sort(values.begin(), values.end());
    values.erase(std::unique(values.begin(), values.end()), values.end());
    switch (r.op) {
      case LabelSelectorOperator::kIn:
        exprs.push_back(absl::StrCat(r.key, " in (", absl::StrJoin(values, ","), ")"));
        break;
      case LabelSelectorOperator::kNotIn:
        exprs.push_back(absl::StrCat(r.key, " notin (", absl::StrJoin(values, ","), ")"));
        break;
      case LabelSelectorOperator::kExists:
        exprs.push_back(r.key);
        break;
      case LabelSelectorOperator::kDoesNotExist:
        exprs.push_back(absl::StrCat("!", r.key));
        break;
    }
  }
  std::sort(exprs.begin(), exprs.end());
  parts.insert(parts.end(), exprs.begin(), exprs.end());
  return absl::StrJoin(parts, ",");
}

absl::StatusOr<PolicyType> ParsePolicyType(absl::string_view text) {
  if (text == "Ingress") return PolicyType::kIngress;
  if (text == "Egress") return PolicyType::kEgress;
  return absl::InvalidArgumentError(
      absl::StrCat("policy type \"", text, "\" is not Ingress or Egress"));
}

std::array<bool, 2> EffectivePolicyTypes(const NetworkPolicySpec& spec) {
  if (!spec.policy_types.has_value()) {
    return {true, !spec.egress.empty()};
  }
  std::array<bool, 2> out{false, false};
  for (PolicyType t : *spec.policy_types) {
    out[t == PolicyType::kIngress ? 0 : 1] = true;
  }
  return out;
}

absl::Status ValidateNetworkPolicy(const NetworkPolicy& np) {
  const std::string object =
      absl::StrCat("networkpolicy ", np.metadata.namespace_name, "/", np.metadata.name);
  if (np.metadata.name.empty()) {
    return Invalid(object, "metadata.name", "is empty");
  }
  if (np.metadata.namespace_name.empty()) {
    return Invalid(object, "metadata.namespace", "is empty");
  }
  if (absl::Status s = np.spec.pod_selector.Validate("spec.podSelector"); !s.ok()) {
    return Invalid(object, "", s.message());
  }
  for (size_t i = 0; i < np.spec.ingress.size(); ++i) {
    const std::string f = absl::StrCat("spec.ingress[", i, "]");
    if (absl::Status s = ValidatePorts(object, f, np.spec.ingress[i].ports); !s.ok()) {
      return s;
    }
    for (size_t j = 0; j < np.spec.ingress[i].from.size(); ++j) {
      if (absl::Status s = ValidatePeer(object, absl::StrCat(f, ".from[", j, "]"),
                                        np.spec.ingress[i].from[j]);
          !s.ok()) {
        return s;
      }
    }
  }
  for (size_t i = 0; i < np.spec.egress.size(); ++i) {
    const std::string f = absl::StrCat("spec.egress[", i, "]");
    if (absl::Status s = ValidatePorts(object, f, np.spec.egress[i].ports); !s.ok()) {
      return s;
    }
    for (size_t j = 0; j < np.spec.egress[i].to.size(); ++j) {
      if (absl::Status s = ValidatePeer(object, absl::StrCat(f, ".to[", j, "]"),
                                        np.spec.egress[i].to[j]);
          !s.ok()) {
        return s;
      }
    }
  }
  if (np.spec.policy_types) {
    std::array<int, 2> seen{0, 0};
    for (PolicyType t : *np.spec.policy_types) {
      if (++seen[t == PolicyType::kIngress ? 0 : 1] > 1) {
        return Invalid(object, "spec.policyTypes", "lists a type twice");
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateAdminNetworkPolicy(const AdminNetworkPolicy& anp) {
  const std::string object = absl::StrCat("adminnetworkpolicy ", anp.metadata.name);
  if (anp.metadata.name.empty()) {
    return Invalid(object, "metadata.name", "is empty");
  }
  if (anp.spec.priority < 0 || anp.spec.priority > 1000) {
    return Invalid(object, "spec.priority", absl::StrCat(anp.spec.priority, " out of range 0-1000"));
  }
  if (absl::Status s = ValidateSubject(object, anp.spec.subject); !s.ok()) {
    return s;
  }
  return ValidateAdminRules(object, anp.spec.ingress, anp.spec.egress, /*baseline=*/false);
}

absl::Status ValidateBaselineAdminNetworkPolicy(const BaselineAdminNetworkPolicy& banp) {
  const std::string object = absl::StrCat("baselineadminnetworkpolicy ", banp.metadata.name);
  if (banp.metadata.name != "default") {
    return Invalid(object, "metadata.name", "must be \"default\" (the singleton)");
  }
  if (absl::Status s = ValidateSubject(object, banp.spec.subject); !s.ok()) {
    return s;
  }
  return ValidateAdminRules(object, banp.spec.ingress, banp.spec.egress, /*baseline=*/true);
}

absl::StatusOr<AdminNetworkPolicyRuleAction> ParseAdminNetworkPolicyRuleAction(
    absl::string_view text) {
  if (text == "Allow") return AdminNetworkPolicyRuleAction::kAllow;
  if (text == "Deny") return AdminNetworkPolicyRuleAction::kDeny;
  if (text == "Pass") return AdminNetworkPolicyRuleAction::kPass;
  return absl::InvalidArgumentError(
      absl::StrCat("admin network policy action \"", text, "\" is not Allow, Deny or Pass"));
}

absl::string_view AdminNetworkPolicyRuleActionName(AdminNetworkPolicyRuleAction a) {
  switch (a) {
    case AdminNetworkPolicyRuleAction::kAllow:
      return "Allow";
    case AdminNetworkPolicyRuleAction::kDeny:
      return "Deny";
    case AdminNetworkPolicyRuleAction::kPass:
      return "Pass";
  }
  return "?";
}

}  // namespace dpv2
