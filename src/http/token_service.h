// TokenService: the tokenmgr HTTP API (routes, parameters, status codes, stats, metrics) on top
// of a LockService. Not thread-safe: runs on the server's event-loop thread.
//
//   TokenService api(lock_service, {.auth_token = token});
//   HttpServer server(io, server_options, api);
//   api.SetServerStats(&server.stats());
//
// Every route is served under /api/token/... (the seed's code) and /api/tokenmgr/... (the seed's
// README). See docs/api.md for the contract.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/log.h"
#include "http/message.h"
#include "http/server.h"
#include "lock/lock_service.h"

namespace lm::http {

struct TokenServiceOptions {
  std::optional<std::string> auth_token;  // when set, lock/renew/release need it
};

// A route handler the UI (or other extensions) can register. It receives the request and the
// responder; it returns the HTTP status for accounting only after it sent synchronously, or
// the server counts the status at send time.
using ExtraRoute = std::function<void(const Request&, std::shared_ptr<Responder>)>;

class TokenService final : public Handler, private ResponseObserver {
 public:
  TokenService(lock::LockService& lock, TokenServiceOptions options);

  void Handle(const Request& request, std::shared_ptr<Responder> responder) override;

  void SetServerStats(const ServerStats* stats) { server_stats_ = stats; }

  // Adds a route for an exact path and method (e.g. the HTML page and its form POSTs). The path
  // is its stats key. Other methods on a registered path get 405 with Allow. A GET route also
  // answers HEAD (the same response; the server sends no body).
  void AddRoute(std::string method, std::string path, ExtraRoute handler);
  void AddGetRoute(std::string path, ExtraRoute handler) {
    AddRoute("GET", std::move(path), std::move(handler));
  }

  // Adds series to /metrics: `render` runs on every scrape and returns Prometheus text (HELP,
  // TYPE and samples), appended after the built-in series. E.g. the pool view's gauges.
  void AddMetrics(std::function<std::string()> render) {
    extra_metrics_.push_back(std::move(render));
  }

  // The seed's /api/stats map: route -> hits (routes with at least one hit).
  std::map<std::string, uint64_t> stats() const;

  // True when a mutating request carries the right bearer token (or auth is off).
  bool Authorized(const Request& request) const;

  lock::LockService& lock_service() { return lock_; }
  bool auth_enabled() const { return options_.auth_token.has_value(); }

 private:
  // Sends 401 (auth on, wrong or missing token) or 403 (cross-site) and returns true, or
  // returns false when the lock may be taken, renewed or released.
  // 401s are logged, at most one line per 10 s.
  bool RefuseMutation(const Request& req, Responder& r);
  void HandleLock(const Request& req, std::string_view timeout, std::shared_ptr<Responder> r);
  void HandleRelease(const Request& req, std::string_view id, std::shared_ptr<Responder> r);
  void HandleRenew(const Request& req, std::string_view id, std::shared_ptr<Responder> r);
  void HandleStatus(std::shared_ptr<Responder> r);
  std::string RenderMetrics();
  // Counts a response by route (the tag: an index into routes_) and status.
  void OnResponse(int route, int status) override;
  int AddRouteName(std::string name);

  // A stats key and its counts. Routes are numbered once (the built-in ones at construction,
  // extra ones when added), so counting a request allocates and compares no strings.
  struct RouteCounts {
    std::string name;                                // e.g. "/api/token/lock/:timeout"
    uint64_t hits = 0;                               // responses sent
    std::vector<std::pair<int, uint64_t>> by_code;   // status -> responses (few distinct)
  };
  struct ExtraPath {
    int route = 0;
    std::map<std::string, ExtraRoute, std::less<>> by_method;
    std::string allow;  // "GET, HEAD, POST"
  };

  lock::LockService& lock_;
  TokenServiceOptions options_;
  const ServerStats* server_stats_ = nullptr;
  std::vector<RouteCounts> routes_;
  lock::View last_view_;  // for /metrics; refreshed on every render
  std::map<std::string, ExtraPath, std::less<>> extra_;  // path -> its route and handlers
  std::vector<std::function<std::string()>> extra_metrics_;
  RateLimitedLog unauthorized_log_{std::chrono::seconds(10)};
};

// Decoded query (or form) parameters in the order given; names are unique. A flat vector, not a
// map: a request has a handful, and the lock route parses one per request without a node
// allocation per parameter.
class QueryParams {
 public:
  using Pair = std::pair<std::string, std::string>;
  using const_iterator = std::vector<Pair>::const_iterator;

  const_iterator begin() const { return pairs_.begin(); }
  const_iterator end() const { return pairs_.end(); }
  size_t size() const { return pairs_.size(); }
  const_iterator find(std::string_view name) const;  // end() when absent
  const std::string& at(std::string_view name) const;  // throws std::out_of_range when absent
  // Adds name=value unless `name` is there already; returns whether it was added.
  bool Add(std::string name, std::string value);

 private:
  std::vector<Pair> pairs_;
};

// Parses "a=1&b=x%20y". Keys and values are percent-decoded. Fails on malformed escapes, more
// than 32 parameters, or a repeated key.
StatusOr<QueryParams> ParseQuery(std::string_view query);
// ParseQuery for a route that takes only the `known` parameters (names compare exactly): any
// other is INVALID_ARGUMENT naming it and listing the known ones, so a typo ("TTL") is an error,
// never silently ignored.
StatusOr<QueryParams> ParseQuery(std::string_view query,
                                 std::initializer_list<std::string_view> known);

// True for a browser request from another site (Sec-Fetch-Site or an Origin not matching Host).
// Non-browser clients send neither header and pass.
bool CrossSite(const Request& request);

// The HTTP status for a Status code.
int HttpStatusFor(StatusCode code);

}  // namespace lm::http
