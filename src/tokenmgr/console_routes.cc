#include "tokenmgr/console_routes.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/metrics_text.h"
#include "common/strings.h"
#include "console/console_json.h"
#include "console/usage.h"
#include "http/query.h"
#include "http/request_rules.h"
#include "tokenmgr/token_service.h"

namespace lm::tokenmgr {

using console::EventKind;
using console::kEventKinds;
using console::kNodeStates;
using console::NodeState;
using http::ErrorResponse;
using http::JsonResponse;
using http::Request;
using http::Responder;
using http::Response;

using http::StatusResponse;

StatusOr<std::string> AdminActor(const Request& req, std::string_view by, bool auth_on) {
  std::string base = auth_on                      ? "token"
                     : req.remote_address.empty() ? "unknown"
                                                  : req.remote_address;
  std::string_view header = req.Header("x-actor");
  if (!header.empty() && !by.empty() && header != by) {
    return InvalidArgument("X-Actor and 'by' disagree; give one of them");
  }
  std::string_view given = header.empty() ? by : header;
  if (given.empty()) return base;
  if (Status s = ValidateLabel(given, header.empty() ? "by" : "X-Actor"); !s.ok()) return s;
  return std::string(given) + " (" + base + ")";
}

StatusOr<size_t> ParseEventsLimit(std::string_view text, size_t max) {
  if (text.empty() ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return InvalidArgument("limit must be a whole non-negative number, got '" +
                           std::string(text.substr(0, 32)) + "'");
  }
  // Digits only: anything longer than `max` has is above it.
  if (text.size() > std::to_string(max).size()) return max;
  return std::min<size_t>(std::stoull(std::string(text)), max);
}

ConsoleRoutes::ConsoleRoutes(http::Router& router, console::Console& console, LockApi& api,
                             const Clock& clock, ConsoleRoutesOptions options)
    : console_(console), api_(api), clock_(clock), options_(options) {
  router.Get("/api/nodes",
             [this] { return JsonResponse(200, console::NodesJson(console_.Nodes())); });
  router.Add("PUT", "/api/nodes/:node",
             [this](const Request& req, std::string_view node, std::shared_ptr<Responder> r) {
               HandleReport(req, node, std::move(r));
             });
  for (console::AdminAction action : console::kAdminActions) {
    const std::string target(console::AdminTarget(action));  // node or license
    router.Add(
        "POST",
        "/api/" + target + "s/:" + target + "/" + std::string(console::AdminActionName(action)),
        [this, action](const Request& req, std::string_view name, std::shared_ptr<Responder> r) {
          HandleAdmin(req, name, action, std::move(r));
        });
  }
  router.Add("GET", "/api/events",
             [this](const Request& req, std::string_view, std::shared_ptr<Responder> r) {
               HandleEvents(req, *r);
             });
  router.Add("GET", "/api/usage",
             [this](const Request& req, std::string_view, std::shared_ptr<Responder> r) {
               HandleUsage(req, *r);
             });
}

void ConsoleRoutes::HandleReport(const Request& req, std::string_view node,
                                 std::shared_ptr<Responder> r) {
  if (RefuseMutation(api_, req, *r)) return;
  if (auto q = http::ParseQuery(req.query, {}); !q.ok()) return r->Send(StatusResponse(q.status()));
  if (Status s = ValidateLabel(node, "node"); !s.ok()) return r->Send(StatusResponse(s));
  auto report = console::ParseAgentReport(std::string(node), req.body);
  if (!report.ok()) return r->Send(StatusResponse(report.status()));
  console_.Report(report->report, std::move(report->events), [r](StatusOr<console::Directives> d) {
    if (!d.ok()) return r->Send(StatusResponse(d.status()));
    r->Send(JsonResponse(200, console::DirectivesJson(*d)));
  });
}

void ConsoleRoutes::HandleAdmin(const Request& req, std::string_view name,
                                console::AdminAction action, std::shared_ptr<Responder> r) {
  if (RefuseMutation(api_, req, *r)) return;
  auto q = http::ParseQuery(req.query, {"by"});
  if (!q.ok()) return r->Send(StatusResponse(q.status()));
  auto by = q->find("by");
  auto actor =
      AdminActor(req, by == q->end() ? "" : std::string_view(by->second), api_.auth_enabled());
  if (!actor.ok()) return r->Send(StatusResponse(actor.status()));
  std::string target(name);
  auto done = [r, target, action, actor = *actor](Status s) {
    if (!s.ok()) return r->Send(StatusResponse(s));
    nlohmann::json j = {{"ok", true},
                        {console::AdminTarget(action), target},
                        {"action", console::AdminActionName(action)},
                        {"actor", actor}};
    r->Send(JsonResponse(200, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
  };
  console_.Act(action, target, *actor, std::move(done));
}

void ConsoleRoutes::HandleEvents(const Request& req, Responder& r) {
  auto q = http::ParseQuery(req.query, {"after", "limit"});
  if (!q.ok()) return r.Send(StatusResponse(q.status()));
  uint64_t after = 0;
  size_t limit = options_.default_events_page;
  if (auto it = q->find("after"); it != q->end()) {
    auto a = ParseWholeNumber(it->second, "after", INT64_MAX);
    if (!a.ok()) return r.Send(StatusResponse(a.status()));
    after = static_cast<uint64_t>(*a);
  }
  if (auto it = q->find("limit"); it != q->end()) {
    auto l = ParseEventsLimit(it->second, options_.max_events_page);
    if (!l.ok()) return r.Send(StatusResponse(l.status()));
    limit = *l;
  }
  r.Send(
      JsonResponse(200, console::EventsJson(console_.Events(after, limit), console_.last_seq())));
}

void ConsoleRoutes::HandleUsage(const Request& req, Responder& r) {
  auto q = http::ParseQuery(req.query, {"from", "to", "format"});
  if (!q.ok()) return r.Send(StatusResponse(q.status()));
  auto arg = [&](const char* name, const char* fallback) {
    auto it = q->find(name);
    return it == q->end() ? std::string(fallback) : it->second;
  };
  const std::string format = arg("format", "json");
  if (format != "json" && format != "csv") {
    return r.Send(ErrorResponse(400, "format must be json or csv"));
  }
  const WallTime now = clock_.WallNow();
  auto from = console::ParseTimeArg(arg("from", "-24h"), now, "from");
  if (!from.ok()) return r.Send(StatusResponse(from.status()));
  auto to = console::ParseTimeArg(arg("to", "now"), now, "to");
  if (!to.ok()) return r.Send(StatusResponse(to.status()));
  if (*to < *from) return r.Send(ErrorResponse(400, "to is before from"));
  if (*to - *from > options_.max_usage_span) {
    return r.Send(ErrorResponse(400, "the window from..to is longer than " +
                                         std::to_string(options_.max_usage_span.count() / 24) +
                                         " days"));
  }
  console::Usage u = console_.UsageReport(*from, *to);
  if (format == "json") return r.Send(JsonResponse(200, console::UsageJson(u)));
  Response csv;
  csv.content_type = "text/csv; charset=utf-8";
  csv.body = console::UsageCsv(u);
  r.Send(std::move(csv));
}

std::string ConsoleRoutes::RenderMetrics() {
  std::vector<console::NodeRow> rows = console_.Nodes();
  MetricsText m;
  m.Family("tokenmgr_nodes", "gauge", "Nodes running an agent, by state (GET /api/nodes).");
  const WallTime now = clock_.WallNow();
  std::chrono::milliseconds longest{0};
  for (NodeState s : kNodeStates) {
    double n = 0;
    for (const console::NodeRow& row : rows) {
      if (row.state != s) continue;
      ++n;
      if (s == NodeState::kWaiting) {
        longest = std::max(longest,
                           std::chrono::duration_cast<std::chrono::milliseconds>(now - row.since));
      }
    }
    m.Sample("tokenmgr_nodes", {{"state", console::NodeStateName(s)}}, n);
  }
  m.Gauge("tokenmgr_longest_wait_seconds",
          "How long the longest-waiting node has waited (0: none).",
          static_cast<double>(longest.count()) / 1000.0);
  m.Gauge("tokenmgr_cordoned_nodes", "Nodes an operator cordoned (whether or not they report).",
          static_cast<double>(console_.admin().cordoned.size()));
  m.Gauge("tokenmgr_disabled_licenses", "Licenses an operator disabled.",
          static_cast<double>(console_.admin().disabled.size()));
  m.Family("tokenmgr_events_total", "counter", "Console events stored since start, by kind.");
  for (EventKind k : kEventKinds) {
    m.CountSample("tokenmgr_events_total", {{"kind", console::KindName(k)}},
                  console_.events_stored(k));
  }
  return m.Take();
}

}  // namespace lm::tokenmgr
