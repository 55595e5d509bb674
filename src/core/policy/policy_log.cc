// GKE policy logging: record format, delegation, deny aggregation, rate
// limit and the rotating file.
#include "dpv2/policy_log.h"

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace dpv2 {
namespace {

void AppendJsonString(std::string* out, absl::string_view s) {
  out->push_back('"');
  for (char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

// Appends ,"key":"value" (or without the comma first) when value is non-empty.
void Field(std::string* out, bool* first, absl::string_view key, absl::string_view value) {
  if (value.empty()) {
    return;
  }
  if (!*first) {
    out->push_back(',');
  }
  *first = false;
  AppendJsonString(out, key);
  out->push_back(':');
  AppendJsonString(out, value);
}

void AppendEndpoint(std::string* out, const PolicyLogEndpoint& e) {
  out->push_back('{');
  bool first = true;
  Field(out, &first, "pod_name", e.pod_name);
  Field(out, &first, "node_name", e.node_name);
  Field(out, &first, "workload_kind", e.workload_kind);
  Field(out, &first, "workload_name", e.workload_name);
  Field(out, &first, "pod_namespace", e.pod_namespace);
  Field(out, &first, "namespace", e.namespace_name);
  Field(out, &first, "instance", e.instance);
  out->push_back('}');
}

bool AnnotatedTrue(const Labels* annotations, absl::string_view key) {
  if (annotations == nullptr) {
    return false;
  }
  auto it = annotations->find(std::string(key));
  return it != annotations->end() && it->second == "true";
}

}  // namespace

absl::Status ValidateNetworkLogging(const NetworkLogging& config) {
  const std::string object = absl::StrCat("networklogging ", config.metadata.name);
  if (config.metadata.name != "default") {
    return absl::InvalidArgumentError(
        absl::StrCat(object, ": metadata.name must be \"default\" (the singleton)"));
  }
  if (config.spec.cluster.allow.delegate && !config.spec.cluster.allow.log) {
    return absl::InvalidArgumentError(
        absl::StrCat(object, ": spec.cluster.allow.delegate needs log: true"));
  }
  if (config.spec.cluster.deny.delegate && !config.spec.cluster.deny.log) {
    return absl::InvalidArgumentError(
        absl::StrCat(object, ": spec.cluster.deny.delegate needs log: true"));
  }
  return absl::OkStatus();
}

std::string FormatPolicyLogRecord(const PolicyLogRecord& r) {
  std::string out;
  out.reserve(512);
  out.append("{\"connection\":{\"src_ip\":");
  AppendJsonString(&out, r.src_ip.ToString());
  out.append(",\"dest_ip\":");
  AppendJsonString(&out, r.dest_ip.ToString());
  absl::StrAppend(&out, ",\"src_port\":", r.src_port, ",\"dest_port\":", r.dest_port,
                  ",\"protocol\":");
  AppendJsonString(&out, absl::AsciiStrToLower(L4ProtoName(r.protocol)));
  out.append(",\"direction\":");
  AppendJsonString(&out, r.egress ? "egress" : "ingress");
  out.append("},\"disposition\":");
  AppendJsonString(&out, r.allowed ? "allow" : "deny");
  if (r.allowed && !r.policies.empty()) {
    out.append(",\"policies\":[");
    for (size_t i = 0; i < r.policies.size(); ++i) {
      if (i > 0) {
        out.push_back(',');
      }
      out.push_back('{');
      bool first = true;
      Field(&out, &first, "kind", PolicyKindName(r.policies[i].kind));
      Field(&out, &first, "name", r.policies[i].name);
      Field(&out, &first, "namespace", r.policies[i].namespace_name);
      out.push_back('}');
    }
    out.push_back(']');
  }
  out.append(",\"src\":");
  AppendEndpoint(&out, r.src);
  out.append(",\"dest\":");
  AppendEndpoint(&out, r.dest);
  absl::StrAppend(&out, ",\"count\":", r.count);
  if (!r.node_name.empty()) {
    out.append(",\"node_name\":");
    AppendJsonString(&out, r.node_name);
  }
  out.append(",\"timestamp\":");
  AppendJsonString(&out, absl::FormatTime("%Y-%m-%dT%H:%M:%E9SZ", r.timestamp, absl::UTCTimeZone()));
  out.push_back('}');
  return out;
}

bool LogRateLimiter::Allow(absl::Time at) {
  if (!last_) {
    last_ = at;
  } else if (at > *last_) {
    tokens_ += absl::ToDoubleSeconds(at - *last_) * per_second_;
    if (tokens_ > 1.0) {
      tokens_ = 1.0;  // no burst
    }
    last_ = at;
  }
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return true;
  }
  return false;
}

absl::StatusOr<std::unique_ptr<RotatingLogFile>> RotatingLogFile::Open(std::string path,
                                                                       uint64_t max_bytes,
                                                                       int max_backups) {
  if (path.empty()) {
    return absl::InvalidArgumentError("policy log file: path is empty");
  }
  if (max_bytes == 0 || max_backups < 0) {
    return absl::InvalidArgumentError(absl::StrCat("policy log file ", path,
                                                   ": max_bytes must be > 0, max_backups >= 0"));
  }
  std::unique_ptr<RotatingLogFile> f(new RotatingLogFile(std::move(path), max_bytes, max_backups));
  if (absl::Status s = f->Reopen(); !s.ok()) {
    return s;
  }
  return f;
}

RotatingLogFile::~RotatingLogFile() {
  if (file_ != nullptr) {
    std::fclose(file_);
  }
}

absl::Status RotatingLogFile::Reopen() {
  if (file_ != nullptr) {
    std::fclose(file_);
  }
  file_ = std::fopen(path_.c_str(), "a");
  if (file_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("policy log file ", path_, ": open: ", std::strerror(errno)));
  }
  std::fseek(file_, 0, SEEK_END);
  const long size = std::ftell(file_);
  size_ = size > 0 ? static_cast<uint64_t>(size) : 0;
  return absl::OkStatus();
}

absl::Status RotatingLogFile::Rotate() {
  std::fclose(file_);
  file_ = nullptr;
  if (max_backups_ == 0) {
    std::remove(path_.c_str());
  } else {
    std::remove(absl::StrCat(path_, ".", max_backups_).c_str());
    for (int i = max_backups_ - 1; i >= 1; --i) {
      std::rename(absl::StrCat(path_, ".", i).c_str(), absl::StrCat(path_, ".", i + 1).c_str());
    }
    if (std::rename(path_.c_str(), absl::StrCat(path_, ".1").c_str()) != 0) {
      return absl::UnavailableError(
          absl::StrCat("policy log file ", path_, ": rotate: ", std::strerror(errno)));
    }
  }
  return Reopen();
}

absl::Status RotatingLogFile::WriteLine(absl::string_view line) {
  const uint64_t n = line.size() + 1;
  if (size_ > 0 && size_ + n > max_bytes_) {
    if (absl::Status s = Rotate(); !s.ok()) {
      return s;
    }
  }
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() ||
      std::fputc('\n', file_) == EOF || std::fflush(file_) != 0) {
    return absl::UnavailableError(
        absl::StrCat("policy log file ", path_, ": write: ", std::strerror(errno)));
  }
  size_ += n;
  return absl::OkStatus();
}

PolicyLogger::PolicyLogger(PolicyLoggerOptions options, const PolicyState* state, Sink sink)
    : options_(std::move(options)),
      state_(state),
      sink_(std::move(sink)),
      limiter_(options_.max_log_rate),
      wall_offset_(options_.clock() - DatapathNow()) {}

absl::Time PolicyLogger::DatapathNow() const {
  uint64_t ns;
  if (options_.datapath_clock) {
    ns = options_.datapath_clock();
  } else {
    ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
  }
  return absl::FromUnixNanos(static_cast<int64_t>(ns));
}

absl::Time PolicyLogger::EventTime(uint64_t timestamp_ns, absl::Time now) {
  // Compared as unsigned first: a stamp beyond int64 must not wrap into the past.
  const uint64_t now_ns = static_cast<uint64_t>(absl::ToUnixNanos(now));
  if (timestamp_ns > now_ns ||
      absl::Nanoseconds(now_ns - timestamp_ns) > options_.max_event_age) {
    ++stats_.bad_timestamps;
    return now;
  }
  return absl::FromUnixNanos(static_cast<int64_t>(timestamp_ns));
}

absl::Status PolicyLogger::SetConfig(const NetworkLogging& config) {
  if (absl::Status s = ValidateNetworkLogging(config); !s.ok()) {
    return s;
  }
  config_ = config.spec;
  return absl::OkStatus();
}

void PolicyLogger::ClearConfig() { config_.reset(); }

PolicyLogEndpoint PolicyLogger::Describe(const IpAddr& ip) const {
  PolicyLogEndpoint e;
  if (const std::optional<HeldPod> pod = state_->FindPodByIp(ip)) {
    e.pod_name = std::string(pod->name);
    e.workload_kind = std::string(pod->workload_kind);
    e.workload_name = std::string(pod->workload_name);
    e.pod_namespace = std::string(pod->namespace_name);
    e.namespace_name = std::string(pod->namespace_name);
    return e;
  }
  if (const NodeInfo* node = state_->FindNodeByIp(ip); node != nullptr) {
    e.node_name = node->name;
    e.workload_kind = "Node";
    return e;
  }
  e.instance = ip.ToString();
  return e;
}

void PolicyLogger::Emit(const PolicyLogRecord& record, absl::Time at) {
  if (!limiter_.Allow(at)) {
    ++stats_.dropped_rate_limit;
    return;
  }
  ++stats_.logged;
  sink_(FormatPolicyLogRecord(record));
}

void PolicyLogger::Handle(const FlowEvent& ev) {
  if (ev.type != DPV2_EVENT_POLICY_VERDICT) {
    return;
  }
  const absl::Time at = EventTime(ev.timestamp_ns, DatapathNow());
  EmitWindowsEndedBy(at);
  const bool allowed = (ev.flags & DPV2_EV_F_ALLOWED) != 0;
  const bool egress = (ev.flags & DPV2_EV_F_EGRESS) != 0;
  if (!config_) {
    ++stats_.not_logged;
    return;
  }
  const NetworkLoggingAction& action = allowed ? config_->cluster.allow : config_->cluster.deny;
  if (!action.log) {
    ++stats_.not_logged;
    return;
  }
  PolicyLogRecord r{.src_ip = ev.tuple.src,
                    .dest_ip = ev.tuple.dst,
                    .src_port = ev.tuple.sport,
                    .dest_port = ev.tuple.dport,
                    .protocol = ev.tuple.proto,
                    .egress = egress,
                    .allowed = allowed};
  if (allowed) {
    const std::vector<PolicyRef>* refs = state_->MatchPolicies(ev.policy_match_id);
    if (refs == nullptr || refs->empty()) {
      ++stats_.not_logged;  // allowed with no policy: never logged
      return;
    }
    for (const PolicyRef& ref : *refs) {
      if (action.delegate) {
        if (ref.kind != PolicyRef::Kind::kNetworkPolicy ||
            !AnnotatedTrue(state_->NetworkPolicyAnnotations(ref.namespace_name, ref.name),
                           kEnableLoggingAnnotation)) {
          continue;
        }
      }
      r.policies.push_back(ref);
    }
    if (r.policies.empty()) {
      ++stats_.not_logged;
      return;
    }
  } else if (action.delegate) {
    // The namespace of the pod where the connection was denied.
    const std::optional<HeldPod> pod = state_->FindPodByIp(egress ? ev.tuple.src : ev.tuple.dst);
    const NamespaceInfo* ns = pod ? state_->FindNamespace(pod->namespace_name) : nullptr;
    if (ns == nullptr || !AnnotatedTrue(&ns->annotations, kEnableDenyLoggingAnnotation)) {
      ++stats_.not_logged;
      return;
    }
  }
  r.src = Describe(ev.tuple.src);
  r.dest = Describe(ev.tuple.dst);
  if (options_.log_node_name) {
    r.node_name = options_.node_name;
  }
  r.timestamp = at + wall_offset_;
  if (allowed) {
    Emit(r, at);
    return;
  }
  const DenyKey key{.src = ev.tuple.src, .dst = ev.tuple.dst, .dport = ev.tuple.dport,
                    .proto = static_cast<uint8_t>(ev.tuple.proto), .egress = egress};
  if (auto it = pending_.find(key); it != pending_.end()) {
    ++it->second.count;
    ++stats_.aggregated;
    return;
  }
  if (pending_.size() >= options_.deny_aggregation_keys) {
    ++stats_.dropped_aggregation_limit;
    return;
  }
  pending_.emplace(key, std::move(r));
  window_ends_.push({.deadline = at + options_.deny_aggregation, .seq = next_seq_++, .key = key});
}

void PolicyLogger::EmitWindowsEndedBy(absl::Time t) {
  while (!window_ends_.empty() && window_ends_.top().deadline <= t) {
    const WindowEnd end = window_ends_.top();
    window_ends_.pop();
    auto it = pending_.find(end.key);
    if (it == pending_.end()) {
      continue;
    }
    // Charged to the limiter when the window ends: that is when the record
    // is complete, in event time.
    Emit(it->second, end.deadline);
    pending_.erase(it);
  }
}

void PolicyLogger::Tick() {
  const absl::Time now = DatapathNow();
  wall_offset_ = options_.clock() - now;
  EmitWindowsEndedBy(now);
}

void PolicyLogger::Flush() { EmitWindowsEndedBy(absl::InfiniteFuture()); }

}  // namespace dpv2
