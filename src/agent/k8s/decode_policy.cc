// networking.k8s.io/v1 NetworkPolicy, policy.networking.k8s.io/v1alpha1
// AdminNetworkPolicy and BaselineAdminNetworkPolicy, and GKE's
// networking.gke.io/v1alpha1 NetworkLogging, validated as the API server (and
// for ANP, its CRD schema) would.

#include "absl/strings/str_cat.h"
#include "agent/k8s/decode_fields.h"
#include "agent/k8s/decode_kinds.h"
#include "agent/k8s/names.h"

namespace dpv2::agent::k8s {
namespace {

std::optional<IPBlock> DecodeIpBlock(const JsonField& field, const ObjectMeta& meta,
                                     std::vector<std::string>* warnings) {
  IPBlock block;
  JsonField cidr = field["cidr"];
  std::optional<std::string> text = cidr.String();
  if (!text) {
    if (!cidr.present()) {
      cidr.FailRequired();
    }
    return std::nullopt;
  }
  bool host_bits = false;
  absl::StatusOr<Prefix> prefix = Prefix::ParseLenient(*text, &host_bits);
  if (!prefix.ok()) {
    cidr.Fail(absl::StrCat("must be a CIDR such as 10.0.0.0/8, got \"", *text, "\""));
    return std::nullopt;
  }
  if (host_bits) {
    warnings->push_back(absl::StrCat("NetworkPolicy ", meta.namespace_name, "/", meta.name,
                                     ": ", cidr.path(), ": \"", *text,
                                     "\" has host bits set; it is treated as ",
                                     prefix->ToString()));
  }
  block.cidr = *text;
  JsonField except = field["except"];
  std::vector<JsonField> items = except.Items();
  for (const JsonField& item : items) {
    std::optional<std::string> e = item.String();
    if (!e) {
      continue;
    }
    bool e_host_bits = false;
    absl::StatusOr<Prefix> ep = Prefix::ParseLenient(*e, &e_host_bits);
    if (!ep.ok()) {
      item.Fail(absl::StrCat("must be a CIDR such as 10.0.0.0/8, got \"", *e, "\""));
      continue;
    }
    if (ep->family() != prefix->family() || !prefix->Contains(*ep) ||
        ep->length() <= prefix->length()) {
      item.Fail(absl::StrCat("must be a strict subset of `cidr` ", prefix->ToString(),
                             ", got \"", *e, "\""));
      continue;
    }
    block.except.push_back(*e);
  }
  return block;
}

std::vector<NetworkPolicyPeer> DecodePeers(const JsonField& list, const ObjectMeta& meta,
                                           std::vector<std::string>* warnings) {
  std::vector<NetworkPolicyPeer> peers;
  for (const JsonField& item : list.Items()) {
    NetworkPolicyPeer peer;
    JsonField pod = item["podSelector"];
    JsonField ns = item["namespaceSelector"];
    JsonField block = item["ipBlock"];
    int kinds = 0;
    if (pod.present()) {
      peer.pod_selector = DecodeLabelSelector(pod);
      ++kinds;
    }
    if (ns.present()) {
      peer.namespace_selector = DecodeLabelSelector(ns);
      ++kinds;
    }
    if (block.present()) {
      peer.ip_block = DecodeIpBlock(block, meta, warnings);
      if (kinds > 0) {
        item.Fail("Forbidden: may not specify both ipBlock and another peer");
      }
      ++kinds;
    }
    if (kinds == 0) {
      item.Fail("Required value: must specify a peer (podSelector, namespaceSelector or "
                "ipBlock)");
    }
    peers.push_back(std::move(peer));
  }
  return peers;
}

std::vector<NetworkPolicyPort> DecodeNetworkPolicyPorts(const JsonField& list) {
  std::vector<NetworkPolicyPort> ports;
  for (const JsonField& item : list.Items()) {
    NetworkPolicyPort port;
    if (item["protocol"].present()) {
      port.protocol = DecodeProtocol(item["protocol"]);
    }
    JsonField number = item["port"];
    port.port = DecodeIntOrStringPort(number);
    JsonField end = item["endPort"];
    if (end.present()) {
      std::optional<int64_t> e = DecodeIntInRange(end, 1, 65535);
      if (e) {
        port.end_port = static_cast<int32_t>(*e);
        if (!port.port || !std::holds_alternative<int32_t>(*port.port)) {
          end.Fail("Forbidden: may not be specified when `port` is absent or a name");
        } else if (*e < std::get<int32_t>(*port.port)) {
          end.Fail(absl::StrCat("must be greater than or equal to `port` ",
                                std::get<int32_t>(*port.port), ", got ", *e));
        }
      }
    }
    ports.push_back(std::move(port));
  }
  return ports;
}

// ANP/BANP share the subject, peer and port shapes.
AdminNetworkPolicySubject DecodeSubject(const JsonField& field) {
  AdminNetworkPolicySubject subject;
  if (!field.present()) {
    field.FailRequired();
    return subject;
  }
  JsonField namespaces = field["namespaces"];
  JsonField pods = field["pods"];
  if (namespaces.present()) {
    subject.namespaces = DecodeLabelSelector(namespaces);
  }
  if (pods.present()) {
    subject.pods = NamespacedPod{.namespace_selector = DecodeLabelSelector(pods["namespaceSelector"]),
                                 .pod_selector = DecodeLabelSelector(pods["podSelector"])};
    if (!pods["namespaceSelector"].present()) {
      pods["namespaceSelector"].FailRequired();
    }
    if (!pods["podSelector"].present()) {
      pods["podSelector"].FailRequired();
    }
  }
  if (namespaces.present() == pods.present()) {
    field.Fail("must set exactly one of `namespaces` and `pods`");
  }
  return subject;
}

std::optional<NamespacedPod> DecodeNamespacedPod(const JsonField& pods) {
  if (!pods.present()) {
    return std::nullopt;
  }
  if (!pods["namespaceSelector"].present()) {
    pods["namespaceSelector"].FailRequired();
  }
  if (!pods["podSelector"].present()) {
    pods["podSelector"].FailRequired();
  }
  return NamespacedPod{.namespace_selector = DecodeLabelSelector(pods["namespaceSelector"]),
                       .pod_selector = DecodeLabelSelector(pods["podSelector"])};
}

std::optional<std::vector<AdminNetworkPolicyPort>> DecodeAnpPorts(const JsonField& list) {
  if (!list.present()) {
    return std::nullopt;
  }
  std::vector<AdminNetworkPolicyPort> ports;
  for (const JsonField& item : list.Items()) {
    AdminNetworkPolicyPort port;
    int set = 0;
    JsonField number = item["portNumber"];
    if (number.present()) {
      ++set;
      AdminNetworkPolicyPortNumber pn;
      pn.protocol = DecodeProtocol(number["protocol"]);
      if (!number["protocol"].present()) {
        number["protocol"].FailRequired();
      }
      if (std::optional<uint16_t> p = DecodePort(number["port"])) {
        pn.port = *p;
      } else if (!number["port"].present()) {
        number["port"].FailRequired();
      }
      port.port_number = pn;
    }
    JsonField named = item["namedPort"];
    if (named.present()) {
      ++set;
      if (std::optional<std::string> n = named.String()) {
        if (std::string why = IanaSvcNameError(*n); !why.empty()) {
          named.Fail(why);
        }
        port.named_port = *n;
      }
    }
    JsonField range = item["portRange"];
    if (range.present()) {
      ++set;
      AdminNetworkPolicyPortRange pr;
      pr.protocol = DecodeProtocol(range["protocol"]);
      std::optional<uint16_t> start = DecodePort(range["start"]);
      std::optional<uint16_t> end = DecodePort(range["end"]);
      if (!range["start"].present()) {
        range["start"].FailRequired();
      }
      if (!range["end"].present()) {
        range["end"].FailRequired();
      }
      if (start && end) {
        pr.start = *start;
        pr.end = *end;
        if (*end < *start) {
          range["end"].Fail(absl::StrCat("must be greater than or equal to `start` ", *start,
                                         ", got ", *end));
        }
      }
      port.port_range = pr;
    }
    if (set != 1) {
      item.Fail("must set exactly one of `portNumber`, `namedPort` and `portRange`");
    }
    ports.push_back(std::move(port));
  }
  return ports;
}

std::optional<AdminNetworkPolicyRuleAction> DecodeAction(const JsonField& field,
                                                         bool baseline) {
  std::optional<std::string> text =
      baseline ? DecodeEnum(field, {"Allow", "Deny"}) : DecodeEnum(field, {"Allow", "Deny", "Pass"});
  if (!field.present()) {
    field.FailRequired();
  }
  if (!text) {
    return std::nullopt;
  }
  return *ParseAdminNetworkPolicyRuleAction(*text);
}

template <typename Rule>
void DecodeRuleHeader(const JsonField& item, bool baseline, Rule* rule) {
  JsonField name = item["name"];
  rule->name = name.String().value_or("");
  if (rule->name.size() > 100) {
    name.Fail("must be no more than 100 characters");
  }
  if (std::optional<AdminNetworkPolicyRuleAction> a = DecodeAction(item["action"], baseline)) {
    rule->action = *a;
  }
  rule->ports = DecodeAnpPorts(item["ports"]);
}

std::vector<AdminNetworkPolicyIngressRule> DecodeAnpIngress(const JsonField& list,
                                                            bool baseline) {
  std::vector<AdminNetworkPolicyIngressRule> rules;
  std::vector<JsonField> items = list.Items();
  if (items.size() > 100) {
    list.Fail(absl::StrCat("Too many: ", items.size(), ": must have at most 100 items"));
  }
  for (const JsonField& item : items) {
    AdminNetworkPolicyIngressRule rule;
    DecodeRuleHeader(item, baseline, &rule);
    JsonField from = item["from"];
    std::vector<JsonField> peers = from.Items();
    if (peers.empty()) {
      from.Fail("Required value: must have at least 1 peer");
    }
    for (const JsonField& p : peers) {
      AdminNetworkPolicyIngressPeer peer;
      if (p["namespaces"].present()) {
        peer.namespaces = DecodeLabelSelector(p["namespaces"]);
      }
      peer.pods = DecodeNamespacedPod(p["pods"]);
      if (peer.namespaces.has_value() == peer.pods.has_value()) {
        p.Fail("must set exactly one of `namespaces` and `pods`");
      }
      rule.from.push_back(std::move(peer));
    }
    rules.push_back(std::move(rule));
  }
  return rules;
}

std::vector<AdminNetworkPolicyEgressRule> DecodeAnpEgress(const JsonField& list,
                                                          bool baseline) {
  std::vector<AdminNetworkPolicyEgressRule> rules;
  std::vector<JsonField> items = list.Items();
  if (items.size() > 100) {
    list.Fail(absl::StrCat("Too many: ", items.size(), ": must have at most 100 items"));
  }
  for (const JsonField& item : items) {
    AdminNetworkPolicyEgressRule rule;
    DecodeRuleHeader(item, baseline, &rule);
    JsonField to = item["to"];
    std::vector<JsonField> peers = to.Items();
    if (peers.empty()) {
      to.Fail("Required value: must have at least 1 peer");
    }
    for (const JsonField& p : peers) {
      AdminNetworkPolicyEgressPeer peer;
      int set = 0;
      if (p["namespaces"].present()) {
        peer.namespaces = DecodeLabelSelector(p["namespaces"]);
        ++set;
      }
      if (p["pods"].present()) {
        peer.pods = DecodeNamespacedPod(p["pods"]);
        ++set;
      }
      if (p["nodes"].present()) {
        peer.nodes = DecodeLabelSelector(p["nodes"]);
        ++set;
      }
      JsonField networks = p["networks"];
      if (networks.present()) {
        ++set;
        std::vector<std::string> cidrs;
        for (const JsonField& n : networks.Items()) {
          std::optional<std::string> text = n.String();
          if (!text) {
            continue;
          }
          if (!Prefix::Parse(*text).ok()) {
            n.Fail(absl::StrCat("must be a CIDR such as 10.0.0.0/8, got \"", *text, "\""));
            continue;
          }
          cidrs.push_back(*text);
        }
        if (cidrs.empty() && networks.is_empty_list()) {
          networks.Fail("Required value: must have at least 1 CIDR");
        }
        peer.networks = std::move(cidrs);
      }
      if (set != 1) {
        p.Fail("must set exactly one of `namespaces`, `pods`, `nodes` and `networks`");
      }
      rule.to.push_back(std::move(peer));
    }
    rules.push_back(std::move(rule));
  }
  return rules;
}

}  // namespace

NetworkPolicy DecodeNetworkPolicy(const JsonField& root, const ObjectMeta& meta,
                                  std::vector<std::string>* warnings) {
  NetworkPolicy np;
  np.metadata = meta;
  JsonField spec = root["spec"];
  if (!spec.present()) {
    spec.FailRequired();
  }
  np.spec.pod_selector = DecodeLabelSelector(spec["podSelector"]);
  JsonField types = spec["policyTypes"];
  if (types.present()) {
    std::vector<PolicyType> list;
    std::vector<JsonField> items = types.Items();
    if (items.size() > 2) {
      types.Fail("Too many: must have at most 2 items");
    }
    for (const JsonField& item : items) {
      if (std::optional<std::string> t = DecodeEnum(item, {"Ingress", "Egress"})) {
        PolicyType pt = *ParsePolicyType(*t);
        for (PolicyType seen : list) {
          if (seen == pt) {
            item.Fail(absl::StrCat("Duplicate value: \"", *t, "\""));
          }
        }
        list.push_back(pt);
      }
    }
    np.spec.policy_types = std::move(list);
  }
  for (const JsonField& item : spec["ingress"].Items()) {
    NetworkPolicyIngressRule rule;
    rule.ports = DecodeNetworkPolicyPorts(item["ports"]);
    rule.from = DecodePeers(item["from"], meta, warnings);
    np.spec.ingress.push_back(std::move(rule));
  }
  for (const JsonField& item : spec["egress"].Items()) {
    NetworkPolicyEgressRule rule;
    rule.ports = DecodeNetworkPolicyPorts(item["ports"]);
    rule.to = DecodePeers(item["to"], meta, warnings);
    np.spec.egress.push_back(std::move(rule));
  }
  return np;
}

AdminNetworkPolicy DecodeAdminNetworkPolicy(const JsonField& root, const ObjectMeta& meta) {
  AdminNetworkPolicy anp;
  anp.metadata = meta;
  JsonField spec = root["spec"];
  if (!spec.present()) {
    spec.FailRequired();
    return anp;
  }
  JsonField priority = spec["priority"];
  if (std::optional<int64_t> p = DecodeIntInRange(priority, 0, 1000)) {
    anp.spec.priority = static_cast<int32_t>(*p);
  } else if (!priority.present()) {
    priority.FailRequired();
  }
  anp.spec.subject = DecodeSubject(spec["subject"]);
  anp.spec.ingress = DecodeAnpIngress(spec["ingress"], /*baseline=*/false);
  anp.spec.egress = DecodeAnpEgress(spec["egress"], /*baseline=*/false);
  return anp;
}

BaselineAdminNetworkPolicy DecodeBaselineAdminNetworkPolicy(const JsonField& root,
                                                            const ObjectMeta& meta) {
  BaselineAdminNetworkPolicy banp;
  banp.metadata = meta;
  if (!meta.name.empty() && meta.name != "default") {
    JsonField(nullptr, "metadata.name", root.errors())
        .Fail(absl::StrCat("Unsupported value: \"", meta.name,
                           "\": the BaselineAdminNetworkPolicy singleton must be named "
                           "\"default\""));
  }
  JsonField spec = root["spec"];
  if (!spec.present()) {
    spec.FailRequired();
    return banp;
  }
  banp.spec.subject = DecodeSubject(spec["subject"]);
  banp.spec.ingress = DecodeAnpIngress(spec["ingress"], /*baseline=*/true);
  banp.spec.egress = DecodeAnpEgress(spec["egress"], /*baseline=*/true);
  return banp;
}

NetworkLoggingObject DecodeNetworkLogging(const JsonField& root, const ObjectMeta& meta) {
  NetworkLoggingObject logging;
  (void)meta;
  JsonField cluster = root["spec"]["cluster"];
  JsonField allow = cluster["allow"];
  JsonField deny = cluster["deny"];
  logging.allow_log = allow["log"].Bool().value_or(false);
  logging.allow_delegate = allow["delegate"].Bool().value_or(false);
  logging.deny_log = deny["log"].Bool().value_or(false);
  logging.deny_delegate = deny["delegate"].Bool().value_or(false);
  if (logging.allow_delegate && !logging.allow_log) {
    allow["delegate"].Fail("Invalid value: true: `delegate` requires `log: true`");
  }
  if (logging.deny_delegate && !logging.deny_log) {
    deny["delegate"].Fail("Invalid value: true: `delegate` requires `log: true`");
  }
  return logging;
}

}  // namespace dpv2::agent::k8s
