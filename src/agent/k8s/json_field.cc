#include "agent/k8s/json_field.h"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "simdjson.h"

namespace dpv2::agent::k8s {
namespace {

using Tree = nlohmann::json;
using Element = simdjson::dom::element;
using ElementType = simdjson::dom::element_type;

static_assert(std::is_trivially_copyable_v<Element>);
static_assert(sizeof(Element) <= 16 && alignof(Element) <= 8);

absl::string_view View(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// The container an element is (its type checked), by value: a range-for
// over get_object().value_unsafe() would outlive the temporary result.
simdjson::dom::object ObjectOf(const Element& v) { return v.get_object().value_unsafe(); }
simdjson::dom::array ListOf(const Element& v) { return v.get_array().value_unsafe(); }

// What the cursor asks of a value, for either backing. Null values never
// get here (they are absent).

bool IsObject(const Tree& v) { return v.is_object(); }
bool IsObject(const Element& v) { return v.type() == ElementType::OBJECT; }

bool IsList(const Tree& v) { return v.is_array(); }
bool IsList(const Element& v) { return v.type() == ElementType::ARRAY; }

size_t ListSize(const Tree& v) { return v.size(); }
size_t ListSize(const Element& v) { return ListOf(v).size(); }

absl::string_view TypeName(const Tree& v) {
  if (v.is_object()) {
    return "an object";
  }
  if (v.is_array()) {
    return "a list";
  }
  if (v.is_string()) {
    return "a string";
  }
  if (v.is_boolean()) {
    return "a boolean";
  }
  if (v.is_number()) {
    return "a number";
  }
  return "null";
}

absl::string_view TypeName(const Element& v) {
  switch (v.type()) {
    case ElementType::OBJECT:
      return "an object";
    case ElementType::ARRAY:
      return "a list";
    case ElementType::STRING:
      return "a string";
    case ElementType::BOOL:
      return "a boolean";
    case ElementType::INT64:
    case ElementType::UINT64:
    case ElementType::DOUBLE:
      return "a number";
    case ElementType::NULL_VALUE:
      break;
  }
  return "null";
}

std::optional<absl::string_view> StringOf(const Tree& v) {
  if (!v.is_string()) {
    return std::nullopt;
  }
  return absl::string_view(v.get_ref<const std::string&>());
}

std::optional<absl::string_view> StringOf(const Element& v) {
  std::string_view s;
  if (v.get_string().get(s) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  return View(s);
}

// The YAML text of an unquoted scalar that is not a JSON string, if any.
const std::string* ScalarText(const ScalarTexts* texts, const Tree& v) {
  if (texts == nullptr) {
    return nullptr;
  }
  auto it = texts->find(&v);
  return it == texts->end() ? nullptr : &it->second;
}

const std::string* ScalarText(const ScalarTexts*, const Element&) { return nullptr; }

std::optional<bool> BoolOf(const Tree& v) {
  if (!v.is_boolean()) {
    return std::nullopt;
  }
  return v.get<bool>();
}

std::optional<bool> BoolOf(const Element& v) {
  bool b = false;
  if (v.get_bool().get(b) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  return b;
}

// A whole JSON number, which may lie above INT64_MAX (`too_big`).
struct Integer {
  bool whole = false;
  bool too_big = false;
  int64_t value = 0;
};

Integer IntegerOf(const Tree& v) {
  if (!v.is_number_integer()) {
    return {};
  }
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    return {.whole = true, .too_big = true};
  }
  return {.whole = true, .value = v.get<int64_t>()};
}

Integer IntegerOf(const Element& v) {
  switch (v.type()) {
    case ElementType::INT64:
      return {.whole = true, .value = v.get_int64().value_unsafe()};
    case ElementType::UINT64:  // only those above INT64_MAX
      return {.whole = true, .too_big = true};
    default:
      return {};
  }
}

// The element as an nlohmann tree, for error messages, which then render
// it exactly as they render the tree backing's values.
Tree ToTree(const Element& v) {
  switch (v.type()) {
    case ElementType::ARRAY: {
      Tree out = Tree::array();
      for (Element item : ListOf(v)) {
        out.push_back(ToTree(item));
      }
      return out;
    }
    case ElementType::OBJECT: {
      Tree out = Tree::object();
      for (simdjson::dom::key_value_pair field : ObjectOf(v)) {
        out[std::string(field.key)] = ToTree(field.value);
      }
      return out;
    }
    case ElementType::INT64:
      return v.get_int64().value_unsafe();
    case ElementType::UINT64:
      return v.get_uint64().value_unsafe();
    case ElementType::DOUBLE:
      return v.get_double().value_unsafe();
    case ElementType::STRING:
      return std::string(v.get_string().value_unsafe());
    case ElementType::BOOL:
      return v.get_bool().value_unsafe();
    case ElementType::NULL_VALUE:
      break;
  }
  return nullptr;
}

// A value for an error message: strings quoted, others as JSON (objects with
// their keys sorted), cut at 60 characters.
std::string DescribeOf(const Tree& v) {
  if (v.is_string()) {
    return Tree(v.get<std::string>()).dump();
  }
  std::string text = v.dump();
  if (text.size() > 60) {
    text = text.substr(0, 57) + "...";
  }
  return text;
}

std::string DescribeOf(const Element& v) { return DescribeOf(ToTree(v)); }

// A member of an object, or null.
const Tree* Member(const Tree& object, absl::string_view key) {
  // The object's comparator is std::less<>: no key string is built.
  auto it = object.find(std::string_view(key.data(), key.size()));
  return it == object.end() ? nullptr : &*it;
}

// The last of repeated keys wins, as in the tree (and in Go's decoder).
std::optional<Element> Member(const Element& object, absl::string_view key) {
  const std::string_view wanted(key.data(), key.size());
  std::optional<Element> found;
  for (simdjson::dom::key_value_pair field : ObjectOf(object)) {
    if (field.key == wanted) {
      found = field.value;
    }
  }
  return found;
}

const Tree* AsPointer(const Tree* v) { return v; }
const Element* AsPointer(const std::optional<Element>& v) { return v ? &*v : nullptr; }

template <typename Fn>
void ForEachItem(const Tree& list, Fn&& fn) {
  for (size_t i = 0; i < list.size(); ++i) {
    fn(static_cast<uint32_t>(i), list[i]);
  }
}

template <typename Fn>
void ForEachItem(const Element& list, Fn&& fn) {
  uint32_t i = 0;
  for (Element item : ListOf(list)) {
    fn(i++, item);
  }
}

// fn(key, value) in key order, the last of repeated keys only: the tree's
// order, so that both backings report errors alike.
template <typename Fn>
void ForEachMember(const Tree& object, Fn&& fn) {
  for (auto it = object.begin(); it != object.end(); ++it) {
    fn(absl::string_view(it.key()), it.value());
  }
}

template <typename Fn>
void ForEachMember(const Element& object, Fn&& fn) {
  absl::InlinedVector<std::pair<std::string_view, Element>, 8> fields;
  for (simdjson::dom::key_value_pair field : ObjectOf(object)) {
    fields.emplace_back(field.key, field.value);
  }
  std::stable_sort(fields.begin(), fields.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i + 1 == fields.size() || fields[i + 1].first != fields[i].first) {
      fn(View(fields[i].first), fields[i].second);
    }
  }
}

}  // namespace

void FieldErrors::Add(absl::string_view path, absl::string_view message) {
  std::string text = absl::StrCat(path, ": ", message);
  for (const std::string& m : messages_) {
    if (m == text) {
      return;
    }
  }
  messages_.push_back(std::move(text));
}

JsonField::JsonField(const nlohmann::json* value, std::string path, FieldErrors* errors,
                     const ScalarTexts* texts)
    : JsonField(std::move(path), errors, texts) {
  SetTree(value);
}

JsonField::JsonField(const simdjson::dom::element& value, std::string path, FieldErrors* errors)
    : JsonField(std::move(path), errors, nullptr) {
  SetElement(value);
}

void JsonField::SetTree(const nlohmann::json* value) {
  if (value != nullptr && !value->is_null()) {
    backing_ = Backing::kTree;
    tree_ = value;
  }
}

void JsonField::SetElement(const simdjson::dom::element& value) {
  if (!value.is_null()) {
    backing_ = Backing::kElement;
    std::memcpy(element_.bytes, &value, sizeof(Element));
  }
}

simdjson::dom::element JsonField::element() const {
  Element value;
  std::memcpy(&value, element_.bytes, sizeof(Element));
  return value;
}

template <typename Fn>
auto JsonField::Visit(Fn&& fn) const {
  if (backing_ == Backing::kTree) {
    return fn(*tree_);
  }
  return fn(element());
}

std::string JsonField::path() const {
  std::string out = base_;
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Step::Kind::kMember:
        absl::StrAppend(&out, out.empty() ? "" : ".", step.key);
        break;
      case Step::Kind::kItem:
        absl::StrAppend(&out, "[", step.index, "]");
        break;
      case Step::Kind::kMapKey:
        absl::StrAppend(&out, "[", step.key, "]");
        break;
    }
  }
  return out;
}

JsonField JsonField::Child(const nlohmann::json* value, Step step) const {
  JsonField child(base_, errors_, texts_);
  child.SetTree(value);
  child.steps_.reserve(steps_.size() + 1);
  child.steps_.assign(steps_.begin(), steps_.end());
  child.steps_.push_back(step);
  return child;
}

JsonField JsonField::Child(const simdjson::dom::element* value, Step step) const {
  JsonField child = Child(static_cast<const nlohmann::json*>(nullptr), step);
  if (value != nullptr) {
    child.SetElement(*value);
  }
  return child;
}

bool JsonField::is_object() const {
  return present() && Visit([](const auto& v) { return IsObject(v); });
}

bool JsonField::is_list() const {
  return present() && Visit([](const auto& v) { return IsList(v); });
}

bool JsonField::is_empty_list() const {
  return present() && Visit([](const auto& v) { return IsList(v) && ListSize(v) == 0; });
}

JsonField JsonField::operator[](absl::string_view key) const {
  const Step step{.key = key, .kind = Step::Kind::kMember};
  if (!present()) {
    return Child(static_cast<const nlohmann::json*>(nullptr), step);
  }
  return Visit([&](const auto& v) {
    if (!IsObject(v)) {
      // FieldErrors drops repeats, so this is reported once however many
      // children are read.
      Fail(absl::StrCat("must be an object, got ", TypeName(v)));
      return Child(static_cast<const nlohmann::json*>(nullptr), step);
    }
    return Child(AsPointer(Member(v, key)), step);
  });
}

std::vector<JsonField> JsonField::Items() const {
  std::vector<JsonField> items;
  if (!present()) {
    return items;
  }
  Visit([&](const auto& v) {
    if (!IsList(v)) {
      Fail(absl::StrCat("must be a list, got ", TypeName(v)));
      return;
    }
    items.reserve(ListSize(v));
    ForEachItem(v, [&](uint32_t i, const auto& item) {
      items.push_back(Child(&item, {.index = i, .kind = Step::Kind::kItem}));
    });
  });
  return items;
}

std::optional<std::string> JsonField::String() const {
  if (!present()) {
    return std::nullopt;
  }
  return Visit([&](const auto& v) -> std::optional<std::string> {
    if (std::optional<absl::string_view> s = StringOf(v)) {
      return std::string(*s);
    }
    if (const std::string* text = ScalarText(texts_, v)) {
      return *text;
    }
    Fail(absl::StrCat("must be a string, got ", DescribeOf(v), " (quote it in YAML)"));
    return std::nullopt;
  });
}

std::optional<int64_t> JsonField::Int() const {
  if (!present()) {
    return std::nullopt;
  }
  return Visit([&](const auto& v) -> std::optional<int64_t> {
    const Integer n = IntegerOf(v);
    if (!n.whole) {
      Fail(absl::StrCat("must be an integer, got ", DescribeOf(v)));
      return std::nullopt;
    }
    if (n.too_big) {
      Fail(absl::StrCat("integer out of range, got ", DescribeOf(v)));
      return std::nullopt;
    }
    return n.value;
  });
}

std::optional<bool> JsonField::Bool() const {
  if (!present()) {
    return std::nullopt;
  }
  return Visit([&](const auto& v) -> std::optional<bool> {
    std::optional<bool> b = BoolOf(v);
    if (!b) {
      Fail(absl::StrCat("must be true or false, got ", DescribeOf(v)));
    }
    return b;
  });
}

std::map<std::string, std::string> JsonField::StringMap() const {
  std::map<std::string, std::string> out;
  if (!present()) {
    return out;
  }
  Visit([&](const auto& v) {
    if (!IsObject(v)) {
      Fail(absl::StrCat("must be a map of strings, got ", TypeName(v)));
      return;
    }
    ForEachMember(v, [&](absl::string_view key, const auto& value) {
      const JsonField item = Child(&value, {.key = key, .kind = Step::Kind::kMapKey});
      if (!item.present()) {
        out.emplace_hint(out.end(), std::string(key), "");
      } else if (std::optional<std::string> s = item.String()) {
        out.emplace_hint(out.end(), std::string(key), std::move(*s));
      }
    });
  });
  return out;
}

std::vector<std::string> JsonField::StringList() const {
  std::vector<std::string> out;
  for (const JsonField& item : Items()) {
    if (std::optional<std::string> s = item.String()) {
      out.push_back(*s);
    } else if (!item.present()) {
      item.Fail("must be a string, got null");
    }
  }
  return out;
}

std::optional<int64_t> JsonField::PeekInt() const {
  if (!present()) {
    return std::nullopt;
  }
  return Visit([](const auto& v) -> std::optional<int64_t> {
    const Integer n = IntegerOf(v);
    if (!n.whole) {
      return std::nullopt;
    }
    return n.too_big ? INT64_MAX : n.value;
  });
}

std::optional<absl::string_view> JsonField::PeekString() const {
  if (!present()) {
    return std::nullopt;
  }
  return Visit([](const auto& v) { return StringOf(v); });
}

std::string JsonField::Describe() const {
  if (!present()) {
    return "null";
  }
  return Visit([](const auto& v) { return DescribeOf(v); });
}

void JsonField::Fail(absl::string_view message) const { errors_->Add(path(), message); }

void JsonField::FailRequired() const { errors_->Add(path(), "Required value"); }

}  // namespace dpv2::agent::k8s
