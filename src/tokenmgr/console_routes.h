// ConsoleRoutes: the operator's console (issue 17) as JSON routes on an http::Router, over a
// console::Console. Answers through the async responders, since the journal may store later.
// Not thread-safe: runs on the server's event-loop thread, like the Console it calls.
//
//   ConsoleRoutes routes(router, console, lock_api, time, {});
//   service.AddMetrics([&routes] { return routes.RenderMetrics(); });
//
// Routes (docs/api.md, "Console"); all under /api/ only (not mirrored under kApiPrefixes):
//   GET  /api/nodes                                   NodesJson
//   PUT  /api/nodes/:node                             an agent's report -> DirectivesJson
//   POST /api/nodes/:node/cordon|uncordon             admin: {"ok":true,...}
//   POST /api/licenses/:license/disable|enable        admin
//   GET  /api/events?after=&limit=                    EventsJson
//   GET  /api/usage?from=&to=&format=json|csv         UsageJson / UsageCsv
// PUT and the admin routes need the bearer token when auth is on (401) and refuse cross-site
// browser requests (403). Errors are {"Error": "..."}: 400 malformed, 404 unknown, 503 the
// journal could not store (nothing changed that the caller is told about).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "console/console.h"
#include "http/router.h"
#include "tokenmgr/lock_api.h"

namespace lm::tokenmgr {

struct ConsoleRoutesOptions {
  size_t default_events_page = 100;
  size_t max_events_page = 1000;  // a larger `limit` is clamped, not refused
  // A usage window longer than this is refused (400): nobody asks that of a bounded history.
  std::chrono::hours max_usage_span{24 * 400};
};

// The actor an admin action records: "token" when auth is on, else the caller's address (or
// "unknown"); with an X-Actor header or a `by` query value (a label, else INVALID_ARGUMENT
// naming it), "<given> (<that>)", so a name someone typed is never taken for the credential.
StatusOr<std::string> AdminActor(const http::Request& req, std::string_view by, bool auth_on);

// `limit` as GET /api/events takes it: digits only (INVALID_ARGUMENT naming "limit"), above
// `max` clamped to `max`.
StatusOr<size_t> ParseEventsLimit(std::string_view text, size_t max);

class ConsoleRoutes final {
 public:
  // Registers the routes. Every argument must outlive this object.
  ConsoleRoutes(http::Router& router, console::Console& console, LockApi& api, const Clock& clock,
                ConsoleRoutesOptions options);
  ConsoleRoutes(const ConsoleRoutes&) = delete;
  ConsoleRoutes& operator=(const ConsoleRoutes&) = delete;

  // tokenmgr_nodes{state}, tokenmgr_events_total{kind}, tokenmgr_longest_wait_seconds,
  // tokenmgr_cordoned_nodes, tokenmgr_disabled_licenses.
  std::string RenderMetrics();

 private:

  void HandleReport(const http::Request& req, std::string_view node,
                    std::shared_ptr<http::Responder> r);
  void HandleAdmin(const http::Request& req, std::string_view name, console::AdminAction action,
                   std::shared_ptr<http::Responder> r);
  void HandleEvents(const http::Request& req, http::Responder& r);
  void HandleUsage(const http::Request& req, http::Responder& r);

  console::Console& console_;
  LockApi& api_;
  const Clock& clock_;
  ConsoleRoutesOptions options_;
};

}  // namespace lm::tokenmgr
