// TokenService: tokenmgr's JSON API (docs/api.md) as routes on an http::Router: lock, release,
// renew, status and stats under each of kApiPrefixes, and /api/stats, /healthz, /readyz,
// /metrics. Lock operations go through the LockApi; /readyz and /metrics read the LockService.
// Not thread-safe: runs on the server's event-loop thread.
//
//   TokenService api(router, lock_api, store);
//   HttpServer server(io, server_options, router);
//   api.SetServerStats(&server.stats());
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "http/router.h"
#include "http/server.h"
#include "lock/lock_service.h"
#include "tokenmgr/lock_api.h"

namespace lm::tokenmgr {

// Every API route is served under each prefix: /api/token/... (the seed's code) and
// /api/tokenmgr/... (the seed's README).
inline constexpr std::string_view kApiPrefixes[] = {"/api/token/", "/api/tokenmgr/"};
// The stats key of an action's route under the first prefix ("lock" ->
// "/api/token/lock/:timeout"); the page's forms count there too (docs/api.md).
std::string ApiRoute(std::string_view action);

// Sends 401 (auth on, wrong or missing token) or 403 (cross-site browser request) and returns
// true, or returns false when the request may change state. Every mutating route asks it.
bool RefuseMutation(LockApi& api, const http::Request& req, http::Responder& r);

class TokenService {
 public:
  // Registers the routes on `router`. Every argument must outlive this object.
  TokenService(http::Router& router, LockApi& api, lock::LockService& store);
  TokenService(const TokenService&) = delete;
  TokenService& operator=(const TokenService&) = delete;

  void SetServerStats(const http::ServerStats* stats) { server_stats_ = stats; }

  // Adds series to /metrics: `render` runs on every scrape and returns Prometheus text (HELP,
  // TYPE and samples), appended after the built-in series. E.g. the pool view's gauges.
  void AddMetrics(std::function<std::string()> render) {
    extra_metrics_.push_back(std::move(render));
  }

 private:
  void HandleLock(const http::Request& req, std::string_view timeout,
                  std::shared_ptr<http::Responder> r);
  void HandleRelease(const http::Request& req, std::string_view id,
                     std::shared_ptr<http::Responder> r);
  void HandleRenew(const http::Request& req, std::string_view id,
                   std::shared_ptr<http::Responder> r);
  void HandleStatus(std::shared_ptr<http::Responder> r);
  void HandleStats(const std::string& route, http::Responder& r);
  void HandleReady(http::Responder& r);
  std::string RenderMetrics();

  http::Router& router_;
  LockApi& api_;
  lock::LockService& store_;
  const http::ServerStats* server_stats_ = nullptr;
  lock::View last_view_;  // for /metrics; refreshed on every render
  std::vector<std::function<std::string()>> extra_metrics_;
};

}  // namespace lm::tokenmgr
