#include "agent/apiserver/reflector.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "simdjson.h"

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

using simdjson::dom::element;

// A parsed text and those of its elements that JsonRefs point to (a deque
// keeps their addresses as it grows).
struct ParsedText {
  simdjson::dom::document document;
  std::deque<element> elements;
};

// `value`, an element of `text`'s document, as a JsonRef sharing the text.
JsonRef Share(const std::shared_ptr<ParsedText>& text, element value) {
  return JsonRef(text, &text->elements.emplace_back(value));
}

// The text parsed into a document of its own (a parser per text: it keeps
// nothing once done), and its root.
absl::StatusOr<std::pair<std::shared_ptr<ParsedText>, element>> Parse(
    absl::string_view text) {
  auto parsed = std::make_shared<ParsedText>();
  simdjson::dom::parser parser;
  element root;
  const simdjson::error_code error =
      parser.parse_into_document(parsed->document, text.data(), text.size()).get(root);
  if (error != simdjson::SUCCESS) {
    return absl::InvalidArgumentError(simdjson::error_message(error));
  }
  return std::make_pair(std::move(parsed), root);
}

std::string MetadataString(element object, const char* field) {
  std::string_view value;
  if (object["metadata"][field].get(value) != simdjson::SUCCESS) return "";
  return std::string(value);
}

// Fingerprint's hash: splitmix64's finalizer mixes, members are summed (in
// any order) and items chained (in order).
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9;
  x ^= x >> 27;
  x *= 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

uint64_t Combine(uint64_t seed, uint64_t value) {
  return Mix(seed ^ (value + 0x9e3779b97f4a7c15 + (seed << 6) + (seed >> 2)));
}

uint64_t HashString(std::string_view text) {
  return Combine('"', std::hash<std::string_view>{}(text));
}

uint64_t HashMember(std::string_view key, uint64_t value) {
  return Combine(std::hash<std::string_view>{}(key), value);
}

uint64_t HashValue(element value);

// An object's hash from the sum of its members' (plus `extra`, members it
// is taken to have).
uint64_t HashObject(simdjson::dom::object object, uint64_t extra) {
  uint64_t sum = extra;
  for (simdjson::dom::key_value_pair field : object) {
    sum += HashMember(field.key, HashValue(field.value));
  }
  return Combine('{', sum);
}

uint64_t HashValue(element value) {
  switch (value.type()) {
    case simdjson::dom::element_type::OBJECT:
      return HashObject(value.get_object().value_unsafe(), 0);
    case simdjson::dom::element_type::ARRAY: {
      uint64_t hash = Mix('[');
      const simdjson::dom::array items = value.get_array().value_unsafe();
      for (element item : items) {
        hash = Combine(hash, HashValue(item));
      }
      return hash;
    }
    case simdjson::dom::element_type::STRING:
      return HashString(value.get_string().value_unsafe());
    case simdjson::dom::element_type::INT64:
      return Combine('l', static_cast<uint64_t>(value.get_int64().value_unsafe()));
    case simdjson::dom::element_type::UINT64:
      return Combine('u', value.get_uint64().value_unsafe());
    case simdjson::dom::element_type::DOUBLE:
      return Combine('d', std::hash<double>{}(value.get_double().value_unsafe()));
    case simdjson::dom::element_type::BOOL:
      return Combine('t', value.get_bool().value_unsafe() ? 1 : 0);
    case simdjson::dom::element_type::NULL_VALUE:
      break;
  }
  return Mix('n');
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

absl::StatusOr<JsonRef> ParseJson(absl::string_view text) {
  DPV2_ASSIGN_OR_RETURN(auto parsed, Parse(text));
  return Share(parsed.first, parsed.second);
}

std::string ObjectKey(const simdjson::dom::element& object) {
  std::string name = MetadataString(object, "name");
  if (name.empty()) return "";
  std::string ns = MetadataString(object, "namespace");
  return ns.empty() ? name : absl::StrCat(ns, "/", name);
}

size_t Fingerprint(const simdjson::dom::element& object, const ApiResource& resource) {
  simdjson::dom::object members;
  if (object.get(members) != simdjson::SUCCESS) return HashValue(object);
  uint64_t restored = 0;
  if (members["kind"].error() == simdjson::NO_SUCH_FIELD) {
    restored += HashMember("kind", HashString(resource.kind));
  }
  if (members["apiVersion"].error() == simdjson::NO_SUCH_FIELD) {
    restored += HashMember("apiVersion", HashString(resource.ApiVersion()));
  }
  return HashObject(members, restored);
}

absl::StatusOr<ListPage> ParseListPage(absl::string_view body,
                                       const ApiResource& resource,
                                       absl::string_view where) {
  absl::StatusOr<std::pair<std::shared_ptr<ParsedText>, element>> parsed = Parse(body);
  if (!parsed.ok() || !parsed->second.is_object()) {
    return absl::DataLossError(
        absl::StrCat(where, ": response is not a JSON object"));
  }
  const element page = parsed->second;
  ListPage out;
  element items;
  if (page["items"].get(items) == simdjson::SUCCESS && !items.is_null()) {
    simdjson::dom::array list;
    if (items.get(list) != simdjson::SUCCESS) {
      return absl::DataLossError(absl::StrCat(where, ": items: not a list"));
    }
    out.items.reserve(list.size());
    for (element item : list) {
      ListItem typed{.key = ObjectKey(item)};
      if (typed.key.empty()) {
        return absl::DataLossError(
            absl::StrCat(where, ": items[]: metadata.name missing"));
      }
      typed.fingerprint = Fingerprint(item, resource);
      typed.object = Share(parsed->first, item);
      out.items.push_back(std::move(typed));
    }
  }
  out.resource_version = MetadataString(page, "resourceVersion");
  out.continue_token = MetadataString(page, "continue");
  return out;
}

absl::StatusOr<WatchEvent> ParseWatchEvent(absl::string_view line,
                                           const ApiResource& resource,
                                           absl::string_view where) {
  absl::StatusOr<std::pair<std::shared_ptr<ParsedText>, element>> parsed = Parse(line);
  std::string_view type;
  element object;
  if (!parsed.ok() || parsed->second["type"].get(type) != simdjson::SUCCESS ||
      parsed->second["object"].get(object) != simdjson::SUCCESS || !object.is_object()) {
    return absl::DataLossError(
        absl::StrCat(where, ": malformed event: ", line.substr(0, 200)));
  }
  return WatchEvent{.type = std::string(type),
                    .object = Share(parsed->first, object),
                    .key = ObjectKey(object),
                    .fingerprint = Fingerprint(object, resource),
                    .resource_version = MetadataString(object, "resourceVersion")};
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
        update.deltas.push_back({DeltaType::kDeleted, key, nullptr});
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
  const std::string where = absl::StrCat("WATCH ", options_.resource.Path());
  absl::StatusOr<WatchEvent> event = ParseWatchEvent(line, options_.resource, where);
  if (!event.ok()) {
    RecordError(event.status());
    return Outcome::kFailed;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    state_.last_event_time = absl::Now();
  }
  const element& object = *event->object;
  if (event->type == "ERROR") {
    int64_t code = 0;
    if (object["code"].get(code) != simdjson::SUCCESS) code = 0;
    std::string_view message;
    if (object["message"].get(message) != simdjson::SUCCESS) message = {};
    if (code == 410) return Outcome::kGone;
    RecordError(absl::UnavailableError(absl::StrCat(
        where, ": ERROR event ", code, ": ",
        absl::string_view(message.data(), message.size()))));
    return Outcome::kFailed;
  }
  const std::string& version = event->resource_version;
  if (event->type == "BOOKMARK") {
    if (!version.empty()) {
      resource_version_ = version;
      std::lock_guard<std::mutex> lock(mu_);
      state_.resource_version = version;
    }
    return Outcome::kEnded;
  }
  if (event->type != "ADDED" && event->type != "MODIFIED" &&
      event->type != "DELETED") {
    RecordError(absl::DataLossError(
        absl::StrCat(where, ": unknown event type \"", event->type, "\"")));
    return Outcome::kFailed;
  }
  const std::string& key = event->key;
  if (key.empty()) {
    RecordError(absl::DataLossError(absl::StrCat(
        where, ": ", event->type, " event: object.metadata.name missing")));
    return Outcome::kFailed;
  }
  ReflectorUpdate update{.synced = true};
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (event->type == "DELETED") {
      auto it = store_.find(key);
      if (it != store_.end()) {
        store_.erase(it);
        update.deltas.push_back({DeltaType::kDeleted, key, event->object});
      }
    } else {
      auto [it, inserted] = store_.insert_or_assign(key, event->fingerprint);
      update.deltas.push_back({inserted ? DeltaType::kAdded
                                        : DeltaType::kUpdated,
                               key, event->object});
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
