// Reads Kubernetes manifests from a file, a directory (every *.yaml, *.yml
// and *.json below it, in path order) or stdin ("-"), and tells whether they
// changed since the last read, so that an agent can re-read them.
//
//   ManifestSource source("examples/manifests");
//   absl::StatusOr<k8s::ClusterObjects> objects = source.Load();
//   if (source.Changed()) { objects = source.Load(); }
#ifndef DPV2_AGENT_MANIFEST_SOURCE_H_
#define DPV2_AGENT_MANIFEST_SOURCE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/k8s/objects.h"

namespace dpv2::agent {

class ManifestSource {
 public:
  explicit ManifestSource(std::string path) : path_(std::move(path)) {}

  // NotFound when the path does not exist; an unreadable file or invalid
  // objects inside are reported in ClusterObjects::errors instead, so that
  // one bad file does not stop the others.
  absl::StatusOr<k8s::ClusterObjects> Load();
  // True when files were added, removed or modified since the last Load().
  bool Changed() const;
  const std::string& path() const { return path_; }

 private:
  // "path size mtime" of every manifest file, sorted.
  std::vector<std::string> Fingerprint() const;

  std::string path_;
  std::vector<std::string> last_fingerprint_;
};

}  // namespace dpv2::agent

#endif  // DPV2_AGENT_MANIFEST_SOURCE_H_
