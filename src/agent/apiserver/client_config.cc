#include "agent/apiserver/client_config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "core/status_macros.h"
#include "yaml-cpp/yaml.h"

namespace dpv2::agent::apiserver {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(what, ": cannot read file ", path));
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string JoinHost(absl::string_view host) {
  // An IPv6 literal needs brackets inside a URL.
  if (absl::StrContains(host, ':')) return absl::StrCat("[", host, "]");
  return std::string(host);
}

// A scalar string field of a YAML map, or "" when absent.
absl::StatusOr<std::string> YamlString(const YAML::Node& map,
                                       const char* field,
                                       absl::string_view where) {
  YAML::Node node = map[field];
  if (!node || node.IsNull()) return std::string();
  if (!node.IsScalar()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".", field, ": must be a string"));
  }
  return node.as<std::string>();
}

// Finds the entry named `name` in a kubeconfig list (clusters, users,
// contexts) and returns its inner object (entry[inner]).
absl::StatusOr<YAML::Node> NamedEntry(const YAML::Node& root,
                                      const char* list, const char* inner,
                                      const std::string& name,
                                      absl::string_view origin) {
  YAML::Node entries = root[list];
  if (!entries || !entries.IsSequence()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kubeconfig ", origin, ": ", list, ": missing or not a list"));
  }
  for (const YAML::Node& entry : entries) {
    if (!entry.IsMap()) continue;
    YAML::Node entry_name = entry["name"];
    if (entry_name && entry_name.IsScalar() &&
        entry_name.as<std::string>() == name) {
      YAML::Node body = entry[inner];
      if (!body || !body.IsMap()) {
        return absl::InvalidArgumentError(
            absl::StrCat("kubeconfig ", origin, ": ", list, "[name=", name,
                         "].", inner, ": missing or not a map"));
      }
      return body;
    }
  }
  return absl::NotFoundError(absl::StrCat("kubeconfig ", origin, ": ", list,
                                          ": no entry named \"", name, "\""));
}

std::string Resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return absl::StrCat(base_dir, "/", path);
}

// Loads PEM material from "<field>-data" (base64) or "<field>" (a file).
absl::StatusOr<std::string> PemField(const YAML::Node& map,
                                     const std::string& field,
                                     const std::string& where,
                                     const std::string& base_dir) {
  std::string data_field = field + "-data";
  DPV2_ASSIGN_OR_RETURN(std::string data,
                        YamlString(map, data_field.c_str(), where));
  if (!data.empty()) {
    std::string decoded;
    if (!absl::Base64Unescape(data, &decoded)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".", data_field, ": not valid base64"));
    }
    return decoded;
  }
  DPV2_ASSIGN_OR_RETURN(std::string file,
                        YamlString(map, field.c_str(), where));
  if (file.empty()) return std::string();
  return ReadFile(Resolve(base_dir, file), absl::StrCat(where, ".", field));
}

}  // namespace

absl::StatusOr<ServerAddress> ParseServerUrl(absl::string_view url,
                                             absl::string_view what) {
  ServerAddress address;
  absl::string_view rest = url;
  if (absl::ConsumePrefix(&rest, "https://")) {
    address.tls = true;
    address.port = 443;
  } else if (absl::ConsumePrefix(&rest, "http://")) {
    address.tls = false;
    address.port = 80;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": server \"", url, "\" must start with https:// or http://"));
  }
  size_t slash = rest.find('/');
  absl::string_view authority = rest.substr(0, slash);
  if (slash != absl::string_view::npos) {
    absl::string_view prefix = rest.substr(slash);
    while (absl::ConsumeSuffix(&prefix, "/")) {
    }
    address.path_prefix = std::string(prefix);
  }
  absl::string_view port_text;
  if (absl::ConsumePrefix(&authority, "[")) {
    size_t close = authority.find(']');
    if (close == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": server \"", url, "\" has an unclosed '['"));
    }
    address.host = std::string(authority.substr(0, close));
    absl::string_view after = authority.substr(close + 1);
    if (absl::ConsumePrefix(&after, ":")) port_text = after;
  } else {
    size_t colon = authority.rfind(':');
    address.host = std::string(authority.substr(0, colon));
    if (colon != absl::string_view::npos) {
      port_text = authority.substr(colon + 1);
    }
  }
  if (address.host.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": server \"", url, "\" has no host"));
  }
  if (!port_text.empty()) {
    uint32_t port = 0;
    if (!absl::SimpleAtoi(port_text, &port) || port == 0 || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": server \"", url, "\" has an invalid port"));
    }
    address.port = static_cast<uint16_t>(port);
  }
  return address;
}

EnvLookup ProcessEnv() {
  return [](const char* name) -> std::optional<std::string> {
    const char* value = std::getenv(name);
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

absl::StatusOr<ClientConfig> LoadInClusterConfig(const InClusterPaths& paths,
                                                 const EnvLookup& env) {
  std::optional<std::string> host = env("KUBERNETES_SERVICE_HOST");
  std::optional<std::string> port = env("KUBERNETES_SERVICE_PORT");
  if (!host || host->empty()) {
    return absl::FailedPreconditionError(
        "in-cluster config: environment KUBERNETES_SERVICE_HOST is not set");
  }
  if (!port || port->empty()) {
    return absl::FailedPreconditionError(
        "in-cluster config: environment KUBERNETES_SERVICE_PORT is not set");
  }
  ClientConfig config;
  DPV2_ASSIGN_OR_RETURN(
      config.server,
      ParseServerUrl(absl::StrCat("https://", JoinHost(*host), ":", *port),
                     "in-cluster config: KUBERNETES_SERVICE_HOST/PORT"));
  DPV2_ASSIGN_OR_RETURN(std::string token,
                        ReadFile(paths.token, "in-cluster config: token"));
  config.bearer_token = std::string(absl::StripAsciiWhitespace(token));
  if (config.bearer_token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "in-cluster config: token file ", paths.token, " is empty"));
  }
  DPV2_ASSIGN_OR_RETURN(config.ca_pem,
                        ReadFile(paths.ca_cert, "in-cluster config: ca.crt"));
  absl::StatusOr<std::string> ns =
      ReadFile(paths.namespace_file, "in-cluster config: namespace");
  config.default_namespace =
      ns.ok() ? std::string(absl::StripAsciiWhitespace(*ns)) : "default";
  if (config.default_namespace.empty()) config.default_namespace = "default";
  return config;
}

absl::StatusOr<ClientConfig> ParseKubeconfig(const std::string& text,
                                             const std::string& origin,
                                             const std::string& base_dir,
                                             const std::string& context) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("kubeconfig ", origin, ": not valid YAML: ", e.what()));
  }
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat("kubeconfig ", origin, ": top level must be a map"));
  }
  std::string top = absl::StrCat("kubeconfig ", origin, ": ");
  std::string context_name = context;
  if (context_name.empty()) {
    DPV2_ASSIGN_OR_RETURN(context_name,
                          YamlString(root, "current-context", top));
    if (context_name.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(top, "current-context: missing (and no context given)"));
    }
  }
  DPV2_ASSIGN_OR_RETURN(
      YAML::Node ctx, NamedEntry(root, "contexts", "context", context_name, origin));
  std::string ctx_where =
      absl::StrCat(top, "contexts[name=", context_name, "].context");
  DPV2_ASSIGN_OR_RETURN(std::string cluster_name,
                        YamlString(ctx, "cluster", ctx_where));
  if (cluster_name.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(ctx_where, ".cluster: missing"));
  }
  DPV2_ASSIGN_OR_RETURN(std::string user_name,
                        YamlString(ctx, "user", ctx_where));
  ClientConfig config;
  DPV2_ASSIGN_OR_RETURN(config.default_namespace,
                        YamlString(ctx, "namespace", ctx_where));
  if (config.default_namespace.empty()) config.default_namespace = "default";

  DPV2_ASSIGN_OR_RETURN(
      YAML::Node cluster,
      NamedEntry(root, "clusters", "cluster", cluster_name, origin));
  std::string cl_where =
      absl::StrCat(top, "clusters[name=", cluster_name, "].cluster");
  DPV2_ASSIGN_OR_RETURN(std::string server,
                        YamlString(cluster, "server", cl_where));
  if (server.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(cl_where, ".server: missing"));
  }
  DPV2_ASSIGN_OR_RETURN(config.server,
                        ParseServerUrl(server, absl::StrCat(cl_where, ".server")));
  YAML::Node insecure = cluster["insecure-skip-tls-verify"];
  if (insecure && !insecure.IsNull()) {
    try {
      config.insecure_skip_tls_verify = insecure.as<bool>();
    } catch (const YAML::Exception&) {
      return absl::InvalidArgumentError(absl::StrCat(
          cl_where, ".insecure-skip-tls-verify: must be true or false"));
    }
  }
  DPV2_ASSIGN_OR_RETURN(
      config.ca_pem,
      PemField(cluster, "certificate-authority", cl_where, base_dir));

  if (!user_name.empty()) {
    DPV2_ASSIGN_OR_RETURN(YAML::Node user,
                          NamedEntry(root, "users", "user", user_name, origin));
    std::string us_where =
        absl::StrCat(top, "users[name=", user_name, "].user");
    DPV2_ASSIGN_OR_RETURN(config.bearer_token,
                          YamlString(user, "token", us_where));
    if (config.bearer_token.empty()) {
      DPV2_ASSIGN_OR_RETURN(std::string token_file,
                            YamlString(user, "tokenFile", us_where));
      if (!token_file.empty()) {
        DPV2_ASSIGN_OR_RETURN(
            std::string token,
            ReadFile(Resolve(base_dir, token_file),
                     absl::StrCat(us_where, ".tokenFile")));
        config.bearer_token = std::string(absl::StripAsciiWhitespace(token));
      }
    }
    DPV2_ASSIGN_OR_RETURN(
        config.client_cert_pem,
        PemField(user, "client-certificate", us_where, base_dir));
    DPV2_ASSIGN_OR_RETURN(config.client_key_pem,
                          PemField(user, "client-key", us_where, base_dir));
    if (config.client_cert_pem.empty() != config.client_key_pem.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          us_where, ": client-certificate and client-key must come together"));
    }
  }
  return config;
}

absl::StatusOr<ClientConfig> LoadKubeconfig(const std::string& path,
                                            const std::string& context) {
  DPV2_ASSIGN_OR_RETURN(std::string text,
                        ReadFile(path, absl::StrCat("kubeconfig ", path)));
  std::string base_dir;
  size_t slash = path.rfind('/');
  if (slash != std::string::npos) base_dir = path.substr(0, slash);
  if (slash == 0) base_dir = "/";
  return ParseKubeconfig(text, path, base_dir, context);
}

}  // namespace dpv2::agent::apiserver
