#include "tokenmgr/token_service.h"

#include <fmt/compile.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string_view>

#include "common/metrics_text.h"
#include "common/process_metrics.h"
#include "common/strings.h"
#include "http/query.h"
#include "http/request_rules.h"

namespace lm::tokenmgr {

using http::ErrorResponse;
using http::JsonResponse;
using http::Request;
using http::Responder;
using http::Response;
using nlohmann::json;

using http::StatusResponse;

namespace {

std::string GrantJson(const lock::Grant& g) {
  // Formatted directly, on every grant (docs/benchmarks.md). Ids are plain UUIDs; anything else
  // is JSON-escaped.
  std::string_view id = g.id;
  std::string escaped;
  bool plain = std::all_of(id.begin(), id.end(), [](char c) {
    return c != '"' && c != '\\' && static_cast<unsigned char>(c) >= 0x20 &&
           static_cast<unsigned char>(c) < 0x7f;
  });
  if (!plain) id = escaped = JsonEscape(id);
  return fmt::format(FMT_COMPILE(R"({{"expires_in_ms":{},"id":"{}","token":{},"ttl":{}}})"),
                     g.expires_in.count(), id, g.token, g.ttl.count());
}

std::string Rfc3339(WallTime t) {
  auto ms = UnixMillis(t);
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

int64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  if (!(statm >> pages_total >> pages_resident)) return 0;
  return static_cast<int64_t>(pages_resident) * sysconf(_SC_PAGESIZE);
}

}  // namespace

std::string ApiRoute(std::string_view action) {
  return std::string(kApiPrefixes[0]) + std::string(action) +
         (action == "lock" ? "/:timeout" : "/:id");
}

TokenService::TokenService(http::Router& router, LockApi& api, lock::LockService& store)
    : router_(router), api_(api), store_(store) {
  // A route calling one of the Handle* members with the request, its parameter and responder.
  using Member =
      void (TokenService::*)(const Request&, std::string_view, std::shared_ptr<Responder>);
  auto to = [this](Member handle) {
    return [this, handle](const Request& req, std::string_view arg, std::shared_ptr<Responder> r) {
      (this->*handle)(req, arg, std::move(r));
    };
  };
  for (std::string_view prefix : kApiPrefixes) {
    std::string p(prefix);
    // Not HEAD: a lease whose id nobody sees would hold the lock for its whole TTL.
    router.Add("GET", p + "lock/:timeout", to(&TokenService::HandleLock),
               http::Router::Head::kRefuse);
    router.Add("POST", p + "release/:id", to(&TokenService::HandleRelease));
    router.Add("POST", p + "renew/:id", to(&TokenService::HandleRenew));
    router.Add("GET", p + "status",
               [this](const Request&, std::string_view, std::shared_ptr<Responder> r) {
                 HandleStatus(std::move(r));
               });
  }
  for (std::string route : {std::string(kApiPrefixes[0]) + "stats",
                            std::string(kApiPrefixes[1]) + "stats", std::string("/api/stats")}) {
    router.Add("GET", route,
               [this, route](const Request&, std::string_view, std::shared_ptr<Responder> r) {
                 HandleStats(route, *r);
               });
  }
  router.Get("/healthz", [] { return JsonResponse(200, R"({"status": "ok"})"); });
  router.Add(
      "GET", "/readyz",
      [this](const Request&, std::string_view, std::shared_ptr<Responder> r) { HandleReady(*r); });
  router.Get("/metrics", [this] {
    Response resp;
    resp.content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp.body = RenderMetrics();
    return resp;
  });
}

bool RefuseMutation(LockApi& api, const Request& req, Responder& r) {
  if (Status s = api.Authorize(req.Header("authorization"), req); !s.ok()) {
    Response resp = StatusResponse(s);
    resp.headers.emplace_back("WWW-Authenticate", "Bearer");
    r.Send(std::move(resp));
    return true;
  }
  if (http::CrossSite(req)) {
    r.Send(ErrorResponse(403, "cross-site request refused"));
    return true;
  }
  return false;
}

void TokenService::HandleLock(const Request& req, std::string_view timeout,
                              std::shared_ptr<Responder> r) {
  if (RefuseMutation(api_, req, *r)) return;
  auto wait = api_.ParseWait(timeout);
  if (!wait.ok()) return r->Send(StatusResponse(wait.status()));
  auto query = http::ParseQuery(req.query, {"ttl", "holder"});
  if (!query.ok()) return r->Send(StatusResponse(query.status()));
  LockRequest lr;
  lr.wait = *wait;
  if (auto it = query->find("ttl"); it != query->end()) {
    auto ttl = api_.ParseTtl(it->second);
    if (!ttl.ok()) return r->Send(StatusResponse(ttl.status()));
    lr.ttl = *ttl;
  }
  if (auto it = query->find("holder"); it != query->end()) {
    if (Status s = LockApi::CheckHolder(it->second); !s.ok()) return r->Send(StatusResponse(s));
    lr.holder = it->second;
  } else {
    lr.holder = req.remote_address.empty() ? "unknown" : req.remote_address;
  }
  // A waiter whose client hangs up leaves the queue through the responder's cancel callback
  // (the connection notices the hang-up while the long poll is pending).
  std::string holder = lr.holder;
  auto cancel = api_.Lock(std::move(lr), [r](StatusOr<lock::Grant> g) {
    if (!g.ok()) return r->Send(StatusResponse(g.status()));
    r->Send(JsonResponse(200, GrantJson(*g)));
  });
  if (!r->done()) {
    r->OnCancel([cancel, holder] {
      LockApi::LogWaiterGone(holder);
      cancel();
    });
  }
}

void TokenService::HandleRelease(const Request& req, std::string_view id,
                                 std::shared_ptr<Responder> r) {
  if (RefuseMutation(api_, req, *r)) return;
  if (auto query = http::ParseQuery(req.query, {}); !query.ok()) {
    return r->Send(StatusResponse(query.status()));
  }
  api_.Release(id, [r](Status s) {
    if (!s.ok()) return r->Send(StatusResponse(s));
    r->Send(JsonResponse(200, "\"Released\""));
  });
}

void TokenService::HandleRenew(const Request& req, std::string_view id,
                               std::shared_ptr<Responder> r) {
  if (RefuseMutation(api_, req, *r)) return;
  auto query = http::ParseQuery(req.query, {"ttl"});
  if (!query.ok()) return r->Send(StatusResponse(query.status()));
  std::optional<lock::Seconds> ttl;
  if (auto it = query->find("ttl"); it != query->end()) {
    auto t = api_.ParseTtl(it->second);
    if (!t.ok()) return r->Send(StatusResponse(t.status()));
    ttl = *t;
  }
  api_.Renew(std::string(id), ttl, [r](StatusOr<lock::Grant> g) {
    if (!g.ok()) return r->Send(StatusResponse(g.status()));
    r->Send(JsonResponse(200, GrantJson(*g)));
  });
}

void TokenService::HandleStatus(std::shared_ptr<Responder> r) {
  api_.GetStatus([r](StatusOr<lock::View> v) {
    if (!v.ok()) return r->Send(StatusResponse(v.status()));
    json j = {{"held", v->held}, {"waiters", v->waiters}, {"last_token", v->last_token}};
    if (v->held) {
      j["holder"] = v->holder;
      j["token"] = v->token;
      j["ttl"] = v->ttl.count();
      j["acquired_at"] = Rfc3339(v->acquired_at);
      j["acquired_at_unix_ms"] = UnixMillis(v->acquired_at);
      j["expires_in_ms"] = v->expires_in.count();
      j["held_for_ms"] = v->held_for.count();
    } else {
      j["holder"] = nullptr;
      j["token"] = nullptr;
    }
    r->Send(JsonResponse(200, j.dump()));
  });
}

void TokenService::HandleStats(const std::string& route, Responder& r) {
  std::map<std::string, uint64_t> stats = router_.stats();
  ++stats[route];  // this request counts, as in the seed
  r.Send(JsonResponse(200, json(stats).dump(2)));
}

void TokenService::HandleReady(Responder& r) {
  if (!store_.Ready()) return r.Send(ErrorResponse(503, "not ready: " + store_.NotReadyReason()));
  // Foreign data under the etcd prefix is shown, not a reason to be unready.
  std::string warning = store_.StoreWarning();
  if (warning.empty()) return r.Send(JsonResponse(200, R"({"status": "ready"})"));
  r.Send(JsonResponse(200, json{{"status", "ready"}, {"warning", warning}}.dump()));
}

std::string TokenService::RenderMetrics() {
  lock::Counters c = store_.CountersSnapshot();
  MetricsText m;
  m.Counter("tokenmgr_lock_grants_total", "Locks granted.", c.grants);
  m.Counter("tokenmgr_lock_releases_total", "Locks released by their holder.", c.releases);
  m.Counter("tokenmgr_lock_expiries_total", "Leases that ended by expiry.", c.expiries);
  m.Counter("tokenmgr_lock_renewals_total", "Lease renewals.", c.renewals);
  m.Counter("tokenmgr_lock_wait_timeouts_total", "Waiters whose wait ran out.", c.wait_timeouts);
  m.Counter("tokenmgr_lock_wait_cancels_total", "Waiters whose client went away.", c.wait_cancels);
  m.Counter("tokenmgr_lock_rejected_total", "Lock requests refused at once (busy or queue full).",
            c.rejected_busy);
  m.Counter("tokenmgr_store_persist_failures_total", "State changes the store failed to persist.",
            c.persist_failures);
  m.Gauge("tokenmgr_store_foreign_records", "Entries in the store tokenmgr cannot use (etcd).",
          static_cast<double>(c.foreign_records));
  m.Histogram(c.wait_seconds, "tokenmgr_lock_wait_seconds", "Time from lock request to grant.");
  // The embedded store answers at once; a remote store may answer later, so the callback only
  // refreshes a member and the gauges show the last known view.
  store_.GetView([this](StatusOr<lock::View> v) {
    if (v.ok()) last_view_ = *v;
  });
  const lock::View& view = last_view_;
  m.Gauge("tokenmgr_ready", "1 if this replica can serve the lock (what /readyz says).",
          store_.Ready() ? 1 : 0);
  m.Gauge("tokenmgr_lock_held", "1 if the lock is held.", view.held ? 1 : 0);
  m.Gauge("tokenmgr_lock_waiters", "Clients waiting for the lock.",
          static_cast<double>(view.waiters));
  m.Gauge("tokenmgr_lock_holder_lease_age_seconds",
          "How long the current holder has held the lock.",
          view.held ? view.held_for.count() / 1000.0 : 0);
  m.Gauge("tokenmgr_lock_last_token", "Highest fencing token granted.",
          static_cast<double>(view.last_token));
  m.Family("tokenmgr_http_requests_total", "counter", "HTTP requests by route and code.");
  for (const http::Router::Count& n : router_.counts()) {
    std::string code = std::to_string(n.status);
    m.CountSample("tokenmgr_http_requests_total", {{"route", n.route}, {"code", code}},
                  n.responses);
  }
  if (server_stats_) {
    m.Gauge("tokenmgr_http_open_connections", "Open client connections.",
            static_cast<double>(server_stats_->open));
    m.Counter("tokenmgr_http_rejected_connections_total", "Connections refused over the limit.",
              server_stats_->rejected_connections);
    m.Counter("tokenmgr_http_bad_requests_total", "Malformed or oversized requests.",
              server_stats_->bad_requests);
    m.Counter("tokenmgr_http_timeouts_total", "Idle or slow connections closed.",
              server_stats_->timeouts);
  }
  m.Gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
          static_cast<double>(ResidentBytes()));
  m.Append(RenderProcessMetrics("tokenmgr"));
  for (const auto& render : extra_metrics_) m.Append(render());
  return m.Take();
}

}  // namespace lm::tokenmgr
