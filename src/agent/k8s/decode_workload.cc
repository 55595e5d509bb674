// core/v1 Pod, Namespace and Node: the facts a dataplane needs (addresses,
// labels, container ports, placement), with the API server's defaults.

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/k8s/decode_fields.h"
#include "agent/k8s/decode_kinds.h"
#include "agent/k8s/names.h"

namespace dpv2::agent::k8s {
namespace {

constexpr absl::string_view kZoneLabel = "topology.kubernetes.io/zone";

void DecodeContainerPorts(const JsonField& containers, std::vector<ContainerPort>* out) {
  for (const JsonField& container : containers.Items()) {
    std::set<std::string> names;
    for (const JsonField& item : container["ports"].Items()) {
      ContainerPort port;
      JsonField name = item["name"];
      port.name = name.String().value_or("");
      if (!port.name.empty()) {
        if (std::string why = IanaSvcNameError(port.name); !why.empty()) {
          name.Fail(why);
        } else if (!names.insert(port.name).second) {
          name.Fail(absl::StrCat("Duplicate value: \"", port.name, "\""));
        }
      }
      JsonField number = item["containerPort"];
      if (std::optional<uint16_t> p = DecodePort(number)) {
        port.container_port = *p;
      } else if (!number.present()) {
        number.FailRequired();
      }
      port.protocol = DecodeProtocol(item["protocol"]);
      JsonField host_port = item["hostPort"];
      if (host_port.present()) {
        DecodeIntInRange(host_port, 0, 65535);
      }
      out->push_back(std::move(port));
    }
  }
}

// The controller that owns the pod, as GKE's policy log names it: a pod of
// a Deployment is owned by a ReplicaSet named "<deployment>-<pod-template-hash>".
void DecodeWorkload(const JsonField& metadata, const Labels& labels, PodInfo* pod) {
  for (const JsonField& owner : metadata["ownerReferences"].Items()) {
    if (!owner["controller"].Bool().value_or(false)) {
      continue;
    }
    std::string kind = owner["kind"].String().value_or("");
    std::string name = owner["name"].String().value_or("");
    auto hash = labels.find("pod-template-hash");
    if (kind == "ReplicaSet" && hash != labels.end() &&
        absl::EndsWith(name, absl::StrCat("-", hash->second))) {
      kind = "Deployment";
      name = name.substr(0, name.size() - hash->second.size() - 1);
    }
    pod->workload_kind = kind;
    pod->workload_name = name;
    return;
  }
}

}  // namespace

PodObject DecodePod(const JsonField& root, const ObjectMeta& meta) {
  PodObject pod;
  pod.info.namespace_name = meta.namespace_name;
  pod.info.name = meta.name;
  pod.info.labels = meta.labels;
  pod.annotations = meta.annotations;
  DecodeWorkload(root["metadata"], meta.labels, &pod.info);
  JsonField spec = root["spec"];
  JsonField node_name = spec["nodeName"];
  pod.info.node_name = node_name.String().value_or("");
  if (!pod.info.node_name.empty()) {
    if (std::string why = Dns1123SubdomainError(pod.info.node_name); !why.empty()) {
      node_name.Fail(why);
    }
  }
  pod.info.host_network = spec["hostNetwork"].Bool().value_or(false);
  DecodeContainerPorts(spec["containers"], &pod.info.container_ports);
  // Sidecars (init containers that keep running) may serve ports too.
  DecodeContainerPorts(spec["initContainers"], &pod.info.container_ports);

  JsonField status = root["status"];
  pod.phase = DecodeEnum(status["phase"], {"Pending", "Running", "Succeeded", "Failed",
                                           "Unknown"})
                  .value_or("");
  JsonField pod_ips = status["podIPs"];
  for (const JsonField& item : pod_ips.Items()) {
    JsonField ip = item["ip"];
    if (std::optional<IpAddr> addr = DecodeIp(ip)) {
      pod.info.ips.push_back(*addr);
    } else if (!ip.present()) {
      ip.FailRequired();
    }
  }
  JsonField pod_ip = status["podIP"];
  if (std::optional<IpAddr> addr = DecodeIp(pod_ip)) {
    if (pod.info.ips.empty()) {
      pod.info.ips.push_back(*addr);
    } else if (pod.info.ips[0] != *addr) {
      pod_ip.Fail(absl::StrCat("must be the same as podIPs[0] \"",
                               pod.info.ips[0].ToString(), "\", got \"", addr->ToString(),
                               "\""));
    }
  }
  if (pod.info.ips.size() > 2 ||
      (pod.info.ips.size() == 2 && pod.info.ips[0].family() == pod.info.ips[1].family())) {
    pod_ips.Fail("must hold at most one IPv4 and one IPv6 address");
  }
  if (pod.phase == "Succeeded" || pod.phase == "Failed") {
    // A finished pod's address may already belong to another pod.
    pod.info.ips.clear();
  }
  return pod;
}

NamespaceInfo DecodeNamespace(const JsonField& root, const ObjectMeta& meta) {
  NamespaceInfo ns;
  ns.name = meta.name;
  ns.labels = meta.labels;
  ns.annotations = meta.annotations;
  if (!meta.name.empty()) {
    if (std::string why = Dns1123LabelError(meta.name); !why.empty()) {
      JsonField(nullptr, "metadata.name", root.errors()).Fail(why);
    }
    // The API server always sets this label to the name (Kubernetes >= 1.21).
    ns.labels[std::string(kNamespaceNameLabel)] = meta.name;
  }
  return ns;
}

NodeObject DecodeNode(const JsonField& root, const ObjectMeta& meta) {
  NodeObject node;
  node.name = meta.name;
  node.labels = meta.labels;
  if (auto it = meta.labels.find(std::string(kZoneLabel)); it != meta.labels.end()) {
    node.zone = it->second;
  }
  JsonField spec = root["spec"];
  std::vector<std::string> cidrs = spec["podCIDRs"].StringList();
  if (cidrs.empty()) {
    if (std::optional<std::string> c = spec["podCIDR"].String(); c && !c->empty()) {
      cidrs.push_back(*c);
    }
  }
  for (size_t i = 0; i < cidrs.size(); ++i) {
    absl::StatusOr<Prefix> p = Prefix::Parse(cidrs[i]);
    if (!p.ok()) {
      JsonField(nullptr, absl::StrCat("spec.podCIDRs[", i, "]"), root.errors())
          .Fail(absl::StrCat("must be a CIDR such as 10.0.0.0/24, got \"", cidrs[i], "\""));
      continue;
    }
    node.pod_cidrs.push_back(*p);
  }
  for (const JsonField& item : root["status"]["addresses"].Items()) {
    NodeAddress address;
    JsonField type = item["type"];
    std::optional<std::string> type_text = type.String();
    if (!type_text) {
      if (!type.present()) {
        type.FailRequired();
      }
      continue;
    }
    if (*type_text == "InternalIP") {
      address.type = NodeAddressType::kInternalIP;
    } else if (*type_text == "ExternalIP") {
      address.type = NodeAddressType::kExternalIP;
    } else if (*type_text == "Hostname") {
      address.type = NodeAddressType::kHostname;
    } else {
      address.type = NodeAddressType::kOther;
    }
    JsonField value = item["address"];
    address.text = value.String().value_or("");
    if (address.text.empty()) {
      value.FailRequired();
      continue;
    }
    if (address.type == NodeAddressType::kInternalIP ||
        address.type == NodeAddressType::kExternalIP) {
      address.ip = DecodeIp(value);
      if (!address.ip) {
        continue;
      }
    }
    node.addresses.push_back(std::move(address));
  }
  return node;
}

}  // namespace dpv2::agent::k8s
