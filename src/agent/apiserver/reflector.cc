#include "agent/apiserver/reflector.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace dpv2::agent::apiserver {
namespace {

std::string UrlEscape(absl::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string MetadataString(const nlohmann::json& object, const char* field) {
  if (!object.is_object()) return "";
  auto metadata = object.find("metadata");
  if (metadata == object.end() || !metadata->is_object()) return "";
  auto value = metadata->find(field);
  if (value == metadata->end() || !value->is_string()) return "";
  return value->get<std::string>();
}

// What a relist can say of an object that went away: its name (and
// namespace), since the store keeps no copy.
nlohmann::json MetadataOnly(const std::string& key) {
  const size_t slash = key.find('/');
  if (slash == std::string::npos) {
    return {{"metadata", {{"name", key}}}};
  }
  return {{"metadata", {{"namespace", key.substr(0, slash)}, {"name", key.substr(slash + 1)}}}};
}

}  // namespace

absl::string_view DeltaTypeName(DeltaType type) {
  switch (type) {
    case DeltaType::kAdded:
      return "Added";
    case DeltaType::kUpdated:
      return "Updated";
    case DeltaType::kDeleted:
      return "Deleted";
  }
  return "?";
}

std::string ObjectKey(const nlohmann::json& object) {
  std::string name = MetadataString(object, "name");
  if (name.empty()) return "";
  std::string ns = MetadataString(object, "namespace");
  return ns.empty() ? name : absl::StrCat(ns, "/", name);
}

nlohmann::json WithTypeMeta(nlohmann::json object,
                            const ApiResource& resource) {
  if (object.is_object()) {
    if (!object.contains("kind")) object["kind"] = resource.kind;
    if (!object.contains("apiVersion")) {
      object["apiVersion"] = resource.ApiVersion();
    }
  }
  return object;
}

size_t Fingerprint(const nlohmann::json& object) {
  return std::hash<nlohmann::json>{}(object);
}

absl::StatusOr<ListPage> ParseListPage(absl::string_view body,
                                       const ApiResource& resource,
                                       absl::string_view where) {
  nlohmann::json page = nlohmann::json::parse(body, nullptr, false);
  if (page.is_discarded() || !page.is_object()) {
    return absl::DataLossError(
        absl::StrCat(where, ": response is not a JSON object"));
  }
  ListPage out;
  auto items = page.find("items");
  if (items != page.end() && !items->is_null() && !items->is_array()) {
    return absl::DataLossError(absl::StrCat(where, ": items: not a list"));
  }
  if (items != page.end() && items->is_array()) {
    out.items.reserve(items->size());
    for (nlohmann::json& item : *items) {
      ListItem typed{.key = ObjectKey(item),
                     .object = WithTypeMeta(std::move(item), resource)};
      if (typed.key.empty()) {
        return absl::DataLossError(
            absl::StrCat(where, ": items[]: metadata.name missing"));
      }
      typed.fingerprint = Fingerprint(typed.object);
      out.items.push_back(std::move(typed));
    }
  }
  out.resource_version = MetadataString(page, "resourceVersion");
  out.continue_token = MetadataString(page, "continue");
  return out;
}

Backoff::Backoff(BackoffOptions options, uint64_t seed)
    : options_(options), rng_(seed) {}

absl::Duration Backoff::Next() {
  double factor = std::pow(options_.multiplier, attempt_);
  absl::Duration base = options_.initial * factor;
  // Saturate before the multiplication overflows anything.
  if (factor > 1e9 || base > options_.max) base = options_.max;
  if (attempt_ < 64) ++attempt_;
  double jitter = std::clamp(options_.jitter, 0.0, 1.0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  return base * (1.0 - jitter * unit(rng_));
}

Reflector::Reflector(ClientConfig config, ReflectorOptions options,
                     ReflectorHandler handler)
    : config_(std::move(config)),
      options_(std::move(options)),
      handler_(std::move(handler)),
      backoff_(options_.backoff,
               options_.seed != 0 ? options_.seed : std::random_device{}()) {}

Reflector::~Reflector() { Stop(); }

void Reflector::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable() || stopping_) return;
  transport_ = std::make_unique<HttpTransport>(config_);
  thread_ = std::thread([this] { Run(); });
}

void Reflector::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    if (transport_ != nullptr) transport_->Cancel();
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

WatchState Reflector::State() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

std::vector<std::string> Reflector::Keys() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> keys;
  keys.reserve(store_.size());
  for (const auto& [key, hash] : store_) {
    keys.push_back(key);
  }
  return keys;
}

bool Reflector::Contains(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  return store_.contains(key);
}

bool Reflector::SleepUnlessStopped(absl::Duration delay) {
  std::unique_lock<std::mutex> lock(mu_);
  wake_.wait_for(lock, absl::ToChronoNanoseconds(delay),
                 [this] { return stopping_; });
  return !stopping_;
}

void Reflector::RecordError(const absl::Status& status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++state_.errors;
  state_.last_error = std::string(status.message());
}

void Reflector::Deliver(ReflectorUpdate update) {
  if (handler_) handler_(update);
}

void Reflector::Run() {
  bool need_list = true;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
    }
    if (need_list) {
      absl::Status listed = List();
      if (absl::IsCancelled(listed)) return;
      if (!listed.ok()) {
        RecordError(listed);
        if (!SleepUnlessStopped(backoff_.Next())) return;
        continue;
      }
      need_list = false;
    }
    Outcome outcome = Watch();
    {
      std::lock_guard<std::mutex> lock(mu_);
      state_.connected = false;
    }
    switch (outcome) {
      case Outcome::kCancelled:
        return;
      case Outcome::kEnded: {
        // timeoutSeconds elapsed or the server closed cleanly: resume at once.
        std::lock_guard<std::mutex> lock(mu_);
        ++state_.reconnects;
        break;
      }
      case Outcome::kGone: {
        need_list = true;
        {
          std::lock_guard<std::mutex> lock(mu_);
          ++state_.relists;
        }
        // A second 410 in a row waits, so a broken server is not hammered.
        if (backoff_.attempt() > 0 &&
            !SleepUnlessStopped(backoff_.Next())) {
          return;
        }
        if (backoff_.attempt() == 0) backoff_.Next();
        break;
      }
      case Outcome::kStalled:
      case Outcome::kFailed: {
        {
          std::lock_guard<std::mutex> lock(mu_);
          ++state_.reconnects;
          if (outcome == Outcome::kStalled) ++state_.stalls;
        }
        if (!SleepUnlessStopped(backoff_.Next())) return;
        break;
      }
    }
  }
}

absl::Status Reflector::List() {
  const std::string where = absl::StrCat("LIST ", options_.resource.Path());
  std::map<std::string, ListItem> fresh;
  std::string continue_token;
  std::string list_version;
  HttpTimeouts timeouts{.connect = options_.connect_timeout,
                        .idle = options_.list_timeout};
  int restarts = 0;
  while (true) {
    std::string target = absl::StrCat(options_.resource.Path(),
                                      "?limit=", options_.page_limit);
    if (!continue_token.empty()) {
      absl::StrAppend(&target, "&continue=", UrlEscape(continue_token));
    }
    std::string body;
    absl::StatusOr<int> status = transport_->Get(
        target, timeouts, [&](int, absl::string_view bytes) {
          body.append(bytes.data(), bytes.size());
          return true;
        });
    if (!status.ok()) return status.status();
    if (*status == 410 && !continue_token.empty() && restarts < 3) {
      // The continue token expired mid-pagination: start over.
      ++restarts;
      continue_token.clear();
      fresh.clear();
      continue;
    }
    if (*status != 200) {
      return absl::UnavailableError(absl::StrCat(
          where, ": HTTP ", *status, ": ", body.substr(0, 512)));
    }
    absl::StatusOr<ListPage> page =
        ParseListPage(body, options_.resource, where);
    if (!page.ok()) return page.status();
    for (ListItem& item : page->items) {
      fresh[item.key] = std::move(item);
    }
    list_version = std::move(page->resource_version);
    continue_token = std::move(page->continue_token);
    if (continue_token.empty()) break;
  }
  if (list_version.empty()) {
    return absl::DataLossError(
        absl::StrCat(where, ": metadata.resourceVersion missing"));
  }

  // Full replace: diff the complete result against the store.
  ReflectorUpdate update{.relisted = true, .synced = true};
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, hash] : store_) {
      if (!fresh.contains(key)) {
        update.deltas.push_back(
            {DeltaType::kDeleted, key,
             WithTypeMeta(MetadataOnly(key), options_.resource)});
      }
    }
    std::map<std::string, size_t> hashes;
    for (auto& [key, item] : fresh) {
      hashes.emplace(key, item.fingerprint);
      auto old = store_.find(key);
      if (old == store_.end()) {
        update.deltas.push_back(
            {DeltaType::kAdded, key, std::move(item.object)});
      } else if (old->second != item.fingerprint) {
        update.deltas.push_back(
            {DeltaType::kUpdated, key, std::move(item.object)});
      }
    }
    store_ = std::move(hashes);
    ++state_.lists;
    state_.synced = true;
    state_.resource_version = list_version;
  }
  resource_version_ = list_version;
  backoff_.Reset();
  Deliver(std::move(update));
  return absl::OkStatus();
}

Reflector::Outcome Reflector::HandleWatchLine(absl::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
    line.remove_suffix(1);
  }
  if (line.empty()) return Outcome::kEnded;  // keep-alive blank line
  nlohmann::json event = nlohmann::json::parse(line.begin(), line.end(),
                                               nullptr, false);
  const std::string where = absl::StrCat("WATCH ", options_.resource.Path());
  if (event.is_discarded() || !event.is_object() ||
      !event.contains("type") || !event["type"].is_string() ||
      !event.contains("object") || !event["object"].is_object()) {
    RecordError(absl::DataLossError(
        absl::StrCat(where, ": malformed event: ", line.substr(0, 200))));
    return Outcome::kFailed;
  }
  const std::string type = event["type"].get<std::string>();
  nlohmann::json& object = event["object"];
  {
    std::lock_guard<std::mutex> lock(mu_);
    state_.last_event_time = absl::Now();
  }
  if (type == "ERROR") {
    int code = object.value("code", 0);
    if (code == 410) return Outcome::kGone;
    RecordError(absl::UnavailableError(absl::StrCat(
        where, ": ERROR event ", code, ": ", object.value("message", ""))));
    return Outcome::kFailed;
  }
  std::string version = MetadataString(object, "resourceVersion");
  if (type == "BOOKMARK") {
    if (!version.empty()) {
      resource_version_ = version;
      std::lock_guard<std::mutex> lock(mu_);
      state_.resource_version = version;
    }
    return Outcome::kEnded;
  }
  if (type != "ADDED" && type != "MODIFIED" && type != "DELETED") {
    RecordError(absl::DataLossError(
        absl::StrCat(where, ": unknown event type \"", type, "\"")));
    return Outcome::kFailed;
  }
  std::string key = ObjectKey(object);
  if (key.empty()) {
    RecordError(absl::DataLossError(absl::StrCat(
        where, ": ", type, " event: object.metadata.name missing")));
    return Outcome::kFailed;
  }
  nlohmann::json typed = WithTypeMeta(std::move(object), options_.resource);
  ReflectorUpdate update{.synced = true};
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (type == "DELETED") {
      auto it = store_.find(key);
      if (it != store_.end()) {
        store_.erase(it);
        update.deltas.push_back({DeltaType::kDeleted, key, std::move(typed)});
      }
    } else {
      auto [it, inserted] = store_.insert_or_assign(key, Fingerprint(typed));
      update.deltas.push_back({inserted ? DeltaType::kAdded
                                        : DeltaType::kUpdated,
                               key, std::move(typed)});
    }
    ++state_.events;
    if (!version.empty()) state_.resource_version = version;
  }
  if (!version.empty()) resource_version_ = version;
  if (!update.deltas.empty()) Deliver(std::move(update));
  return Outcome::kEnded;
}

Reflector::Outcome Reflector::Watch() {
  int64_t timeout_seconds =
      std::max<int64_t>(1, absl::ToInt64Seconds(options_.watch_timeout));
  std::string target = absl::StrCat(
      options_.resource.Path(), "?watch=1&resourceVersion=",
      UrlEscape(resource_version_), "&allowWatchBookmarks=true",
      "&timeoutSeconds=", timeout_seconds);
  HttpTimeouts timeouts{.connect = options_.connect_timeout,
                        .idle = options_.stall_timeout};
  std::string pending;
  std::string error_body;
  Outcome outcome = Outcome::kEnded;
  bool saw_event = false;
  absl::StatusOr<int> status = transport_->Get(
      target, timeouts, [&](int http_status, absl::string_view bytes) {
        if (http_status != 200) {
          if (error_body.size() < 4096) error_body.append(bytes.data(), bytes.size());
          return true;
        }
        if (!saw_event) {
          saw_event = true;
          std::lock_guard<std::mutex> lock(mu_);
          state_.connected = true;
        }
        pending.append(bytes.data(), bytes.size());
        size_t start = 0;
        size_t newline;
        while ((newline = pending.find('\n', start)) != std::string::npos) {
          Outcome line_outcome = HandleWatchLine(
              absl::string_view(pending).substr(start, newline - start));
          start = newline + 1;
          if (line_outcome != Outcome::kEnded) {
            outcome = line_outcome;
            return false;
          }
          backoff_.Reset();  // the stream is healthy
        }
        pending.erase(0, start);
        return true;
      });
  if (!status.ok()) {
    if (absl::IsCancelled(status.status())) return Outcome::kCancelled;
    RecordError(status.status());
    return absl::IsDeadlineExceeded(status.status()) ? Outcome::kStalled
                                                     : Outcome::kFailed;
  }
  if (*status == 410) return Outcome::kGone;
  if (*status != 200) {
    RecordError(absl::UnavailableError(absl::StrCat(
        "WATCH ", options_.resource.Path(), ": HTTP ", *status, ": ",
        error_body.substr(0, 512))));
    return Outcome::kFailed;
  }
  if (outcome == Outcome::kEnded && !pending.empty()) {
    outcome = HandleWatchLine(pending);  // last line without a newline
  }
  return outcome;
}

}  // namespace dpv2::agent::apiserver
