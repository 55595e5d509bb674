// How the agent reaches the Kubernetes API server: the server address, the
// trust anchors and the credentials, loaded either from the pod's
// service-account mount (in-cluster) or from a kubeconfig file. Errors name
// the file and the field at fault so a misconfigured node says what to fix.
//
//   absl::StatusOr<ClientConfig> config = LoadKubeconfig("/root/.kube/config");
//   if (!config.ok()) return config.status();
//   Reflector reflector(*config, {.resource = ServicesResource()}, handler);
#ifndef DPV2_AGENT_APISERVER_CLIENT_CONFIG_H_
#define DPV2_AGENT_APISERVER_CLIENT_CONFIG_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dpv2::agent::apiserver {

// A parsed server URL ("https://10.0.0.1:6443/prefix").
struct ServerAddress {
  bool tls = true;
  std::string host;  // without IPv6 brackets
  uint16_t port = 443;
  std::string path_prefix;  // "" or "/prefix" (no trailing slash)
};

// Parses "http(s)://host[:port][/prefix]"; `what` names the source in errors.
absl::StatusOr<ServerAddress> ParseServerUrl(absl::string_view url,
                                             absl::string_view what);

struct ClientConfig {
  ServerAddress server;
  std::string bearer_token;          // empty: no Authorization header
  std::string ca_pem;                // empty: system trust store
  bool insecure_skip_tls_verify = false;
  std::string client_cert_pem;       // mutual TLS; both or neither
  std::string client_key_pem;
  std::string default_namespace;     // informational ("default" if unknown)
};

// Where the service-account mount lives; overridable so tests use temp files.
struct InClusterPaths {
  std::string token = "/var/run/secrets/kubernetes.io/serviceaccount/token";
  std::string ca_cert = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
  std::string namespace_file =
      "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
};

// Returns the value of an environment variable, or nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const char*)>;

// The process environment (std::getenv).
EnvLookup ProcessEnv();

// In-cluster configuration: KUBERNETES_SERVICE_HOST / _PORT, the token and
// CA of the service account. A missing namespace file yields "default".
absl::StatusOr<ClientConfig> LoadInClusterConfig(
    const InClusterPaths& paths = {}, const EnvLookup& env = ProcessEnv());

// Kubeconfig: the context named `context` (empty: current-context), its
// cluster (server, certificate-authority(-data), insecure-skip-tls-verify)
// and user (token, tokenFile, client-certificate(-data), client-key(-data)).
// Relative file paths resolve against the kubeconfig's directory.
absl::StatusOr<ClientConfig> LoadKubeconfig(const std::string& path,
                                            const std::string& context = "");

// Same from text already in memory; `origin` names it in errors and
// `base_dir` resolves relative paths.
absl::StatusOr<ClientConfig> ParseKubeconfig(const std::string& text,
                                             const std::string& origin,
                                             const std::string& base_dir,
                                             const std::string& context = "");

}  // namespace dpv2::agent::apiserver

#endif  // DPV2_AGENT_APISERVER_CLIENT_CONFIG_H_
