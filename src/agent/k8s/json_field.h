// A cursor over one field of a decoded Kubernetes object, carrying its field
// path, so that every decoding error names the exact field
// (`spec.ports[1].targetPort`), and errors are collected rather than stopping
// at the first: a user fixing a manifest sees all its problems at once.
//
// It reads either of two backings with the same rules and the same error
// texts: a node of an nlohmann::json tree (manifests, tests), or an element
// of a simdjson document (the API server's objects, which the reflector
// parses with simdjson and hands over without building a tree).
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

// simdjson.h (1.3 MB, as costly to compile as nlohmann/json.hpp) stays out
// of this header: the cursor keeps the element's bytes (json_field.cc checks
// that they fit).
namespace simdjson::dom {
class element;
}  // namespace simdjson::dom

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

class JsonField {
 public:
  // value may be null (an absent field); errors (and texts, the YAML source
  // text of non-string plain scalars, if any) must outlive the cursor.
  JsonField(const nlohmann::json* value, std::string path, FieldErrors* errors,
            const ScalarTexts* texts = nullptr);
  // An element of a simdjson document, which (as errors) must outlive the
  // cursor.
  JsonField(const simdjson::dom::element& value, std::string path, FieldErrors* errors);

  // "spec.ports[1].targetPort". Built when asked (only errors need it): a
  // cursor carries the steps from its root, not the text, so reading a
  // field costs no string building.
  std::string path() const;
  // Absent and explicit JSON null are the same to Kubernetes' decoder.
  bool present() const { return backing_ != Backing::kAbsent; }
  // The field's type, recording nothing.
  bool is_object() const;
  bool is_list() const;
  bool is_empty_list() const;

  // A member; records an error when this field is present but not an object.
  // `key` must outlive the member's cursor (the decoders pass literals). Of
  // repeated keys the last counts, as Go's decoder (and nlohmann) read them.
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

  // Reads that record nothing, for fields whose type says what they mean
  // (int-or-string ports): nullopt when absent or of another type. An
  // integer above INT64_MAX reads as INT64_MAX; an unquoted YAML scalar is
  // not a string here.
  std::optional<int64_t> PeekInt() const;
  std::optional<absl::string_view> PeekString() const;
  // The value for an error message: strings quoted, others as JSON (objects
  // with their keys sorted), cut at 60 characters; "null" when absent.
  std::string Describe() const;

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
  // What the cursor reads. Null values are kAbsent.
  enum class Backing : uint8_t { kAbsent, kTree, kElement };
  // A simdjson::dom::element (trivially copyable: a document pointer and a
  // tape index).
  struct ElementBytes {
    alignas(8) unsigned char bytes[16];
  };

  JsonField(std::string path, FieldErrors* errors, const ScalarTexts* texts)
      : base_(std::move(path)), errors_(errors), texts_(texts) {}
  void SetTree(const nlohmann::json* value);
  void SetElement(const simdjson::dom::element& value);
  simdjson::dom::element element() const;
  // fn(value), value the nlohmann::json or the simdjson::dom::element read;
  // only when present(). Defined in json_field.cc, the only user.
  template <typename Fn>
  auto Visit(Fn&& fn) const;
  // The cursor of a value (null: absent) one step below this one.
  JsonField Child(const nlohmann::json* value, Step step) const;
  JsonField Child(const simdjson::dom::element* value, Step step) const;

  Backing backing_ = Backing::kAbsent;
  const nlohmann::json* tree_ = nullptr;  // kTree
  ElementBytes element_{};                // kElement
  std::string base_;                      // the root's path
  absl::InlinedVector<Step, 7> steps_;
  FieldErrors* errors_;
  const ScalarTexts* texts_;
};

}  // namespace dpv2::agent::k8s

#endif  // DPV2_AGENT_K8S_JSON_FIELD_H_
