#include "agent/k8s/objects.h"

#include "absl/strings/str_cat.h"
#include "agent/k8s/decode_fields.h"
#include "agent/k8s/decode_kinds.h"
#include "agent/k8s/json_field.h"
#include "agent/k8s/manifest_text.h"

namespace dpv2::agent::k8s {

std::string ObjectId::ToString() const { return absl::StrCat(kind, " ", Key()); }

std::string ObjectId::Key() const {
  return namespace_name.empty() ? name : absl::StrCat(namespace_name, "/", name);
}

std::vector<IpAddr> NodeObject::Ips() const {
  std::vector<IpAddr> ips;
  for (const NodeAddress& a : addresses) {
    if (a.ip && (a.type == NodeAddressType::kInternalIP ||
                 a.type == NodeAddressType::kExternalIP)) {
      bool seen = false;
      for (const IpAddr& ip : ips) {
        seen |= ip == *a.ip;
      }
      if (!seen) {
        ips.push_back(*a.ip);
      }
    }
  }
  return ips;
}

size_t ClusterObjects::object_count() const {
  return services.size() + endpoint_slices.size() + pods.size() + namespaces.size() +
         nodes.size() + network_policies.size() + admin_network_policies.size() +
         (baseline_admin_network_policy ? 1 : 0) + (network_logging ? 1 : 0);
}

namespace {

struct KindInfo {
  const char* kind;
  const char* api_version;
  bool namespaced;
};

constexpr KindInfo kKinds[] = {
    {"Service", "v1", true},
    {"EndpointSlice", "discovery.k8s.io/v1", true},
    {"Pod", "v1", true},
    {"Namespace", "v1", false},
    {"Node", "v1", false},
    {"NetworkPolicy", "networking.k8s.io/v1", true},
    {"AdminNetworkPolicy", "policy.networking.k8s.io/v1alpha1", false},
    {"BaselineAdminNetworkPolicy", "policy.networking.k8s.io/v1alpha1", false},
    {"NetworkLogging", "networking.gke.io/v1alpha1", false},
};

template <typename Map, typename Value>
void Store(Map& map, const ObjectId& id, Value value, absl::string_view origin,
           ClusterObjects* out) {
  auto [it, inserted] = map.insert_or_assign(id.Key(), std::move(value));
  if (!inserted) {
    out->warnings.push_back(absl::StrCat(id.ToString(), ": defined again (", origin,
                                         "); the later definition wins"));
  }
}

// kind or apiVersion: the object's, or `fallback` when it names none.
std::optional<std::string> TypeMetaField(const JsonField& root, absl::string_view key,
                                         absl::string_view fallback) {
  const JsonField field = root[key];
  if (!field.present() && !fallback.empty() && root.is_object()) {
    return std::string(fallback);
  }
  return field.String();
}

// AddObject of either backing; `root` carries the errors.
void Add(const JsonField& root, const TypeMeta& defaults, absl::string_view origin,
         ClusterObjects* out) {
  FieldErrors& errors = *root.errors();
  std::optional<std::string> kind = TypeMetaField(root, "kind", defaults.kind);
  std::optional<std::string> api_version = TypeMetaField(root, "apiVersion", defaults.api_version);
  if (!kind || !api_version) {
    if (!kind && !root["kind"].present()) {
      root["kind"].FailRequired();
    }
    if (!api_version && !root["apiVersion"].present()) {
      root["apiVersion"].FailRequired();
    }
    for (const std::string& e : errors.messages()) {
      out->errors.push_back(absl::StrCat(origin, ": ", e));
    }
    return;
  }
  const KindInfo* info = nullptr;
  for (const KindInfo& k : kKinds) {
    if (*kind == k.kind) {
      info = &k;
    }
  }
  if (info == nullptr) {
    std::string name = root["metadata"]["name"].String().value_or("");
    out->warnings.push_back(absl::StrCat(origin, ": ", *kind, " ", name,
                                         ": kind not used by the dataplane; ignored"));
    return;
  }
  ObjectMeta meta = DecodeObjectMeta(root["metadata"], info->namespaced);
  ObjectId id{.kind = *kind,
              .namespace_name = info->namespaced ? meta.namespace_name : "",
              .name = meta.name.empty() ? absl::StrCat("<unnamed> (", origin, ")") : meta.name};
  if (*api_version != info->api_version) {
    root["apiVersion"].Fail(absl::StrCat("Unsupported value: \"", *api_version,
                                         "\": supported values: \"", info->api_version,
                                         "\""));
  }
  std::vector<std::string> warnings;
  auto report = [&](const absl::Status& core_check) {
    if (errors.empty() && !core_check.ok()) {
      // Our decoder checked field by field; the core's own validation is the
      // last word on what it accepts.
      errors.Add("spec", core_check.message());
    }
    for (const std::string& e : errors.messages()) {
      out->errors.push_back(absl::StrCat(id.ToString(), ": ", e));
    }
    if (errors.empty()) {
      for (std::string& w : warnings) {
        out->warnings.push_back(std::move(w));
      }
    }
    return errors.empty();
  };

  const std::string k = *kind;
  if (k == "Service") {
    ServiceObject svc = DecodeService(root, meta, &warnings);
    absl::Status check = absl::OkStatus();
    if (errors.empty() && !svc.external_name) {
      check = svc.spec.Validate();
    }
    if (report(check)) {
      Store(out->services, id, std::move(svc), origin, out);
    }
  } else if (k == "EndpointSlice") {
    EndpointSliceObject slice = DecodeEndpointSlice(root, meta);
    if (report(absl::OkStatus())) {
      if (slice.fqdn) {
        out->warnings.push_back(
            absl::StrCat(id.ToString(), ": addressType FQDN is not proxied; ignored"));
        return;
      }
      if (slice.service_name.empty()) {
        out->warnings.push_back(absl::StrCat(
            id.ToString(), ": no kubernetes.io/service-name label; belongs to no Service"));
      }
      Store(out->endpoint_slices, id, std::move(slice), origin, out);
    }
  } else if (k == "Pod") {
    PodObject pod = DecodePod(root, meta);
    if (report(absl::OkStatus())) {
      Store(out->pods, id, std::move(pod), origin, out);
    }
  } else if (k == "Namespace") {
    NamespaceInfo ns = DecodeNamespace(root, meta);
    if (report(absl::OkStatus())) {
      Store(out->namespaces, id, std::move(ns), origin, out);
    }
  } else if (k == "Node") {
    NodeObject node = DecodeNode(root, meta);
    if (report(absl::OkStatus())) {
      Store(out->nodes, id, std::move(node), origin, out);
    }
  } else if (k == "NetworkPolicy") {
    NetworkPolicy np = DecodeNetworkPolicy(root, meta, &warnings);
    absl::Status check = errors.empty() ? ValidateNetworkPolicy(np) : absl::OkStatus();
    if (report(check)) {
      Store(out->network_policies, id, std::move(np), origin, out);
    }
  } else if (k == "AdminNetworkPolicy") {
    AdminNetworkPolicy anp = DecodeAdminNetworkPolicy(root, meta);
    absl::Status check = errors.empty() ? ValidateAdminNetworkPolicy(anp) : absl::OkStatus();
    if (report(check)) {
      Store(out->admin_network_policies, id, std::move(anp), origin, out);
    }
  } else if (k == "BaselineAdminNetworkPolicy") {
    BaselineAdminNetworkPolicy banp = DecodeBaselineAdminNetworkPolicy(root, meta);
    absl::Status check =
        errors.empty() ? ValidateBaselineAdminNetworkPolicy(banp) : absl::OkStatus();
    if (report(check)) {
      if (out->baseline_admin_network_policy) {
        out->warnings.push_back(absl::StrCat(id.ToString(), ": defined again (", origin,
                                             "); the later definition wins"));
      }
      out->baseline_admin_network_policy = std::move(banp);
    }
  } else if (k == "NetworkLogging") {
    NetworkLoggingObject logging = DecodeNetworkLogging(root, meta);
    if (report(absl::OkStatus())) {
      if (meta.name != "default") {
        out->warnings.push_back(absl::StrCat(
            id.ToString(), ": only the NetworkLogging named \"default\" is used; ignored"));
        return;
      }
      out->network_logging = logging;
    }
  }
}

}  // namespace

void AddObject(const nlohmann::json& object, absl::string_view origin, ClusterObjects* out,
               const ScalarTexts* texts) {
  FieldErrors errors;
  Add(JsonField(&object, "", &errors, texts), TypeMeta{}, origin, out);
}

void AddApiObject(const simdjson::dom::element& object, const TypeMeta& defaults,
                  absl::string_view origin, ClusterObjects* out) {
  FieldErrors errors;
  Add(JsonField(object, "", &errors), defaults, origin, out);
}

void AddManifestText(absl::string_view text, absl::string_view source, ClusterObjects* out) {
  ManifestDocuments docs = ParseManifestText(text, source);
  for (std::string& e : docs.errors) {
    out->errors.push_back(std::move(e));
  }
  for (const ManifestDocument& doc : docs.objects) {
    AddObject(doc.object, doc.origin, out, doc.scalar_texts.get());
  }
}

}  // namespace dpv2::agent::k8s
