#include "agent/k8s/json_field.h"

#include "absl/strings/str_cat.h"

namespace dpv2::agent::k8s {
namespace {

absl::string_view TypeName(const nlohmann::json& v) {
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

std::string DescribeValue(const nlohmann::json& value) {
  if (value.is_string()) {
    return nlohmann::json(value.get<std::string>()).dump();
  }
  std::string text = value.dump();
  if (text.size() > 60) {
    text = text.substr(0, 57) + "...";
  }
  return text;
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
  JsonField child(value, base_, errors_, texts_);
  child.steps_.reserve(steps_.size() + 1);
  child.steps_.assign(steps_.begin(), steps_.end());
  child.steps_.push_back(step);
  return child;
}

JsonField JsonField::operator[](absl::string_view key) const {
  const Step step{.key = key, .kind = Step::Kind::kMember};
  if (!present()) {
    return Child(nullptr, step);
  }
  if (!value_->is_object()) {
    // FieldErrors drops repeats, so this is reported once however many
    // children are read.
    Fail(absl::StrCat("must be an object, got ", TypeName(*value_)));
    return Child(nullptr, step);
  }
  // The object's comparator is std::less<>: no key string is built.
  auto it = value_->find(std::string_view(key.data(), key.size()));
  if (it == value_->end()) {
    return Child(nullptr, step);
  }
  return Child(&*it, step);
}

std::vector<JsonField> JsonField::Items() const {
  std::vector<JsonField> items;
  if (!present()) {
    return items;
  }
  if (!value_->is_array()) {
    Fail(absl::StrCat("must be a list, got ", TypeName(*value_)));
    return items;
  }
  items.reserve(value_->size());
  for (size_t i = 0; i < value_->size(); ++i) {
    items.push_back(
        Child(&(*value_)[i], {.index = static_cast<uint32_t>(i), .kind = Step::Kind::kItem}));
  }
  return items;
}

std::optional<std::string> JsonField::String() const {
  if (!present()) {
    return std::nullopt;
  }
  if (!value_->is_string()) {
    if (texts_ != nullptr) {
      if (auto it = texts_->find(value_); it != texts_->end()) {
        return it->second;
      }
    }
    Fail(absl::StrCat("must be a string, got ", DescribeValue(*value_),
                      " (quote it in YAML)"));
    return std::nullopt;
  }
  return value_->get<std::string>();
}

std::optional<int64_t> JsonField::Int() const {
  if (!present()) {
    return std::nullopt;
  }
  if (value_->is_number_integer()) {
    if (value_->is_number_unsigned()) {
      uint64_t u = value_->get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) {
        Fail(absl::StrCat("integer out of range, got ", DescribeValue(*value_)));
        return std::nullopt;
      }
      return static_cast<int64_t>(u);
    }
    return value_->get<int64_t>();
  }
  Fail(absl::StrCat("must be an integer, got ", DescribeValue(*value_)));
  return std::nullopt;
}

std::optional<bool> JsonField::Bool() const {
  if (!present()) {
    return std::nullopt;
  }
  if (!value_->is_boolean()) {
    Fail(absl::StrCat("must be true or false, got ", DescribeValue(*value_)));
    return std::nullopt;
  }
  return value_->get<bool>();
}

std::map<std::string, std::string> JsonField::StringMap() const {
  std::map<std::string, std::string> out;
  if (!present()) {
    return out;
  }
  if (!value_->is_object()) {
    Fail(absl::StrCat("must be a map of strings, got ", TypeName(*value_)));
    return out;
  }
  for (auto it = value_->begin(); it != value_->end(); ++it) {
    const JsonField item = Child(&it.value(), {.key = it.key(), .kind = Step::Kind::kMapKey});
    if (it.value().is_null()) {
      out[it.key()] = "";
      continue;
    }
    if (std::optional<std::string> s = item.String()) {
      out[it.key()] = *s;
    }
  }
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

void JsonField::Fail(absl::string_view message) const { errors_->Add(path(), message); }

void JsonField::FailRequired() const { errors_->Add(path(), "Required value"); }

}  // namespace dpv2::agent::k8s
