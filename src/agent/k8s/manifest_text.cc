#include "agent/k8s/manifest_text.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "yaml-cpp/yaml.h"

namespace dpv2::agent::k8s {
namespace {

bool OneOf(const std::string& s, std::initializer_list<const char*> options) {
  for (const char* o : options) {
    if (s == o) {
      return true;
    }
  }
  return false;
}

// Go's strconv.ParseInt(s, 0, 64) after go-yaml removed underscores: an
// optional sign, then 0x / 0o / 0b / leading-0 octal or decimal digits.
bool ParseGoInt(const std::string& text, nlohmann::json* out) {
  std::string s;
  for (char c : text) {
    if (c != '_') {
      s.push_back(c);
    }
  }
  if (s.empty()) {
    return false;
  }
  size_t i = 0;
  bool negative = false;
  if (s[0] == '+' || s[0] == '-') {
    negative = s[0] == '-';
    i = 1;
  }
  if (i >= s.size()) {
    return false;
  }
  int base = 10;
  if (s.size() - i > 1 && s[i] == '0') {
    char p = static_cast<char>(absl::ascii_tolower(s[i + 1]));
    if (p == 'x') {
      base = 16;
      i += 2;
    } else if (p == 'o') {
      base = 8;
      i += 2;
    } else if (p == 'b') {
      base = 2;
      i += 2;
    } else {
      base = 8;
      i += 1;
    }
  }
  if (i >= s.size()) {
    return false;
  }
  unsigned __int128 value = 0;
  for (; i < s.size(); ++i) {
    int digit;
    char c = static_cast<char>(absl::ascii_tolower(s[i]));
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return false;
    }
    if (digit >= base) {
      return false;
    }
    value = value * base + digit;
    if (value > static_cast<unsigned __int128>(std::numeric_limits<uint64_t>::max())) {
      return false;
    }
  }
  if (negative) {
    if (value > static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max()) + 1) {
      return false;
    }
    *out = static_cast<int64_t>(-static_cast<__int128>(value));
  } else if (value > static_cast<unsigned __int128>(std::numeric_limits<int64_t>::max())) {
    *out = static_cast<uint64_t>(value);
  } else {
    *out = static_cast<int64_t>(value);
  }
  return true;
}

}  // namespace

nlohmann::json ResolvePlainScalar(const std::string& text) {
  if (OneOf(text, {"", "~", "null", "Null", "NULL"})) {
    return nullptr;
  }
  if (OneOf(text, {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"})) {
    return true;
  }
  if (OneOf(text, {"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"})) {
    return false;
  }
  nlohmann::json number;
  if (ParseGoInt(text, &number)) {
    return number;
  }
  static const std::regex kYamlFloat(R"(^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$)");
  if (std::regex_match(text, kYamlFloat)) {
    errno = 0;
    double d = std::strtod(text.c_str(), nullptr);
    if (errno == 0 && std::isfinite(d)) {
      return d;
    }
  }
  // .inf and .nan have no JSON form; Kubernetes' YAML-to-JSON step rejects
  // them too, so leaving them as strings makes any numeric field fail loudly.
  return text;
}

namespace {

absl::StatusOr<nlohmann::json> NodeToJson(const YAML::Node& node, int depth) {
  if (depth > 200) {
    return absl::InvalidArgumentError("nesting deeper than 200 levels");
  }
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return nlohmann::json(nullptr);
    case YAML::NodeType::Scalar: {
      const std::string& tag = node.Tag();
      const std::string& text = node.Scalar();
      if (tag == "!" || tag == "tag:yaml.org,2002:str") {
        return nlohmann::json(text);  // quoted, or explicitly a string
      }
      if (tag == "?" || tag.empty()) {
        return ResolvePlainScalar(text);
      }
      if (tag == "tag:yaml.org,2002:int" || tag == "tag:yaml.org,2002:float" ||
          tag == "tag:yaml.org,2002:bool" || tag == "tag:yaml.org,2002:null") {
        return ResolvePlainScalar(text);
      }
      return absl::InvalidArgumentError(absl::StrCat("line ", node.Mark().line + 1,
                                                     ": unsupported YAML tag ", tag));
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json array = nlohmann::json::array();
      for (const YAML::Node& item : node) {
        absl::StatusOr<nlohmann::json> v = NodeToJson(item, depth + 1);
        if (!v.ok()) {
          return v.status();
        }
        array.push_back(*std::move(v));
      }
      return array;
    }
    case YAML::NodeType::Map: {
      nlohmann::json object = nlohmann::json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) {
          return absl::InvalidArgumentError(
              absl::StrCat("line ", kv.first.Mark().line + 1, ": map keys must be scalars"));
        }
        absl::StatusOr<nlohmann::json> v = NodeToJson(kv.second, depth + 1);
        if (!v.ok()) {
          return v.status();
        }
        const std::string& key = kv.first.Scalar();
        if (object.contains(key)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "line ", kv.first.Mark().line + 1, ": duplicate key \"", key, "\""));
        }
        object[key] = *std::move(v);
      }
      return object;
    }
  }
  return nlohmann::json(nullptr);
}

// Walks the YAML tree and its finished JSON conversion together, noting the
// text of plain scalars that did not become strings.
void RecordTexts(const YAML::Node& node, const nlohmann::json& json, ScalarTexts* texts) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      if (!json.is_string() && (node.Tag() == "?" || node.Tag().empty())) {
        (*texts)[&json] = node.Scalar();
      }
      return;
    case YAML::NodeType::Sequence: {
      size_t i = 0;
      for (const YAML::Node& item : node) {
        if (i < json.size()) {
          RecordTexts(item, json[i], texts);
        }
        ++i;
      }
      return;
    }
    case YAML::NodeType::Map:
      for (const auto& kv : node) {
        auto it = json.find(kv.first.Scalar());
        if (it != json.end()) {
          RecordTexts(kv.second, *it, texts);
        }
      }
      return;
    default:
      return;
  }
}

// Splits YAML text at document markers so that each document parses alone.
// Returns (first line number, text) pairs.
std::vector<std::pair<int, std::string>> SplitYamlDocuments(absl::string_view text) {
  std::vector<std::pair<int, std::string>> docs;
  std::string current;
  int current_start = 1;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    absl::string_view trimmed = absl::StripTrailingAsciiWhitespace(line);
    bool marker = trimmed == "---" || absl::StartsWith(trimmed, "--- ");
    if (marker) {
      docs.emplace_back(current_start, std::move(current));
      current.clear();
      current_start = line_no;
      if (trimmed.size() > 3) {
        // "--- {inline}" keeps its content; pad lines so marks stay right.
        absl::StrAppend(&current, trimmed.substr(4), "\n");
      } else {
        current.push_back('\n');
      }
      continue;
    }
    if (trimmed == "...") {
      continue;
    }
    absl::StrAppend(&current, line, "\n");
  }
  docs.emplace_back(current_start, std::move(current));
  return docs;
}

bool IsBlank(const std::string& yaml) {
  for (absl::string_view line : absl::StrSplit(yaml, '\n')) {
    absl::string_view t = absl::StripAsciiWhitespace(line);
    if (!t.empty() && t[0] != '#' && !absl::StartsWith(t, "%")) {
      return false;
    }
  }
  return true;
}

void AddObject(nlohmann::json object, const std::string& origin, ManifestDocuments* out) {
  if (object.is_null()) {
    return;  // an empty document
  }
  if (!object.is_object()) {
    out->errors.push_back(absl::StrCat(origin, ": a Kubernetes object must be a map"));
    return;
  }
  auto kind_it = object.find("kind");
  bool is_list = kind_it != object.end() && kind_it->is_string() &&
                 absl::EndsWith(kind_it->get<std::string>(), "List") &&
                 object.contains("items");
  if (!is_list) {
    out->objects.push_back({.object = std::move(object), .origin = origin});
    return;
  }
  const std::string list_kind = kind_it->get<std::string>();
  std::string item_kind = list_kind == "List" ? "" : list_kind.substr(0, list_kind.size() - 4);
  std::string api_version =
      object.contains("apiVersion") && object["apiVersion"].is_string()
          ? object["apiVersion"].get<std::string>()
          : "";
  nlohmann::json& items = object["items"];
  if (items.is_null()) {
    return;
  }
  if (!items.is_array()) {
    out->errors.push_back(absl::StrCat(origin, ": ", list_kind, ": items: must be a list"));
    return;
  }
  for (size_t i = 0; i < items.size(); ++i) {
    nlohmann::json item = std::move(items[i]);
    std::string item_origin = absl::StrCat(origin, ", items[", i, "]");
    if (item.is_object() && !item_kind.empty()) {
      // Typed lists (ServiceList from `kubectl get -o json`) omit the
      // envelope of their items.
      if (!item.contains("kind")) {
        item["kind"] = item_kind;
      }
      if (!item.contains("apiVersion") && !api_version.empty()) {
        item["apiVersion"] = api_version;
      }
    }
    AddObject(std::move(item), item_origin, out);
  }
}

}  // namespace

absl::StatusOr<nlohmann::json> YamlToJson(absl::string_view yaml_document,
                                          ScalarTexts* texts) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_document));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", e.mark.line + 1, ": ", e.msg));
  }
  try {
    absl::StatusOr<nlohmann::json> json = NodeToJson(root, 0);
    if (json.ok() && texts != nullptr) {
      // Children of an object or array live on the heap, so the addresses
      // recorded here survive every later move of the container.
      RecordTexts(root, *json, texts);
    }
    return json;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("line ", e.mark.line + 1, ": ", e.msg));
  }
}

ManifestDocuments ParseManifestText(absl::string_view text, absl::string_view source) {
  ManifestDocuments out;
  absl::string_view body = absl::StripLeadingAsciiWhitespace(text);
  if (!body.empty() && (body[0] == '{' || body[0] == '[')) {
    // JSON: one object or list (`kubectl get -o json` output).
    std::string origin = absl::StrCat(source, ": document 1");
    nlohmann::json value;
    try {
      value = nlohmann::json::parse(body.begin(), body.end());
    } catch (const nlohmann::json::exception& e) {
      out.errors.push_back(absl::StrCat(origin, ": invalid JSON: ", e.what()));
      return out;
    }
    if (value.is_array()) {
      for (size_t i = 0; i < value.size(); ++i) {
        AddObject(std::move(value[i]), absl::StrCat(origin, ", [", i, "]"), &out);
      }
    } else {
      AddObject(std::move(value), origin, &out);
    }
    return out;
  }
  auto texts = std::make_shared<ScalarTexts>();
  size_t first_new = 0;
  size_t doc = 0;
  for (auto& [first_line, yaml] : SplitYamlDocuments(text)) {
    if (IsBlank(yaml)) {
      continue;
    }
    ++doc;
    std::string origin = absl::StrCat(source, ": document ", doc);
    absl::StatusOr<nlohmann::json> value = YamlToJson(yaml, texts.get());
    if (!value.ok()) {
      out.errors.push_back(absl::StrCat(origin, " (from line ", first_line,
                                        "): invalid YAML: ", value.status().message()));
      continue;
    }
    AddObject(*std::move(value), origin, &out);
  }
  for (size_t i = first_new; i < out.objects.size(); ++i) {
    out.objects[i].scalar_texts = texts;
  }
  return out;
}

}  // namespace dpv2::agent::k8s
