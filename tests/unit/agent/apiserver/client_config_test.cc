// Client configuration: in-cluster service-account mount and kubeconfig,
// including the errors a misconfigured node must get (file and field named).
#include "agent/apiserver/client_config.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <catch2/catch.hpp>

#include "absl/strings/escaping.h"

namespace dpv2::agent::apiserver {
namespace {

// A temporary directory removed when the test ends, pass or fail.
class TempDir {
 public:
  TempDir() {
    char templ[] = "/tmp/dpv2_apiserver_test_XXXXXX";
    char* made = mkdtemp(templ);
    REQUIRE(made != nullptr);
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string Write(const std::string& name, const std::string& text) const {
    std::string file = path_ + "/" + name;
    std::ofstream(file) << text;
    return file;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

EnvLookup FakeEnv(std::map<std::string, std::string> values) {
  return [values](const char* name) -> std::optional<std::string> {
    auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

InClusterPaths PathsIn(const TempDir& dir) {
  return {.token = dir.path() + "/token",
          .ca_cert = dir.path() + "/ca.crt",
          .namespace_file = dir.path() + "/namespace"};
}

TEST_CASE("in-cluster config reads the service account and environment",
          "[config]") {
  TempDir dir;
  dir.Write("token", "abc.def.ghi\n");
  dir.Write("ca.crt", "-----BEGIN CERTIFICATE-----\nx\n");
  dir.Write("namespace", "kube-system");
  auto config = LoadInClusterConfig(
      PathsIn(dir), FakeEnv({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                             {"KUBERNETES_SERVICE_PORT", "443"}}));
  REQUIRE(config.ok());
  CHECK(config->server.tls);
  CHECK(config->server.host == "10.96.0.1");
  CHECK(config->server.port == 443);
  CHECK(config->bearer_token == "abc.def.ghi");  // trailing newline dropped
  CHECK(config->ca_pem.find("BEGIN CERTIFICATE") != std::string::npos);
  CHECK(config->default_namespace == "kube-system");
}

TEST_CASE("in-cluster config accepts an IPv6 service host", "[config]") {
  TempDir dir;
  dir.Write("token", "t");
  dir.Write("ca.crt", "ca");
  auto config = LoadInClusterConfig(
      PathsIn(dir), FakeEnv({{"KUBERNETES_SERVICE_HOST", "fd00::1"},
                             {"KUBERNETES_SERVICE_PORT", "6443"}}));
  REQUIRE(config.ok());
  CHECK(config->server.host == "fd00::1");
  CHECK(config->server.port == 6443);
  CHECK(config->default_namespace == "default");  // no namespace file
}

TEST_CASE("in-cluster config errors name the missing variable or file",
          "[config]") {
  TempDir dir;
  dir.Write("ca.crt", "ca");
  auto no_host = LoadInClusterConfig(
      PathsIn(dir), FakeEnv({{"KUBERNETES_SERVICE_PORT", "443"}}));
  REQUIRE_FALSE(no_host.ok());
  CHECK(no_host.status().message().find("KUBERNETES_SERVICE_HOST") !=
        std::string::npos);
  auto no_port = LoadInClusterConfig(
      PathsIn(dir), FakeEnv({{"KUBERNETES_SERVICE_HOST", "10.0.0.1"}}));
  REQUIRE_FALSE(no_port.ok());
  CHECK(no_port.status().message().find("KUBERNETES_SERVICE_PORT") !=
        std::string::npos);
  EnvLookup env = FakeEnv({{"KUBERNETES_SERVICE_HOST", "10.0.0.1"},
                           {"KUBERNETES_SERVICE_PORT", "443"}});
  auto no_token = LoadInClusterConfig(PathsIn(dir), env);
  REQUIRE_FALSE(no_token.ok());
  CHECK(no_token.status().message().find(dir.path() + "/token") !=
        std::string::npos);
  dir.Write("token", "  \n");
  auto empty_token = LoadInClusterConfig(PathsIn(dir), env);
  REQUIRE_FALSE(empty_token.ok());
  CHECK(empty_token.status().message().find("empty") != std::string::npos);
  auto bad_port = LoadInClusterConfig(
      PathsIn(dir), FakeEnv({{"KUBERNETES_SERVICE_HOST", "10.0.0.1"},
                             {"KUBERNETES_SERVICE_PORT", "http"}}));
  REQUIRE_FALSE(bad_port.ok());
  CHECK(bad_port.status().message().find("invalid port") != std::string::npos);
}

constexpr char kKubeconfig[] = R"(
apiVersion: v1
kind: Config
current-context: prod
contexts:
- name: prod
  context: {cluster: c1, user: u1, namespace: shop}
- name: dev
  context: {cluster: c2, user: u2}
clusters:
- name: c1
  cluster:
    server: https://api.example.com:6443/prefix/
    certificate-authority-data: Q0EtUEVN
- name: c2
  cluster:
    server: http://127.0.0.1:8080
    insecure-skip-tls-verify: true
users:
- name: u1
  user:
    token: secret-token
- name: u2
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
)";

TEST_CASE("kubeconfig follows current-context to cluster and user",
          "[config][kubeconfig]") {
  auto config = ParseKubeconfig(kKubeconfig, "mem", "");
  REQUIRE(config.ok());
  CHECK(config->server.tls);
  CHECK(config->server.host == "api.example.com");
  CHECK(config->server.port == 6443);
  CHECK(config->server.path_prefix == "/prefix");
  CHECK(config->ca_pem == "CA-PEM");
  CHECK(config->bearer_token == "secret-token");
  CHECK(config->default_namespace == "shop");
  CHECK_FALSE(config->insecure_skip_tls_verify);
}

TEST_CASE("kubeconfig honours an explicit context and client certificates",
          "[config][kubeconfig]") {
  auto config = ParseKubeconfig(kKubeconfig, "mem", "", "dev");
  REQUIRE(config.ok());
  CHECK_FALSE(config->server.tls);
  CHECK(config->server.port == 8080);
  CHECK(config->insecure_skip_tls_verify);
  CHECK(config->client_cert_pem == "CERT");
  CHECK(config->client_key_pem == "KEY");
  CHECK(config->bearer_token.empty());
  CHECK(config->default_namespace == "default");
}

TEST_CASE("kubeconfig file paths resolve against the kubeconfig directory",
          "[config][kubeconfig]") {
  TempDir dir;
  dir.Write("ca.pem", "FILE-CA");
  dir.Write("client.crt", "FILE-CERT");
  dir.Write("client.key", "FILE-KEY");
  dir.Write("token.txt", "file-token\n");
  std::string path = dir.Write("config", R"(
current-context: x
contexts: [{name: x, context: {cluster: c, user: u}}]
clusters: [{name: c, cluster: {server: "https://[fd00::10]", certificate-authority: ca.pem}}]
users: [{name: u, user: {tokenFile: token.txt, client-certificate: client.crt, client-key: client.key}}]
)");
  auto config = LoadKubeconfig(path);
  REQUIRE(config.ok());
  CHECK(config->server.host == "fd00::10");
  CHECK(config->server.port == 443);
  CHECK(config->ca_pem == "FILE-CA");
  CHECK(config->bearer_token == "file-token");
  CHECK(config->client_cert_pem == "FILE-CERT");
  CHECK(config->client_key_pem == "FILE-KEY");
}

// Expects ParseKubeconfig(text) to fail with a message containing `needle`.
void ExpectKubeconfigError(const std::string& text, const std::string& needle) {
  auto config = ParseKubeconfig(text, "/etc/kubeconfig", "/etc");
  INFO(text);
  REQUIRE_FALSE(config.ok());
  INFO(config.status().message());
  CHECK(config.status().message().find(needle) != std::string::npos);
  CHECK(config.status().message().find("/etc/kubeconfig") != std::string::npos);
}

TEST_CASE("kubeconfig errors name the file and the field",
          "[config][kubeconfig][malformed]") {
  ExpectKubeconfigError("a: [b", "not valid YAML");
  ExpectKubeconfigError("- 1\n- 2\n", "top level must be a map");
  ExpectKubeconfigError("clusters: []\n", "current-context: missing");
  ExpectKubeconfigError("current-context: x\n", "contexts: missing");
  ExpectKubeconfigError(
      "current-context: x\ncontexts: [{name: y, context: {cluster: c}}]\n",
      "contexts: no entry named \"x\"");
  ExpectKubeconfigError(
      "current-context: x\ncontexts: [{name: x, context: {user: u}}]\n",
      "contexts[name=x].context.cluster: missing");
  ExpectKubeconfigError(
      "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
      "clusters: [{name: d, cluster: {server: https://a}}]\n",
      "clusters: no entry named \"c\"");
  ExpectKubeconfigError(
      "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
      "clusters: [{name: c, cluster: {}}]\n",
      "clusters[name=c].cluster.server: missing");
  ExpectKubeconfigError(
      "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
      "clusters: [{name: c, cluster: {server: ftp://a}}]\n",
      "clusters[name=c].cluster.server");
  ExpectKubeconfigError(
      "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
      "clusters: [{name: c, cluster: {server: 'https://a:99999'}}]\n",
      "invalid port");
  ExpectKubeconfigError(
      "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
      "clusters: [{name: c, cluster: {server: https://a, "
      "certificate-authority-data: '!!!'}}]\n",
      "certificate-authority-data: not valid base64");
  ExpectKubeconfigError(
      "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
      "clusters: [{name: c, cluster: {server: https://a, "
      "insecure-skip-tls-verify: maybe}}]\n",
      "insecure-skip-tls-verify: must be true or false");
  ExpectKubeconfigError(
      "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
      "clusters: [{name: c, cluster: {server: https://a, "
      "certificate-authority: missing-ca.pem}}]\n",
      "/etc/missing-ca.pem");
  ExpectKubeconfigError(
      "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
      "clusters: [{name: c, cluster: {server: https://a}}]\n"
      "users: [{name: u, user: {client-certificate-data: Q0VSVA==}}]\n",
      "users[name=u].user: client-certificate and client-key must come together");
  ExpectKubeconfigError(
      "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
      "clusters: [{name: c, cluster: {server: https://a}}]\n"
      "users: [{name: u, user: {token: [1, 2]}}]\n",
      "users[name=u].user.token: must be a string");
}

TEST_CASE("a missing kubeconfig file is named in the error", "[config]") {
  auto config = LoadKubeconfig("/nonexistent/dpv2/kubeconfig");
  REQUIRE_FALSE(config.ok());
  CHECK(config.status().message().find("/nonexistent/dpv2/kubeconfig") !=
        std::string::npos);
}

TEST_CASE("server URLs parse scheme, host, port and prefix", "[config]") {
  auto plain = ParseServerUrl("http://127.0.0.1:8001", "t");
  REQUIRE(plain.ok());
  CHECK_FALSE(plain->tls);
  CHECK(plain->port == 8001);
  auto default_port = ParseServerUrl("https://k8s.local", "t");
  REQUIRE(default_port.ok());
  CHECK(default_port->port == 443);
  CHECK(default_port->path_prefix.empty());
  CHECK_FALSE(ParseServerUrl("https://", "t").ok());
  CHECK_FALSE(ParseServerUrl("https://[fd00::1", "t").ok());
  CHECK_FALSE(ParseServerUrl("https://a:0", "t").ok());
  CHECK_FALSE(ParseServerUrl("a:443", "t").ok());
}

}  // namespace
}  // namespace dpv2::agent::apiserver
