#include "agent/k8s/names.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace dpv2::agent::k8s {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); }

bool IsDns1123Label(absl::string_view v) {
  if (v.empty() || v.size() > 63) {
    return false;
  }
  for (char c : v) {
    if (!IsLowerAlnum(c) && c != '-') {
      return false;
    }
  }
  return IsLowerAlnum(v.front()) && IsLowerAlnum(v.back());
}

}  // namespace

std::string Dns1123LabelError(absl::string_view value) {
  if (value.size() > 63) {
    return absl::StrCat("must be no more than 63 characters, got \"", value, "\"");
  }
  if (!IsDns1123Label(value)) {
    return absl::StrCat(
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
        "'-', and must start and end with an alphanumeric character, got \"",
        value, "\"");
  }
  return "";
}

std::string Dns1123SubdomainError(absl::string_view value) {
  if (value.size() > 253) {
    return absl::StrCat("must be no more than 253 characters, got \"", value, "\"");
  }
  bool ok = !value.empty();
  for (absl::string_view part : absl::StrSplit(value, '.')) {
    if (!IsDns1123Label(part)) {
      ok = false;
    }
  }
  if (!ok) {
    return absl::StrCat(
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
        "'-' or '.', and must start and end with an alphanumeric character, got \"",
        value, "\"");
  }
  return "";
}

std::string Dns1035LabelError(absl::string_view value) {
  std::string why = Dns1123LabelError(value);
  if (!why.empty()) {
    return why;
  }
  if (!(value.front() >= 'a' && value.front() <= 'z')) {
    return absl::StrCat(
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
        "with an alphabetic character, and end with an alphanumeric character, got \"",
        value, "\"");
  }
  return "";
}

std::string IanaSvcNameError(absl::string_view value) {
  if (value.empty() || value.size() > 15) {
    return absl::StrCat("must be no more than 15 characters, got \"", value, "\"");
  }
  bool has_letter = false;
  for (char c : value) {
    if (!IsLowerAlnum(c) && c != '-') {
      return absl::StrCat(
          "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-), got \"",
          value, "\"");
    }
    has_letter |= (c >= 'a' && c <= 'z');
  }
  if (!has_letter) {
    return absl::StrCat("must contain at least one letter (a-z), got \"", value, "\"");
  }
  if (value.front() == '-' || value.back() == '-' ||
      value.find("--") != absl::string_view::npos) {
    return absl::StrCat(
        "must not begin or end with a hyphen, nor contain adjacent hyphens, got \"", value,
        "\"");
  }
  return "";
}

std::string QualifiedNameError(absl::string_view value) {
  absl::string_view name = value;
  size_t slash = value.find('/');
  if (slash != absl::string_view::npos) {
    absl::string_view prefix = value.substr(0, slash);
    name = value.substr(slash + 1);
    if (prefix.empty() || !Dns1123SubdomainError(prefix).empty()) {
      return absl::StrCat("prefix part must be a DNS subdomain, got \"", value, "\"");
    }
  }
  bool ok = !name.empty() && name.size() <= 63 && IsAlnum(name.front()) &&
            IsAlnum(name.back());
  for (char c : name) {
    ok = ok && (IsAlnum(c) || c == '-' || c == '_' || c == '.');
  }
  if (!ok) {
    return absl::StrCat(
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
        "and end with an alphanumeric character (at most 63), got \"",
        value, "\"");
  }
  return "";
}

std::string LabelValueError(absl::string_view value) {
  if (value.empty()) {
    return "";
  }
  bool ok = value.size() <= 63 && IsAlnum(value.front()) && IsAlnum(value.back());
  for (char c : value) {
    ok = ok && (IsAlnum(c) || c == '-' || c == '_' || c == '.');
  }
  if (!ok) {
    return absl::StrCat(
        "a valid label value must be 63 characters or less and must be empty or begin and "
        "end with an alphanumeric character with '-', '_' or '.' between, got \"",
        value, "\"");
  }
  return "";
}

}  // namespace dpv2::agent::k8s
