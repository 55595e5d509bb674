// Turns manifest text (JSON, or YAML with any number of `---` documents) into
// one JSON object per Kubernetes object, the way kubectl reads a file:
// YAML scalars resolve as Kubernetes' YAML reader (go-yaml, YAML 1.1) does, so
// `port: 80` is a number, `port: "80"` a string and `ready: yes` a boolean;
// `kind: List` and typed lists (`ServiceList`) are expanded into their items.
// A syntax error in one YAML document does not hide the documents around it.
//
//   ManifestDocuments docs = ParseManifestText(text, "svc.yaml");
//   for (const ManifestDocument& d : docs.objects) { Decode(d.object); }
//   for (const std::string& e : docs.errors) { std::cerr << e << "\n"; }
#ifndef DPV2_AGENT_K8S_MANIFEST_TEXT_H_
#define DPV2_AGENT_K8S_MANIFEST_TEXT_H_

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace dpv2::agent::k8s {

// The source text of plain YAML scalars that resolved to a boolean, number or
// null, keyed by the JSON node they became. A field whose type is string
// reads the text instead (as Kubernetes' typed YAML decoding does), so that
// `labels: {ns: y}` means the string "y", not `true`. Node addresses are
// stable: containers are never resized after conversion.
using ScalarTexts = std::unordered_map<const nlohmann::json*, std::string>;

struct ManifestDocument {
  nlohmann::json object;
  std::string origin;  // "svc.yaml: document 2" or "svc.yaml: document 1, items[3]"
  std::shared_ptr<const ScalarTexts> scalar_texts;  // null for JSON input
};

struct ManifestDocuments {
  std::vector<ManifestDocument> objects;
  std::vector<std::string> errors;  // each names the file and document
};

// `source` names the text in messages (a path, or "<stdin>").
ManifestDocuments ParseManifestText(absl::string_view text, absl::string_view source);

// One YAML document to JSON with Kubernetes' scalar resolution. Map keys
// become strings. When `texts` is given it receives the source text of
// non-string plain scalars. Exposed for tests and for the fuzzer.
absl::StatusOr<nlohmann::json> YamlToJson(absl::string_view yaml_document,
                                          ScalarTexts* texts = nullptr);

// The resolution of one plain (unquoted) YAML scalar: null, bool, integer,
// float or string.
nlohmann::json ResolvePlainScalar(const std::string& text);

}  // namespace dpv2::agent::k8s

#endif  // DPV2_AGENT_K8S_MANIFEST_TEXT_H_
