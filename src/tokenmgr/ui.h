// WebUi: the operator's page at /html/tmpl/index (the seed's path; "/" redirects there) and the
// pool JSON at /api/licenses (and under each of kApiPrefixes), registered on the Router. The
// page is rendered on the server with the current state, so it works with JavaScript off; its
// script then refreshes it from the JSON API every ~2 s. HTML, CSS and JS are compiled in: no
// requests leave tokenmgr. Not thread-safe: create, use and stop it on the server's event-loop
// thread.
//
//   WebUi ui(io, router, lock_api, fs, time, {.pool_dir = config.pool_dir, .claim_ttl = ttl});
//   service.AddMetrics([&ui] { return ui.RenderMetrics(); });
//   ui.Stop();  // at shutdown: disarms the pool refresh timer so io.run() can return
//
// Form endpoints for JavaScript-off use: POST /html/tmpl/{lock,renew,release}. They call the
// same LockApi as /api/token/... (same checks, errors and log lines), count under those routes'
// stats keys too, and are protected against cross-site request forgery by an origin check plus
// a per-process random token.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/time_system.h"
#include "http/router.h"
#include "license/fs.h"
#include "license/pool_view.h"
#include "lock/lock_table.h"
#include "tokenmgr/lock_api.h"

namespace lm::tokenmgr {

using license::LicenseRow;
using license::LicenseState;
using license::LicenseStateName;
using license::PoolSnapshot;
using license::PoolTotals;
using license::PoolView;

struct WebUiOptions {
  std::string pool_dir{};              // empty: the page has no pool table; /api/licenses says so
  std::chrono::seconds claim_ttl{60};  // when a claim is stale: CLAIM_TTL_SECONDS, as the agents
  std::chrono::milliseconds pool_refresh{2000};
};

class WebUi {
 public:
  // Registers the routes on `router` and, with a pool, starts its refresh timer on `io`. Every
  // argument must outlive this object, and no request may arrive after it is destroyed.
  WebUi(boost::asio::io_context& io, http::Router& router, LockApi& api, license::Filesystem& fs,
        TimeSystem& time, WebUiOptions options);
  ~WebUi();
  WebUi(const WebUi&) = delete;
  WebUi& operator=(const WebUi&) = delete;

  // tokenmgr_pool_licenses gauges from the same (rate-limited) scan as /api/licenses; empty
  // without a pool.
  std::string RenderMetrics();
  // Disarms the pool refresh timer. Idempotent.
  void Stop();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Escapes & < > " ' for HTML text and quoted attribute values.
std::string HtmlEscape(std::string_view text);

// Everything the page shows, for the server-side rendering.
struct PageModel {
  lock::View lock;
  bool lock_known = true;  // false: the store could not be asked
  const std::map<std::string, uint64_t>* stats = nullptr;
  const PoolSnapshot* pool = nullptr;
  bool auth = false;
  std::string csrf;
  lock::Seconds default_ttl{10};
  // The result of a form action, if any.
  std::string flash;
  bool flash_ok = true;
  std::string lease_id;    // after a grant: prefilled into renew/release
  WallTime rendered_at{};  // shown in the footer
};

std::string RenderPage(const PageModel& model);

// A human duration: "850 ms", "42 s", "3 min 5 s", "2 h 10 min".
std::string HumanDuration(std::chrono::milliseconds d);

}  // namespace lm::tokenmgr
