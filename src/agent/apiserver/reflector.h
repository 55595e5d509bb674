// A list-then-watch reflector for one Kubernetes resource: it LISTs the
// collection (paginated with limit/continue), then WATCHes from the list's
// resourceVersion with bookmarks, keeps a store of which objects exist
// (a fingerprint per "namespace/name", not the object: the handler keeps
// what it needs, decoded, and a JSON copy of every pod of a cluster costs
// KBs a pod), and reports every change to a handler as deltas, each object
// an element of the simdjson document its LIST page or watch event was
// parsed into (no tree is built; the handler decodes from it). It
// survives what the API server does in practice: streams that end
// (timeoutSeconds), disconnects (resume from the last resourceVersion),
// 410 Gone (relist and diff the full result against the store, so objects
// deleted meanwhile are reported), stalls (no byte within stall_timeout)
// and errors (exponential backoff with jitter, bounded).
//
//   Reflector pods(config, {.resource = PodsResource()},
//                  [&](const ReflectorUpdate& u) { Feed(u.deltas); });
//   pods.Start();  // ...; pods.Stop();
#ifndef DPV2_AGENT_APISERVER_REFLECTOR_H_
#define DPV2_AGENT_APISERVER_REFLECTOR_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/apiserver/client_config.h"
#include "agent/apiserver/http_transport.h"
#include "agent/apiserver/resources.h"

// simdjson.h (1.3 MB) stays out of this widely included header; read the
// objects with it where they are read.
namespace simdjson::dom {
class element;
}  // namespace simdjson::dom

namespace dpv2::agent::apiserver {

// An element of a parsed JSON text (a LIST page, a watch event) that keeps
// the whole parsed document alive: objects go from the reflector to their
// decoder without a copy, and the page's memory goes with its last object.
using JsonRef = std::shared_ptr<const simdjson::dom::element>;

// A JSON text parsed into a document of its own; the reference is its root.
// InvalidArgument (simdjson's reason) for text that is not JSON.
absl::StatusOr<JsonRef> ParseJson(absl::string_view text);

enum class DeltaType { kAdded, kUpdated, kDeleted };

absl::string_view DeltaTypeName(DeltaType type);

struct Delta {
  DeltaType type;
  std::string key;  // "namespace/name", or "name" if cluster-scoped
  // The new object as the API server sent it: kind and apiVersion may be
  // absent (list items and some watch events omit them; they are the
  // resource's). For kDeleted: the DELETED event's object, or null after a
  // relist, which knows only the key (the store keeps no copy).
  JsonRef object;
};

// What the handler receives. Deltas of one update are applied to the store
// together, so the handler never sees half a relist.
struct ReflectorUpdate {
  std::vector<Delta> deltas;
  bool relisted = false;  // the deltas are the diff of a complete LIST
  bool synced = false;    // the store reflects at least one complete LIST
};

using ReflectorHandler = std::function<void(const ReflectorUpdate&)>;

struct BackoffOptions {
  absl::Duration initial = absl::Milliseconds(200);
  absl::Duration max = absl::Seconds(30);
  double multiplier = 2.0;
  double jitter = 0.2;  // each delay is reduced by up to this fraction
};

// Exponential backoff: initial * multiplier^n, capped at max, minus up to
// `jitter` of itself so reflectors of many nodes do not reconnect in step.
class Backoff {
 public:
  explicit Backoff(BackoffOptions options, uint64_t seed = 1);
  absl::Duration Next();
  void Reset() { attempt_ = 0; }
  int attempt() const { return attempt_; }

 private:
  BackoffOptions options_;
  std::mt19937_64 rng_;
  int attempt_ = 0;
};

struct ReflectorOptions {
  ApiResource resource;
  int64_t page_limit = 500;
  // Sent as timeoutSeconds: the server ends the watch after this long and
  // the reflector resumes from its resourceVersion.
  absl::Duration watch_timeout = absl::Minutes(5);
  // No byte (event or bookmark) within this long means the stream is dead.
  // Real servers send a bookmark about once a minute.
  absl::Duration stall_timeout = absl::Seconds(90);
  absl::Duration connect_timeout = absl::Seconds(10);
  absl::Duration list_timeout = absl::Seconds(60);  // per read during LIST
  BackoffOptions backoff;
  uint64_t seed = 0;  // jitter seed; 0 picks a random one
};

// Watch health of one resource, for /metrics.
struct WatchState {
  bool connected = false;  // a watch stream is open
  bool synced = false;
  std::string resource_version;
  absl::Time last_event_time = absl::InfinitePast();  // events and bookmarks
  int64_t lists = 0;       // complete LISTs (the first one included)
  int64_t relists = 0;     // LISTs forced by 410 Gone
  int64_t reconnects = 0;  // watch restarts from a known resourceVersion
  int64_t stalls = 0;      // reconnects caused by stall detection
  int64_t errors = 0;      // failed requests and malformed events
  int64_t events = 0;      // watch events applied (bookmarks excluded)
  std::string last_error;
};

// "namespace/name" (or "name") of an object, empty if metadata.name is missing.
std::string ObjectKey(const simdjson::dom::element& object);

// The fingerprint the store keeps of an object: a hash of its JSON value
// (members in any order), kind and apiVersion counted as the resource's
// when absent, so that an object hashes alike with or without them (a LIST
// item and the watch event of the same content).
size_t Fingerprint(const simdjson::dom::element& object, const ApiResource& resource);

// One page of a LIST response body, parsed: its items as sent (sharing the
// page's document), in the page's order, each with its key and fingerprint,
// and the list's resourceVersion and continue token. What a full sync costs
// before any decoding (view_bench measures it with this function). Errors
// name `where` ("LIST /api/v1/pods").
struct ListItem {
  std::string key;
  JsonRef object;
  size_t fingerprint = 0;
};
struct ListPage {
  std::vector<ListItem> items;
  std::string resource_version;
  std::string continue_token;
};
absl::StatusOr<ListPage> ParseListPage(absl::string_view body,
                                       const ApiResource& resource,
                                       absl::string_view where);

// One line of a watch stream, parsed: the event's type, its object as sent
// (sharing the line's document) with its key ("" when it has no name, as
// bookmarks), fingerprint and metadata.resourceVersion. DataLoss naming
// `where` ("WATCH /api/v1/pods") for a line that is no event: not JSON, no
// type string, no object.
struct WatchEvent {
  std::string type;  // ADDED, MODIFIED, DELETED, BOOKMARK, ERROR, or other
  JsonRef object;
  std::string key;
  size_t fingerprint = 0;
  std::string resource_version;
};
absl::StatusOr<WatchEvent> ParseWatchEvent(absl::string_view line,
                                           const ApiResource& resource,
                                           absl::string_view where);

class Reflector {
 public:
  Reflector(ClientConfig config, ReflectorOptions options,
            ReflectorHandler handler);
  ~Reflector();  // stops
  Reflector(const Reflector&) = delete;
  Reflector& operator=(const Reflector&) = delete;

  // Starts the list/watch loop on its own thread.
  void Start();
  // Cancels the request in progress and joins the thread. Idempotent.
  void Stop();

  WatchState State() const;
  // The keys of the objects that exist now, sorted.
  std::vector<std::string> Keys() const;
  bool Contains(const std::string& key) const;
  const ApiResource& resource() const { return options_.resource; }

 private:
  enum class Outcome { kEnded, kGone, kStalled, kFailed, kCancelled };

  void Run();
  absl::Status List();
  Outcome Watch();
  Outcome HandleWatchLine(absl::string_view line);
  void Deliver(ReflectorUpdate update);
  void RecordError(const absl::Status& status);
  bool SleepUnlessStopped(absl::Duration delay);

  ClientConfig config_;
  ReflectorOptions options_;
  ReflectorHandler handler_;
  Backoff backoff_;
  std::unique_ptr<HttpTransport> transport_;

  mutable std::mutex mu_;  // guards the fields below
  std::condition_variable wake_;
  bool stopping_ = false;
  // Key -> Fingerprint of the object: a relist reports an object updated
  // when its fingerprint differs.
  std::map<std::string, size_t> store_;
  WatchState state_;

  std::string resource_version_;  // reflector thread only
  std::thread thread_;
};

}  // namespace dpv2::agent::apiserver

#endif  // DPV2_AGENT_APISERVER_REFLECTOR_H_
