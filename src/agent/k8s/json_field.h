// A cursor over one field of a decoded Kubernetes object, carrying its field
// path, so that every decoding error names the exact field
// (`spec.ports[1].targetPort`), and errors are collected rather than stopping
// at the first: a user fixing a manifest sees all its problems at once.
//
//   FieldErrors errors;
//   JsonField spec(&object["spec"], "spec", &errors);
//   std::optional<int64_t> port = spec["ports"].At(0)["port"].Int();
#ifndef DPV2_AGENT_K8S_JSON_FIELD_H_
#define DPV2_AGENT_K8S_JSON_FIELD_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/string_view.h"
#include "agent/k8s/manifest_text.h"
#include "nlohmann/json.hpp"

namespace dpv2::agent::k8s {

// "spec.ports[1].targetPort: must be 1-65535 or a name, got \"0\"".
class FieldErrors {
 public:
  void Add(absl::string_view path, absl::string_view message);
  bool empty() const { return messages_.empty(); }
  const std::vector<std::string>& messages() const { return messages_; }

 private:
  std::vector<std::string> messages_;
};

// Renders a JSON value for an error message: strings quoted, others as JSON.
std::string DescribeValue(const nlohmann::json& value);

class JsonField {
 public:
  // value may be null (an absent field); errors (and texts, the YAML source
  // text of non-string plain scalars, if any) must outlive the cursor.
  JsonField(const nlohmann::json* value, std::string path, FieldErrors* errors,
            const ScalarTexts* texts = nullptr)
      : value_(value), base_(std::move(path)), errors_(errors), texts_(texts) {}

  // "spec.ports[1].targetPort". Built when asked (only errors need it): a
  // cursor carries the steps from its root, not the text, so reading a
  // field costs no string building.
  std::string path() const;
  // Absent and explicit JSON null are the same to Kubernetes' decoder.
  bool present() const { return value_ != nullptr && !value_->is_null(); }
  const nlohmann::json* raw() const { return value_; }

  // A member; records an error when this field is present but not an object.
  // `key` must outlive the member's cursor (the decoders pass literals).
  JsonField operator[](absl::string_view key) const;
  // Items of a list; records an error when present but not a list.
  std::vector<JsonField> Items() const;

  // Typed reads: nullopt when absent or of the wrong type (then an error is
  // recorded). Integers must be whole JSON numbers, as Go's decoder demands.
  // String() also accepts an unquoted YAML scalar (`y`, `1`) as its text.
  std::optional<std::string> String() const;
  std::optional<int64_t> Int() const;
  std::optional<bool> Bool() const;
  // map[string]string (labels, annotations); absent: empty.
  std::map<std::string, std::string> StringMap() const;
  // []string; absent: empty.
  std::vector<std::string> StringList() const;

  // Records `path: message`.
  void Fail(absl::string_view message) const;
  // Records `path: Required value`.
  void FailRequired() const;
  FieldErrors* errors() const { return errors_; }

 private:
  // One step below the root path: `.key` (a member), `[index]` (a list
  // item) or `[key]` (a map entry, its key in the JSON document).
  struct Step {
    enum class Kind : uint8_t { kMember, kItem, kMapKey };
    absl::string_view key;
    uint32_t index = 0;
    Kind kind = Kind::kMember;
  };

  JsonField Child(const nlohmann::json* value, Step step) const;

  const nlohmann::json* value_;
  std::string base_;  // the root's path
  absl::InlinedVector<Step, 7> steps_;
  FieldErrors* errors_;
  const ScalarTexts* texts_;
};

}  // namespace dpv2::agent::k8s

#endif  // DPV2_AGENT_K8S_JSON_FIELD_H_
