#include "agent/k8s/decode_fields.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/k8s/names.h"

namespace dpv2::agent::k8s {

ObjectMeta DecodeObjectMeta(const JsonField& metadata, bool namespaced) {
  ObjectMeta meta;
  if (!metadata.present()) {
    metadata.FailRequired();
    return meta;
  }
  JsonField name = metadata["name"];
  if (std::optional<std::string> n = name.String()) {
    meta.name = *n;
    if (std::string why = Dns1123SubdomainError(*n); !why.empty()) {
      name.Fail(why);
    }
  } else if (!name.present()) {
    if (metadata["generateName"].present()) {
      name.Fail("Required value: generateName needs the API server; set a name");
    } else {
      name.FailRequired();
    }
  }
  if (namespaced) {
    JsonField ns = metadata["namespace"];
    meta.namespace_name = ns.String().value_or("");
    if (meta.namespace_name.empty()) {
      meta.namespace_name = "default";
    } else if (std::string why = Dns1123LabelError(meta.namespace_name); !why.empty()) {
      ns.Fail(why);
    }
  }
  JsonField labels = metadata["labels"];
  meta.labels = labels.StringMap();
  for (const auto& [k, v] : meta.labels) {
    if (std::string why = QualifiedNameError(k); !why.empty()) {
      labels.Fail(why);
    }
    if (std::string why = LabelValueError(v); !why.empty()) {
      JsonField(nullptr, absl::StrCat(labels.path(), "[", k, "]"), labels.errors()).Fail(why);
    }
  }
  JsonField annotations = metadata["annotations"];
  meta.annotations = annotations.StringMap();
  for (const auto& [k, v] : meta.annotations) {
    if (std::string why = QualifiedNameError(k); !why.empty()) {
      annotations.Fail(why);
    }
  }
  return meta;
}

LabelSelector DecodeLabelSelector(const JsonField& field) {
  LabelSelector selector;
  if (!field.present()) {
    return selector;
  }
  JsonField labels = field["matchLabels"];
  selector.match_labels = labels.StringMap();
  for (const auto& [k, v] : selector.match_labels) {
    if (std::string why = QualifiedNameError(k); !why.empty()) {
      labels.Fail(why);
    }
    if (std::string why = LabelValueError(v); !why.empty()) {
      JsonField(nullptr, absl::StrCat(labels.path(), "[", k, "]"), labels.errors()).Fail(why);
    }
  }
  for (const JsonField& expr : field["matchExpressions"].Items()) {
    LabelSelectorRequirement req;
    JsonField key = expr["key"];
    if (std::optional<std::string> k = key.String()) {
      req.key = *k;
      if (std::string why = QualifiedNameError(*k); !why.empty()) {
        key.Fail(why);
      }
    } else if (!key.present()) {
      key.FailRequired();
    }
    JsonField op = expr["operator"];
    std::optional<std::string> op_text =
        DecodeEnum(op, {"In", "NotIn", "Exists", "DoesNotExist"});
    if (op_text) {
      req.op = *ParseLabelSelectorOperator(*op_text);
    } else if (!op.present()) {
      op.FailRequired();
    }
    JsonField values = expr["values"];
    req.values = values.StringList();
    if (op_text) {
      bool needs_values = req.op == LabelSelectorOperator::kIn ||
                          req.op == LabelSelectorOperator::kNotIn;
      if (needs_values && req.values.empty()) {
        values.Fail(absl::StrCat("Required value: must be specified when `operator` is '",
                                 *op_text, "'"));
      }
      if (!needs_values && !req.values.empty()) {
        values.Fail(absl::StrCat("Forbidden: may not be specified when `operator` is '",
                                 *op_text, "'"));
      }
    }
    for (size_t i = 0; i < req.values.size(); ++i) {
      if (std::string why = LabelValueError(req.values[i]); !why.empty()) {
        JsonField(nullptr, absl::StrCat(values.path(), "[", i, "]"), values.errors()).Fail(why);
      }
    }
    selector.match_expressions.push_back(std::move(req));
  }
  return selector;
}

std::optional<std::string> DecodeEnum(const JsonField& field,
                                      std::initializer_list<const char*> allowed) {
  std::optional<std::string> text = field.String();
  if (!text) {
    return std::nullopt;
  }
  for (const char* a : allowed) {
    if (*text == a) {
      return text;
    }
  }
  std::vector<std::string> quoted;
  for (const char* a : allowed) {
    quoted.push_back(absl::StrCat("\"", a, "\""));
  }
  field.Fail(absl::StrCat("Unsupported value: \"", *text,
                          "\": supported values: ", absl::StrJoin(quoted, ", ")));
  return std::nullopt;
}

L4Proto DecodeProtocol(const JsonField& field) {
  std::optional<std::string> text = DecodeEnum(field, {"TCP", "UDP", "SCTP"});
  if (!text || *text == "TCP") {
    return L4Proto::kTCP;
  }
  return *text == "UDP" ? L4Proto::kUDP : L4Proto::kSCTP;
}

std::optional<int64_t> DecodeIntInRange(const JsonField& field, int64_t lo, int64_t hi) {
  std::optional<int64_t> v = field.Int();
  if (!v) {
    return std::nullopt;
  }
  if (*v < lo || *v > hi) {
    field.Fail(absl::StrCat("must be between ", lo, " and ", hi, ", inclusive, got ", *v));
    return std::nullopt;
  }
  return v;
}

std::optional<uint16_t> DecodePort(const JsonField& field) {
  std::optional<int64_t> v = DecodeIntInRange(field, 1, 65535);
  if (!v) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(*v);
}

std::optional<IpAddr> DecodeIp(const JsonField& field) {
  std::optional<std::string> text = field.String();
  if (!text) {
    return std::nullopt;
  }
  absl::StatusOr<IpAddr> ip = IpAddr::Parse(*text);
  if (!ip.ok()) {
    field.Fail(absl::StrCat("must be a valid IP address, got \"", *text, "\""));
    return std::nullopt;
  }
  return *ip;
}

std::optional<IntOrString> DecodeIntOrStringPort(const JsonField& field) {
  if (!field.present()) {
    return std::nullopt;
  }
  if (std::optional<int64_t> n = field.PeekInt()) {
    if (*n < 1 || *n > 65535) {
      field.Fail(absl::StrCat("must be 1-65535 or a name, got ", field.Describe()));
      return std::nullopt;
    }
    return IntOrString(static_cast<int32_t>(*n));
  }
  if (std::optional<absl::string_view> s = field.PeekString()) {
    if (std::string why = IanaSvcNameError(*s); !why.empty()) {
      field.Fail(absl::StrCat("must be 1-65535 or a name, got ", field.Describe()));
      return std::nullopt;
    }
    return IntOrString(std::string(*s));
  }
  field.Fail(absl::StrCat("must be 1-65535 or a name, got ", field.Describe()));
  return std::nullopt;
}

}  // namespace dpv2::agent::k8s
