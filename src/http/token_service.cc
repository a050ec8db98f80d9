#include "http/token_service.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/histogram.h"
#include "common/strings.h"

namespace lm::http {

using nlohmann::json;

namespace {

constexpr std::string_view kPrefixes[] = {"/api/token/", "/api/tokenmgr/"};

// Splits "/api/token/lock/5" after the prefix into {"lock", "5"}.
std::vector<std::string_view> Segments(std::string_view rest) {
  std::vector<std::string_view> out;
  while (true) {
    auto slash = rest.find('/');
    out.push_back(rest.substr(0, slash));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return out;
}

Response MethodNotAllowed(std::string_view allow) {
  Response r = ErrorResponse(405, "Method not allowed");
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

std::string GrantJson(const lock::Grant& g) {
  // On every grant: formatted directly (nlohmann's serializer was the largest user-space cost
  // of a lock+release cycle). The id is JSON-escaped anyway, though ours are plain UUIDs.
  return fmt::format(R"({{"expires_in_ms":{},"id":"{}","token":{},"ttl":{}}})",
                     g.expires_in.count(), JsonEscape(g.id), g.token, g.ttl.count());
}

std::string Rfc3339(WallTime t) {
  auto ms = UnixMillis(t);
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
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

// A cross-site browser request must not take or release the lock (CSRF). Non-browser clients
// send neither header.
bool CrossSite(const Request& req) {
  if (req.Header("sec-fetch-site") == "cross-site") return true;
  std::string_view origin = req.Header("origin");
  if (origin.empty() || origin == "null") return !origin.empty();
  auto scheme = origin.find("://");
  std::string_view host = scheme == std::string_view::npos ? origin : origin.substr(scheme + 3);
  return host != req.Header("host");
}

int HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kFailedPrecondition: return 409;
    case StatusCode::kDeadlineExceeded: return 409;
    case StatusCode::kUnavailable: return 503;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kUnauthenticated: return 401;
    case StatusCode::kResourceExhausted: return 503;
    case StatusCode::kDataLoss: return 500;
    case StatusCode::kInternal: return 500;
  }
  return 500;
}

StatusOr<std::map<std::string, std::string>> ParseQuery(std::string_view query) {
  std::map<std::string, std::string> out;
  if (query.empty()) return out;
  int count = 0;
  while (true) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    if (!pair.empty()) {
      if (++count > 32) return InvalidArgument("too many query parameters");
      auto eq = pair.find('=');
      auto key = PercentDecode(pair.substr(0, eq));
      auto value = PercentDecode(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
      if (!key.ok() || !value.ok()) return InvalidArgument("malformed query string");
      if (!out.emplace(std::move(*key), std::move(*value)).second) {
        return InvalidArgument("repeated query parameter");
      }
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

TokenService::TokenService(lock::LockService& lock, TokenServiceOptions options)
    : lock_(lock), options_(std::move(options)) {}

void TokenService::AddRoute(std::string method, std::string path, ExtraRoute handler) {
  extra_[std::move(path)][std::move(method)] = std::move(handler);
}

bool TokenService::Authorized(const Request& req) const {
  if (!options_.auth_token) return true;
  std::string_view h = req.Header("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (h.size() <= kBearer.size() || h.substr(0, kBearer.size()) != kBearer) return false;
  return ConstantTimeEquals(h.substr(kBearer.size()), *options_.auth_token);
}

void TokenService::Count(const std::string& route, int status) {
  ++hits_[route];
  ++by_route_code_[{route, status}];
}

void TokenService::Handle(const Request& req, std::shared_ptr<Responder> outer) {
  // Find the route first, so stats and metrics are keyed by route, never by raw URI.
  std::string route;
  std::string_view path = req.path;
  std::string_view api_prefix;
  std::vector<std::string_view> segs;
  for (std::string_view p : kPrefixes) {
    if (path.substr(0, p.size()) == p) {
      api_prefix = p;
      segs = Segments(path.substr(p.size()));
      break;
    }
  }
  enum class R { kNone, kLock, kRelease, kRenew, kStatus, kStats, kHealth, kReady, kMetrics, kExtra };
  R which = R::kNone;
  std::string_view allow = "GET";
  std::string prefix(api_prefix);
  if (!api_prefix.empty() && segs.size() == 2 && !segs[1].empty()) {
    if (segs[0] == "lock") which = R::kLock, route = prefix + "lock/:timeout";
    if (segs[0] == "release") which = R::kRelease, route = prefix + "release/:id", allow = "POST";
    if (segs[0] == "renew") which = R::kRenew, route = prefix + "renew/:id", allow = "POST";
  } else if (!api_prefix.empty() && segs.size() == 1) {
    if (segs[0] == "status") which = R::kStatus, route = prefix + "status";
    if (segs[0] == "stats") which = R::kStats, route = prefix + "stats";
  } else if (path == "/api/stats") {
    which = R::kStats, route = "/api/stats";
  } else if (path == "/healthz") {
    which = R::kHealth, route = "/healthz";
  } else if (path == "/readyz") {
    which = R::kReady, route = "/readyz";
  } else if (path == "/metrics") {
    which = R::kMetrics, route = "/metrics";
  }
  const std::map<std::string, ExtraRoute>* extra = nullptr;
  std::string extra_allow;
  if (which == R::kNone) {
    if (auto it = extra_.find(std::string(path)); it != extra_.end()) {
      which = R::kExtra, route = std::string(path), extra = &it->second;
      for (const auto& [method, h] : *extra) extra_allow += (extra_allow.empty() ? "" : ", ") + method;
      allow = extra_allow;
    }
  }
  if (which == R::kNone) route = "(unmatched)";

  // Count the status when the response goes out, however late that is.
  auto r = std::make_shared<Responder>([this, route, outer](Response resp) {
    Count(route, resp.status);
    outer->Send(std::move(resp));
  });
  outer->OnCancel([r] { r->Cancel(); });
  r->SetConnectionProbe([outer] { return outer->ClientConnected(); });

  if (which == R::kNone) return r->Send(ErrorResponse(404, "Resource not found"));
  bool method_ok = extra ? extra->count(req.method) > 0 : req.method == allow;
  if (!method_ok) return r->Send(MethodNotAllowed(allow));

  switch (which) {
    case R::kLock: return HandleLock(req, segs[1], r);
    case R::kRelease: return HandleRelease(req, segs[1], r);
    case R::kRenew: return HandleRenew(req, segs[1], r);
    case R::kStatus: return HandleStatus(r);
    case R::kStats: {
      json j = json::object();
      for (const auto& [k, v] : hits_) j[k] = v;
      j[route] = hits_[route] + 1;  // this request counts, as in the seed
      return r->Send(JsonResponse(200, j.dump(2)));
    }
    case R::kHealth: return r->Send(JsonResponse(200, R"({"status": "ok"})"));
    case R::kReady:
      if (lock_.Ready()) return r->Send(JsonResponse(200, R"({"status": "ready"})"));
      return r->Send(ErrorResponse(503, "not ready: lock store unavailable"));
    case R::kMetrics: {
      Response resp;
      resp.content_type = "text/plain; version=0.0.4; charset=utf-8";
      resp.body = RenderMetrics();
      return r->Send(std::move(resp));
    }
    case R::kExtra: return extra->at(req.method)(req, r);
    case R::kNone: break;
  }
}

bool TokenService::RefuseMutation(const Request& req, Responder& r) const {
  if (!Authorized(req)) {
    Response resp = ErrorResponse(401, "missing or wrong bearer token");
    resp.headers.emplace_back("WWW-Authenticate", "Bearer");
    r.Send(std::move(resp));
    return true;
  }
  if (CrossSite(req)) {
    r.Send(ErrorResponse(403, "cross-site request refused"));
    return true;
  }
  return false;
}

void TokenService::HandleLock(const Request& req, std::string_view timeout,
                              std::shared_ptr<Responder> r) {
  if (RefuseMutation(req, *r)) return;
  const lock::Options& o = lock_.options();
  auto wait = ParseWholeNumber(timeout, "timeout", o.max_wait.count());
  if (!wait.ok()) return r->Send(ErrorResponse(400, wait.status().message()));
  auto query = ParseQuery(req.query);
  if (!query.ok()) return r->Send(ErrorResponse(400, query.status().message()));
  lock::AcquireRequest ar;
  ar.wait = lock::Seconds(*wait);
  ar.ttl = o.default_ttl;
  if (auto it = query->find("ttl"); it != query->end()) {
    auto ttl = ParseWholeNumber(it->second, "ttl", o.max_ttl.count());
    if (!ttl.ok()) return r->Send(ErrorResponse(400, ttl.status().message()));
    if (*ttl == 0) return r->Send(ErrorResponse(400, "ttl must be at least 1 second"));
    ar.ttl = lock::Seconds(*ttl);
  }
  if (auto it = query->find("holder"); it != query->end()) {
    if (Status s = ValidateLabel(it->second, "holder"); !s.ok()) {
      return r->Send(ErrorResponse(400, s.message()));
    }
    ar.holder = it->second;
  } else {
    ar.holder = req.remote_address.empty() ? "unknown" : req.remote_address;
  }
  std::string holder = ar.holder;
  ar.alive = [r] { return r->ClientConnected(); };
  auto cancel = lock_.Acquire(std::move(ar), [r, holder](StatusOr<lock::Grant> g) {
    if (!g.ok()) {
      return r->Send(ErrorResponse(HttpStatusFor(g.status().code()), g.status().message()));
    }
    spdlog::info("lock granted to '{}' token={} ttl={}s id={}", holder, g->token, g->ttl.count(),
                 Redact(g->id));
    r->Send(JsonResponse(200, GrantJson(*g)));
  });
  if (!r->done()) {
    r->OnCancel([cancel, holder] {
      spdlog::info("waiter '{}' went away; it leaves the queue", holder);
      cancel();
    });
  }
}

void TokenService::HandleRelease(const Request& req, std::string_view id,
                                 std::shared_ptr<Responder> r) {
  if (RefuseMutation(req, *r)) return;
  std::string id_str(id);
  lock_.Release(id_str, [r, id_str](Status s) {
    if (!s.ok()) return r->Send(ErrorResponse(HttpStatusFor(s.code()), s.message()));
    spdlog::info("lock released id={}", Redact(id_str));
    r->Send(JsonResponse(200, "\"Released\""));
  });
}

void TokenService::HandleRenew(const Request& req, std::string_view id,
                               std::shared_ptr<Responder> r) {
  if (RefuseMutation(req, *r)) return;
  const lock::Options& o = lock_.options();
  auto query = ParseQuery(req.query);
  if (!query.ok()) return r->Send(ErrorResponse(400, query.status().message()));
  lock::Seconds ttl = o.default_ttl;
  if (auto it = query->find("ttl"); it != query->end()) {
    auto t = ParseWholeNumber(it->second, "ttl", o.max_ttl.count());
    if (!t.ok()) return r->Send(ErrorResponse(400, t.status().message()));
    if (*t == 0) return r->Send(ErrorResponse(400, "ttl must be at least 1 second"));
    ttl = lock::Seconds(*t);
  }
  lock_.Renew(std::string(id), ttl, [r](StatusOr<lock::Grant> g) {
    if (!g.ok()) {
      return r->Send(ErrorResponse(HttpStatusFor(g.status().code()), g.status().message()));
    }
    r->Send(JsonResponse(200, GrantJson(*g)));
  });
}

void TokenService::HandleStatus(std::shared_ptr<Responder> r) {
  lock_.GetView([r](StatusOr<lock::View> v) {
    if (!v.ok()) return r->Send(ErrorResponse(HttpStatusFor(v.status().code()), v.status().message()));
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

std::string TokenService::RenderMetrics() {
  lock::Counters c = lock_.CountersSnapshot();
  std::string out;
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    out += MetricHeader(name, "counter", help);
    out += std::string(name) + " " + std::to_string(v) + "\n";
  };
  auto gauge = [&](const char* name, const char* help, double v) {
    out += MetricHeader(name, "gauge", help);
    out += std::string(name) + " " + FormatMetricValue(v) + "\n";
  };
  counter("tokenmgr_lock_grants_total", "Locks granted.", c.grants);
  counter("tokenmgr_lock_releases_total", "Locks released by their holder.", c.releases);
  counter("tokenmgr_lock_expiries_total", "Leases that ended by expiry.", c.expiries);
  counter("tokenmgr_lock_renewals_total", "Lease renewals.", c.renewals);
  counter("tokenmgr_lock_wait_timeouts_total", "Waiters whose wait ran out.", c.wait_timeouts);
  counter("tokenmgr_lock_wait_cancels_total", "Waiters whose client went away.", c.wait_cancels);
  counter("tokenmgr_lock_rejected_total", "Lock requests refused at once (busy or queue full).",
          c.rejected_busy);
  counter("tokenmgr_store_persist_failures_total", "State changes the store failed to persist.",
          c.persist_failures);
  out += c.wait_seconds.Render("tokenmgr_lock_wait_seconds", "Time from lock request to grant.");
  // Status() completes synchronously for the embedded store; for remote stores the gauges
  // show the last known view.
  // The embedded store answers at once; a remote store may answer later, so the callback only
  // refreshes a member and the gauges show the last known view.
  lock_.GetView([this](StatusOr<lock::View> v) {
    if (v.ok()) last_view_ = *v;
  });
  const lock::View& view = last_view_;
  gauge("tokenmgr_lock_held", "1 if the lock is held.", view.held ? 1 : 0);
  gauge("tokenmgr_lock_waiters", "Clients waiting for the lock.", static_cast<double>(view.waiters));
  gauge("tokenmgr_lock_holder_lease_age_seconds", "How long the current holder has held the lock.",
        view.held ? view.held_for.count() / 1000.0 : 0);
  gauge("tokenmgr_lock_last_token", "Highest fencing token granted.",
        static_cast<double>(view.last_token));
  out += MetricHeader("tokenmgr_http_requests_total", "counter", "HTTP requests by route and code.");
  for (const auto& [key, v] : by_route_code_) {
    out += "tokenmgr_http_requests_total{route=\"" + JsonEscape(key.first) + "\",code=\"" +
           std::to_string(key.second) + "\"} " + std::to_string(v) + "\n";
  }
  if (server_stats_) {
    gauge("tokenmgr_http_open_connections", "Open client connections.",
          static_cast<double>(server_stats_->open));
    counter("tokenmgr_http_rejected_connections_total", "Connections refused over the limit.",
            server_stats_->rejected_connections);
    counter("tokenmgr_http_bad_requests_total", "Malformed or oversized requests.",
            server_stats_->bad_requests);
    counter("tokenmgr_http_timeouts_total", "Idle or slow connections closed.",
            server_stats_->timeouts);
  }
  gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
        static_cast<double>(ResidentBytes()));
  return out;
}

}  // namespace lm::http
