#include "http/token_service.h"

#include <fmt/compile.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "common/histogram.h"
#include "common/log.h"
#include "common/process_metrics.h"
#include "common/strings.h"

namespace lm::http {

using nlohmann::json;

namespace {

constexpr std::string_view kPrefixes[] = {"/api/token/", "/api/tokenmgr/"};

// What a request asks for. The first five are served under each prefix, in this order, so
// their route number is prefix index * kPerPrefix + kind.
enum class R { kLock, kRelease, kRenew, kStatus, kStats, kHealth, kReady, kMetrics, kExtra, kNone };
constexpr std::string_view kPrefixedRoutes[] = {"lock/:timeout", "release/:id", "renew/:id",
                                                "status", "stats"};
constexpr int kPerPrefix = 5;
// Route numbers of the routes without a prefix, after the prefixed ones.
constexpr int kApiStatsRoute = 2 * kPerPrefix, kHealthRoute = kApiStatsRoute + 1,
              kReadyRoute = kApiStatsRoute + 2, kMetricsRoute = kApiStatsRoute + 3,
              kUnmatchedRoute = kApiStatsRoute + 4;

Response MethodNotAllowed(std::string_view allow) {
  Response r = ErrorResponse(405, "Method not allowed");
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

std::string GrantJson(const lock::Grant& g) {
  // On every grant: formatted directly (nlohmann's serializer was the largest user-space cost
  // of a lock+release cycle). Ours are plain UUIDs; anything else is JSON-escaped.
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

QueryParams::const_iterator QueryParams::find(std::string_view name) const {
  return std::find_if(pairs_.begin(), pairs_.end(), [&](const Pair& p) { return p.first == name; });
}

const std::string& QueryParams::at(std::string_view name) const {
  auto it = find(name);
  if (it == end()) throw std::out_of_range("no query parameter " + std::string(name));
  return it->second;
}

bool QueryParams::Add(std::string name, std::string value) {
  if (find(name) != end()) return false;
  pairs_.emplace_back(std::move(name), std::move(value));
  return true;
}

StatusOr<QueryParams> ParseQuery(std::string_view query) {
  QueryParams out;
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
      if (!out.Add(std::move(*key), std::move(*value))) {
        return InvalidArgument("repeated query parameter");
      }
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

StatusOr<QueryParams> ParseQuery(std::string_view query,
                                 std::initializer_list<std::string_view> known) {
  auto params = ParseQuery(query);
  if (!params.ok()) return params;
  for (const auto& [name, value] : *params) {
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    std::string list;
    for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
    return InvalidArgument("unknown query parameter '" + JsonEscape(name.substr(0, 64)) + "'" +
                           (list.empty() ? "; this route takes none"
                                         : "; this route takes: " + list + " (lower case)"));
  }
  return params;
}

TokenService::TokenService(lock::LockService& lock, TokenServiceOptions options)
    : lock_(lock), options_(std::move(options)) {
  for (std::string_view prefix : kPrefixes) {
    for (std::string_view route : kPrefixedRoutes) {
      AddRouteName(std::string(prefix) + std::string(route));
    }
  }
  for (const char* route : {"/api/stats", "/healthz", "/readyz", "/metrics", "(unmatched)"}) {
    AddRouteName(route);
  }
}

int TokenService::AddRouteName(std::string name) {
  routes_.push_back(RouteCounts{std::move(name), 0, {}});
  return static_cast<int>(routes_.size()) - 1;
}

void TokenService::AddRoute(std::string method, std::string path, ExtraRoute handler) {
  auto it = extra_.find(path);
  if (it == extra_.end()) {
    int route = AddRouteName(path);
    it = extra_.emplace(std::move(path), ExtraPath{route, {}, {}}).first;
  }
  ExtraPath& e = it->second;
  e.by_method[std::move(method)] = std::move(handler);
  e.allow.clear();
  for (const auto& [m, h] : e.by_method) {
    e.allow += (e.allow.empty() ? "" : ", ") + m;
    if (m == "GET" && !e.by_method.count("HEAD")) e.allow += ", HEAD";
  }
}

std::map<std::string, uint64_t> TokenService::stats() const {
  std::map<std::string, uint64_t> out;
  for (const RouteCounts& rc : routes_) {
    if (rc.hits > 0) out[rc.name] = rc.hits;
  }
  return out;
}

void TokenService::OnResponse(int route, int status) {
  RouteCounts& rc = routes_[static_cast<size_t>(route)];
  ++rc.hits;
  for (auto& [code, n] : rc.by_code) {
    if (code == status) {
      ++n;
      return;
    }
  }
  rc.by_code.emplace_back(status, 1);
}

bool TokenService::Authorized(const Request& req) const {
  if (!options_.auth_token) return true;
  std::string_view h = req.Header("authorization");
  // The scheme is case-insensitive (RFC 9110 11.1), then one or more spaces, then the token.
  constexpr std::string_view kBearer = "bearer";
  if (h.size() <= kBearer.size() + 1 || h[kBearer.size()] != ' ') return false;
  for (size_t i = 0; i < kBearer.size(); ++i) {
    if ((h[i] | 0x20) != kBearer[i]) return false;
  }
  h.remove_prefix(kBearer.size());
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  return ConstantTimeEquals(h, *options_.auth_token);
}

void TokenService::Handle(const Request& req, std::shared_ptr<Responder> r) {
  // Find the route first, so stats and metrics are keyed by route, never by raw URI.
  std::string_view path = req.path;
  R which = R::kNone;
  int route = kUnmatchedRoute;
  std::string_view wanted = "GET";       // the method a built-in route takes
  std::string_view allow = "GET, HEAD";  // what a 405 names
  std::string_view arg;  // :timeout or :id
  for (size_t p = 0; p < std::size(kPrefixes); ++p) {
    std::string_view prefix = kPrefixes[p];
    if (path.substr(0, prefix.size()) != prefix) continue;
    std::string_view rest = path.substr(prefix.size());
    auto slash = rest.find('/');
    std::string_view first = rest.substr(0, slash);
    if (slash == std::string_view::npos) {
      if (first == "status") which = R::kStatus;
      if (first == "stats") which = R::kStats;
    } else {
      arg = rest.substr(slash + 1);
      if (!arg.empty() && arg.find('/') == std::string_view::npos) {
        // Not HEAD: a lease whose id nobody sees would hold the lock for its whole TTL.
        if (first == "lock") which = R::kLock, allow = "GET";
        if (first == "release") which = R::kRelease, wanted = allow = "POST";
        if (first == "renew") which = R::kRenew, wanted = allow = "POST";
      }
    }
    if (which != R::kNone) route = static_cast<int>(p) * kPerPrefix + static_cast<int>(which);
    break;
  }
  if (which == R::kNone) {
    if (path == "/api/stats") which = R::kStats, route = kApiStatsRoute;
    if (path == "/healthz") which = R::kHealth, route = kHealthRoute;
    if (path == "/readyz") which = R::kReady, route = kReadyRoute;
    if (path == "/metrics") which = R::kMetrics, route = kMetricsRoute;
  }
  const ExtraPath* extra = nullptr;
  if (which == R::kNone) {
    if (auto it = extra_.find(path); it != extra_.end()) {
      which = R::kExtra, extra = &it->second, route = extra->route, allow = extra->allow;
    }
  }
  // Count the status when the response goes out, however late that is.
  r->Observe(this, route);

  if (which == R::kNone) return r->Send(ErrorResponse(404, "Resource not found"));
  // HEAD is answered as GET where GET is allowed (and not the lock route); the server leaves
  // out the body.
  std::string_view method = req.method;
  if (method == "HEAD" && allow.find("HEAD") != std::string_view::npos) method = "GET";
  bool method_ok = extra ? extra->by_method.count(method) > 0 : method == wanted;
  if (!method_ok) return r->Send(MethodNotAllowed(allow));

  switch (which) {
    case R::kLock: return HandleLock(req, arg, r);
    case R::kRelease: return HandleRelease(req, arg, r);
    case R::kRenew: return HandleRenew(req, arg, r);
    case R::kStatus: return HandleStatus(r);
    case R::kStats: {
      json j = stats();
      const RouteCounts& self = routes_[static_cast<size_t>(route)];
      j[self.name] = self.hits + 1;  // this request counts, as in the seed
      return r->Send(JsonResponse(200, j.dump(2)));
    }
    case R::kHealth: return r->Send(JsonResponse(200, R"({"status": "ok"})"));
    case R::kReady:
      if (lock_.Ready()) {
        // Foreign data under the etcd prefix is shown, not a reason to be unready.
        std::string warning = lock_.StoreWarning();
        if (warning.empty()) return r->Send(JsonResponse(200, R"({"status": "ready"})"));
        return r->Send(JsonResponse(200, json{{"status", "ready"}, {"warning", warning}}.dump()));
      }
      return r->Send(ErrorResponse(503, "not ready: " + lock_.NotReadyReason()));
    case R::kMetrics: {
      Response resp;
      resp.content_type = "text/plain; version=0.0.4; charset=utf-8";
      resp.body = RenderMetrics();
      return r->Send(std::move(resp));
    }
    case R::kExtra:
      return extra->by_method.find(method)->second(req, r);
    case R::kNone: break;
  }
}

bool TokenService::RefuseMutation(const Request& req, Responder& r) {
  if (!Authorized(req)) {
    // A client can cause these at any rate: one line per 10 s, with the count held back.
    // The path's last segment may be a lease id: it is not logged.
    std::string_view path = req.path;
    path = path.substr(0, std::min<size_t>(path.rfind('/') + 1, 128));
    if (uint64_t held_back = 0;
        unauthorized_log_.Allow(std::chrono::steady_clock::now(), held_back)) {
      spdlog::warn(
          "refused {} {}… from {}: 401, {} bearer token{}", req.method, JsonEscape(path),
          req.remote_address.empty() ? "?" : req.remote_address,
          req.Header("authorization").empty() ? "no" : "wrong",
          held_back ? fmt::format(" ({} more 401s since the last such line)", held_back) : "");
    }
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
  auto query = ParseQuery(req.query, {"ttl", "holder"});
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
  // A waiter whose client hangs up leaves the queue through OnCancel below (the connection
  // notices the hang-up while the request is pending).
  auto cancel = lock_.Acquire(std::move(ar), [r, holder](StatusOr<lock::Grant> g) {
    if (!g.ok()) {
      return r->Send(ErrorResponse(HttpStatusFor(g.status().code()), g.status().message()));
    }
    LogInfoCompiled(FMT_COMPILE("lock granted to '{}' token={} ttl={}s id={}"), holder, g->token,
                    g->ttl.count(), Redact(g->id));
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
  if (auto query = ParseQuery(req.query, {}); !query.ok()) {
    return r->Send(ErrorResponse(400, query.status().message()));
  }
  // Who held the lock, for the log line: a release that succeeds ended the lease this view
  // shows (GetView answers at once in both stores, and there is one lock).
  std::string holder;
  uint64_t token = 0;
  lock_.GetView([&](StatusOr<lock::View> v) {
    if (v.ok() && v->held) holder = v->holder, token = v->token;
  });
  // The log shows the id redacted.
  lock_.Release(id, [r, shown = Redact(id), holder = std::move(holder), token](Status s) {
    if (!s.ok()) return r->Send(ErrorResponse(HttpStatusFor(s.code()), s.message()));
    LogInfoCompiled(FMT_COMPILE("lock released by '{}' token={} id={}"), holder, token, shown);
    r->Send(JsonResponse(200, "\"Released\""));
  });
}

void TokenService::HandleRenew(const Request& req, std::string_view id,
                               std::shared_ptr<Responder> r) {
  if (RefuseMutation(req, *r)) return;
  const lock::Options& o = lock_.options();
  auto query = ParseQuery(req.query, {"ttl"});
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
  gauge("tokenmgr_store_foreign_records", "Entries in the store tokenmgr cannot use (etcd).",
        static_cast<double>(c.foreign_records));
  out += c.wait_seconds.Render("tokenmgr_lock_wait_seconds", "Time from lock request to grant.");
  // The embedded store answers at once; a remote store may answer later, so the callback only
  // refreshes a member and the gauges show the last known view.
  lock_.GetView([this](StatusOr<lock::View> v) {
    if (v.ok()) last_view_ = *v;
  });
  const lock::View& view = last_view_;
  gauge("tokenmgr_ready", "1 if this replica can serve the lock (what /readyz says).",
        lock_.Ready() ? 1 : 0);
  gauge("tokenmgr_lock_held", "1 if the lock is held.", view.held ? 1 : 0);
  gauge("tokenmgr_lock_waiters", "Clients waiting for the lock.", static_cast<double>(view.waiters));
  gauge("tokenmgr_lock_holder_lease_age_seconds", "How long the current holder has held the lock.",
        view.held ? view.held_for.count() / 1000.0 : 0);
  gauge("tokenmgr_lock_last_token", "Highest fencing token granted.",
        static_cast<double>(view.last_token));
  out += MetricHeader("tokenmgr_http_requests_total", "counter", "HTTP requests by route and code.");
  std::map<std::pair<std::string_view, int>, uint64_t> by_route_code;  // sorted output
  for (const RouteCounts& rc : routes_) {
    for (const auto& [code, n] : rc.by_code) by_route_code[{rc.name, code}] = n;
  }
  for (const auto& [key, v] : by_route_code) {
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
  out += RenderProcessMetrics("tokenmgr");
  for (const auto& render : extra_metrics_) out += render();
  return out;
}

}  // namespace lm::http
