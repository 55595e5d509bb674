// core/v1 Service and discovery/v1 EndpointSlice, with the API server's
// defaulting (pkg/apis/core/v1/defaults.go) and the validation that matters
// to a dataplane (pkg/apis/core/validation).

#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "agent/k8s/decode_fields.h"
#include "agent/k8s/decode_kinds.h"
#include "agent/k8s/names.h"

namespace dpv2::agent::k8s {
namespace {

constexpr absl::string_view kServiceNameLabel = "kubernetes.io/service-name";

std::optional<ServiceType> ParseServiceType(const std::string& text) {
  if (text == "ClusterIP") {
    return ServiceType::kClusterIP;
  }
  if (text == "NodePort") {
    return ServiceType::kNodePort;
  }
  if (text == "LoadBalancer") {
    return ServiceType::kLoadBalancer;
  }
  return std::nullopt;
}

std::optional<TrafficPolicy> DecodeTrafficPolicy(const JsonField& field) {
  std::optional<std::string> text = DecodeEnum(field, {"Cluster", "Local"});
  if (!text) {
    return std::nullopt;
  }
  return *text == "Local" ? TrafficPolicy::kLocal : TrafficPolicy::kCluster;
}

void DecodeClusterIps(const JsonField& spec, bool external_name, ServiceObject* svc,
                      bool* headless, std::vector<std::string>* warnings,
                      const ObjectMeta& meta) {
  JsonField cluster_ip = spec["clusterIP"];
  JsonField cluster_ips = spec["clusterIPs"];
  std::optional<std::string> single = cluster_ip.String();
  std::vector<std::string> list = cluster_ips.StringList();
  if (single && single->empty()) {
    single.reset();
  }
  // Defaulting: clusterIP and clusterIPs[0] describe the same address.
  if (single && list.empty()) {
    list.push_back(*single);
  }
  if (!single && !list.empty()) {
    single = list[0];
  }
  if (single && !list.empty() && list[0] != *single) {
    JsonField(nullptr, absl::StrCat(cluster_ips.path(), "[0]"), spec.errors())
        .Fail(absl::StrCat("must be the same as clusterIP \"", *single, "\", got \"",
                           list[0], "\""));
    return;
  }
  if (external_name) {
    if (single) {
      cluster_ip.Fail("Forbidden: may not be set for ExternalName services");
    }
    return;
  }
  if (list.empty()) {
    warnings->push_back(absl::StrCat(
        "Service ", meta.namespace_name, "/", meta.name,
        ": spec.clusterIP: not set; the API server would allocate one, so offline this "
        "Service has no ClusterIP frontend"));
    return;
  }
  if (list[0] == "None") {
    *headless = true;
    if (list.size() > 1) {
      cluster_ips.Fail("must have exactly one value when the first is \"None\"");
    }
    return;
  }
  if (list.size() > 2) {
    cluster_ips.Fail(absl::StrCat("may hold at most 2 addresses, got ", list.size()));
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) {
    absl::StatusOr<IpAddr> ip = IpAddr::Parse(list[i]);
    std::string path = cluster_ips.present() ? absl::StrCat(cluster_ips.path(), "[", i, "]")
                                             : cluster_ip.path();
    if (!ip.ok()) {
      JsonField(nullptr, path, spec.errors())
          .Fail(absl::StrCat("must be a valid IP address or \"None\", got \"", list[i], "\""));
      continue;
    }
    svc->spec.cluster_ips.push_back(*ip);
  }
  if (svc->spec.cluster_ips.size() == 2 &&
      svc->spec.cluster_ips[0].family() == svc->spec.cluster_ips[1].family()) {
    cluster_ips.Fail("dual-stack clusterIPs must be one IPv4 and one IPv6 address");
  }
}

void DecodeServicePorts(const JsonField& spec, bool headless_or_external, ServiceObject* svc) {
  JsonField ports = spec["ports"];
  std::vector<JsonField> items = ports.Items();
  if (items.empty() && !headless_or_external && (!ports.present() || ports.is_list())) {
    ports.FailRequired();
  }
  std::set<std::string> names;
  std::set<std::pair<uint16_t, L4Proto>> port_protos;
  for (const JsonField& item : items) {
    ServicePortSpec port;
    TargetPort target;
    JsonField name = item["name"];
    port.name = name.String().value_or("");
    if (!port.name.empty()) {
      if (std::string why = Dns1123LabelError(port.name); !why.empty()) {
        name.Fail(why);
      } else if (!names.insert(port.name).second) {
        name.Fail(absl::StrCat("Duplicate value: \"", port.name, "\""));
      }
    } else if (items.size() > 1) {
      name.Fail("Required value: every port needs a name when a Service has several");
    }
    port.protocol = DecodeProtocol(item["protocol"]);
    JsonField number = item["port"];
    if (std::optional<uint16_t> p = DecodePort(number)) {
      port.port = *p;
      if (!port_protos.insert({port.port, port.protocol}).second) {
        number.Fail(absl::StrCat("Duplicate value: port ", port.port, " ",
                                 L4ProtoName(port.protocol)));
      }
    } else if (!number.present()) {
      number.FailRequired();
    }
    // targetPort: 0, "" or absent default to `port` (SetDefaults_Service).
    JsonField target_field = item["targetPort"];
    const bool defaulted =
        !target_field.present() || target_field.PeekInt() == 0 || target_field.PeekString() == "";
    if (defaulted) {
      target.number = port.port;
    } else if (std::optional<IntOrString> t = DecodeIntOrStringPort(target_field)) {
      if (std::holds_alternative<int32_t>(*t)) {
        target.number = std::get<int32_t>(*t);
      } else {
        target.name = std::get<std::string>(*t);
      }
    }
    JsonField node_port = item["nodePort"];
    if (node_port.present()) {
      std::optional<int64_t> np = DecodeIntInRange(node_port, 0, 65535);
      if (np && *np != 0) {
        if (svc->spec.type == ServiceType::kClusterIP) {
          node_port.Fail("Forbidden: may not be used when `type` is 'ClusterIP'");
        } else {
          port.node_port = static_cast<uint16_t>(*np);
        }
      }
    }
    svc->spec.ports.push_back(std::move(port));
    svc->target_ports.push_back(std::move(target));
  }
}

}  // namespace

ServiceObject DecodeService(const JsonField& root, const ObjectMeta& meta,
                            std::vector<std::string>* warnings) {
  ServiceObject svc;
  svc.spec.namespace_name = meta.namespace_name;
  svc.spec.name = meta.name;
  svc.labels = meta.labels;
  svc.annotations = meta.annotations;
  if (!meta.name.empty()) {
    if (std::string why = Dns1035LabelError(meta.name); !why.empty()) {
      JsonField(nullptr, "metadata.name", root.errors()).Fail(why);
    }
  }
  JsonField spec = root["spec"];
  JsonField type = spec["type"];
  std::optional<std::string> type_text =
      DecodeEnum(type, {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"});
  if (type_text && *type_text == "ExternalName") {
    svc.external_name = true;
  } else if (type_text) {
    svc.spec.type = *ParseServiceType(*type_text);
  }
  if (svc.external_name) {
    JsonField target = spec["externalName"];
    svc.external_name_target = target.String().value_or("");
    if (svc.external_name_target.empty()) {
      target.FailRequired();
    }
  }

  bool headless = false;
  DecodeClusterIps(spec, svc.external_name, &svc, &headless, warnings, meta);
  for (const std::string& family : spec["ipFamilies"].StringList()) {
    if (family != "IPv4" && family != "IPv6") {
      spec["ipFamilies"].Fail(absl::StrCat("Unsupported value: \"", family,
                                           "\": supported values: \"IPv4\", \"IPv6\""));
    }
  }
  DecodeEnum(spec["ipFamilyPolicy"], {"SingleStack", "PreferDualStack", "RequireDualStack"});

  DecodeServicePorts(spec, headless || svc.external_name, &svc);

  if (spec["selector"].present()) {
    svc.selector = spec["selector"].StringMap();
  }
  svc.publish_not_ready_addresses = spec["publishNotReadyAddresses"].Bool().value_or(false);

  JsonField external_ips = spec["externalIPs"];
  std::vector<JsonField> ext_items = external_ips.Items();
  for (const JsonField& item : ext_items) {
    if (std::optional<IpAddr> ip = DecodeIp(item)) {
      svc.spec.external_ips.push_back(*ip);
    }
  }
  for (const JsonField& ingress : root["status"]["loadBalancer"]["ingress"].Items()) {
    JsonField ip = ingress["ip"];
    if (ip.present()) {
      if (std::optional<IpAddr> addr = DecodeIp(ip)) {
        if (svc.spec.type == ServiceType::kLoadBalancer) {
          svc.spec.load_balancer_ips.push_back(*addr);
        }
      }
    }
  }

  JsonField requested_lb_ip = spec["loadBalancerIP"];
  if (requested_lb_ip.present() && requested_lb_ip.String().value_or("") != "") {
    if (svc.spec.type != ServiceType::kLoadBalancer) {
      requested_lb_ip.Fail("Forbidden: may only be used when `type` is 'LoadBalancer'");
    } else if (std::optional<IpAddr> addr = DecodeIp(requested_lb_ip)) {
      svc.requested_load_balancer_ip = *addr;
    }
  }

  const bool externally_accessible = svc.spec.type != ServiceType::kClusterIP ||
                                     !svc.spec.external_ips.empty();
  JsonField etp = spec["externalTrafficPolicy"];
  if (etp.present()) {
    std::optional<TrafficPolicy> p = DecodeTrafficPolicy(etp);
    if (p && !externally_accessible && !svc.external_name) {
      etp.Fail("may only be set for externally-accessible services");
    } else if (p) {
      svc.spec.external_traffic_policy = *p;
    }
  }
  if (std::optional<TrafficPolicy> p = DecodeTrafficPolicy(spec["internalTrafficPolicy"])) {
    svc.spec.internal_traffic_policy = *p;
  }

  JsonField affinity = spec["sessionAffinity"];
  std::optional<std::string> affinity_text = DecodeEnum(affinity, {"None", "ClientIP"});
  JsonField timeout = spec["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"];
  if (affinity_text && *affinity_text == "ClientIP") {
    svc.spec.session_affinity = SessionAffinity::kClientIP;
    if (timeout.present()) {
      if (std::optional<int64_t> t = DecodeIntInRange(timeout, 1, kMaxAffinityTimeoutS)) {
        svc.spec.affinity_timeout_s = static_cast<uint32_t>(*t);
      }
    }
  } else if (spec["sessionAffinityConfig"].present()) {
    spec["sessionAffinityConfig"].Fail(
        "Forbidden: must not be set when `sessionAffinity` is None");
  }

  JsonField ranges = spec["loadBalancerSourceRanges"];
  std::vector<JsonField> range_items = ranges.Items();
  if (!range_items.empty() && svc.spec.type != ServiceType::kLoadBalancer) {
    ranges.Fail("Forbidden: may only be used when `type` is 'LoadBalancer'");
  }
  for (const JsonField& item : range_items) {
    std::optional<std::string> text = item.String();
    if (!text) {
      continue;
    }
    std::string cidr(absl::StripAsciiWhitespace(*text));
    absl::StatusOr<Prefix> prefix = Prefix::Parse(cidr);
    if (!prefix.ok()) {
      item.Fail(absl::StrCat("must be a CIDR such as 10.0.0.0/8, got \"", *text, "\""));
      continue;
    }
    svc.spec.load_balancer_source_ranges.push_back(*prefix);
  }

  JsonField hc = spec["healthCheckNodePort"];
  if (hc.present()) {
    std::optional<int64_t> port = DecodeIntInRange(hc, 0, 65535);
    if (port && *port != 0) {
      if (svc.spec.type != ServiceType::kLoadBalancer ||
          svc.spec.external_traffic_policy != TrafficPolicy::kLocal) {
        hc.Fail("Forbidden: may only be set when `type` is 'LoadBalancer' and "
                "`externalTrafficPolicy` is 'Local'");
      } else {
        svc.spec.health_check_node_port = static_cast<uint16_t>(*port);
      }
    }
  }
  if (std::optional<std::string> td = DecodeEnum(
          spec["trafficDistribution"], {"PreferClose", "PreferSameZone", "PreferSameNode"})) {
    svc.spec.traffic_distribution = *td;
  }
  return svc;
}

EndpointSliceObject DecodeEndpointSlice(const JsonField& root, const ObjectMeta& meta) {
  EndpointSliceObject slice;
  slice.namespace_name = meta.namespace_name;
  slice.labels = meta.labels;
  slice.spec.name = meta.name;
  if (auto it = meta.labels.find(std::string(kServiceNameLabel)); it != meta.labels.end()) {
    slice.service_name = it->second;
  }
  JsonField address_type = root["addressType"];
  std::optional<std::string> type_text = DecodeEnum(address_type, {"IPv4", "IPv6", "FQDN"});
  if (!address_type.present()) {
    address_type.FailRequired();
  }
  std::optional<Family> family;
  if (type_text) {
    if (*type_text == "FQDN") {
      slice.fqdn = true;
    } else {
      family = *type_text == "IPv4" ? Family::kV4 : Family::kV6;
      slice.spec.address_type = *family;
    }
  }

  std::set<std::string> port_names;
  JsonField ports = root["ports"];
  std::vector<JsonField> port_items = ports.Items();
  if (port_items.size() > 20000) {
    ports.Fail("Too many: must have at most 20000 items");
  }
  for (const JsonField& item : port_items) {
    EndpointPortSpec port;
    JsonField name = item["name"];
    port.name = name.String().value_or("");
    if (!port.name.empty()) {
      if (std::string why = Dns1123LabelError(port.name); !why.empty()) {
        name.Fail(why);
      }
    }
    if (!port_names.insert(port.name).second) {
      name.Fail(absl::StrCat("Duplicate value: \"", port.name, "\""));
    }
    port.protocol = DecodeProtocol(item["protocol"]);
    JsonField number = item["port"];
    if (number.present()) {
      if (std::optional<int64_t> p = DecodeIntInRange(number, 0, 65535)) {
        port.port = static_cast<uint16_t>(*p);
      }
    }
    slice.spec.ports.push_back(std::move(port));
  }

  for (const JsonField& item : root["endpoints"].Items()) {
    EndpointSpec ep;
    JsonField addresses = item["addresses"];
    std::vector<JsonField> addr_items = addresses.Items();
    if (addr_items.empty() && (!addresses.present() || addresses.is_list())) {
      addresses.Fail("Required value: must contain at least 1 address");
    }
    if (addr_items.size() > 100) {
      addresses.Fail("Too many: must have at most 100 items");
    }
    for (const JsonField& a : addr_items) {
      if (slice.fqdn) {
        a.String();
        continue;
      }
      std::optional<IpAddr> ip = DecodeIp(a);
      if (ip && family && ip->family() != *family) {
        a.Fail(absl::StrCat("must be a valid ", *family == Family::kV4 ? "IPv4" : "IPv6",
                            " address (addressType ", *type_text, "), got \"",
                            ip->ToString(), "\""));
        continue;
      }
      if (ip) {
        ep.addresses.push_back(*ip);
      }
    }
    JsonField conditions = item["conditions"];
    ep.conditions.ready = conditions["ready"].Bool();
    ep.conditions.serving = conditions["serving"].Bool();
    ep.conditions.terminating = conditions["terminating"].Bool();
    JsonField node_name = item["nodeName"];
    ep.node_name = node_name.String().value_or("");
    if (!ep.node_name.empty()) {
      if (std::string why = Dns1123SubdomainError(ep.node_name); !why.empty()) {
        node_name.Fail(why);
      }
    }
    ep.zone = item["zone"].String().value_or("");
    JsonField hints = item["hints"];
    for (const JsonField& z : hints["forZones"].Items()) {
      JsonField zname = z["name"];
      if (std::optional<std::string> n = zname.String()) {
        ep.hints.for_zones.push_back(*n);
      } else if (!zname.present()) {
        zname.FailRequired();
      }
    }
    for (const JsonField& n : hints["forNodes"].Items()) {
      JsonField nname = n["name"];
      if (std::optional<std::string> s = nname.String()) {
        ep.hints.for_nodes.push_back(*s);
      } else if (!nname.present()) {
        nname.FailRequired();
      }
    }
    std::string target_pod;
    JsonField target = item["targetRef"];
    if (target.present() && target["kind"].String().value_or("") == "Pod") {
      std::string ns = target["namespace"].String().value_or(meta.namespace_name);
      target_pod = absl::StrCat(ns.empty() ? meta.namespace_name : ns, "/",
                                target["name"].String().value_or(""));
    }
    slice.target_pods.push_back(std::move(target_pod));
    slice.spec.endpoints.push_back(std::move(ep));
  }
  return slice;
}

}  // namespace dpv2::agent::k8s
