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
// With a console: POST /html/tmpl/{cordon,uncordon,disable,enable} (field `node` or `license`)
// first answer a confirmation page and change nothing; posted again with confirm=yes they call
// the Console (actor AdminActor(req, "web", auth): "web (token)" with auth, else
// "web (<address>)") and redirect to the page with the outcome. The script asks with
// confirm() instead and calls the JSON admin routes. GET /api/console/samples: the chart's data;
// GET /api/console/marks: the cordoned nodes and disabled licenses (console::ToJson(AdminState)).
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
#include "tokenmgr/ui_console.h"

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
  // The operator's console (issue 17); null: the page has no nodes, events, admin buttons or
  // chart, and no /html/tmpl/{cordon,uncordon,disable,enable} or /api/console/samples routes.
  console::Console* console = nullptr;
  // The chart: a sample of licenses held, free and nodes waiting this often (on the refresh
  // timer), kept for `chart_window`, at most `chart_samples` of them.
  std::chrono::seconds chart_every{30};
  std::chrono::seconds chart_window{std::chrono::hours(6)};
  size_t chart_samples = 720;
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
// HtmlEscape(text), or an em dash for empty text.
std::string HtmlOrDash(std::string_view text);
// "2026-01-01 12:00:05Z", or an em dash for an unset time (<= 0).
std::string FormatUtc(int64_t unix_ms);

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
  std::string lease_id;                   // after a grant: prefilled into renew/release
  WallTime rendered_at{};                 // shown in the footer; "now" for durations
  const ConsoleModel* console = nullptr;  // null: no console parts
};

std::string RenderPage(const PageModel& model);

// The JavaScript-off confirmation of an admin action: what will happen, and a form that posts
// it again with confirm=yes (and the access token when auth is on), or goes back.
std::string RenderConfirmPage(AdminAction action, std::string_view name, std::string_view csrf,
                              bool auth);

// A human duration: "850 ms", "42 s", "3 min 5 s", "2 h 10 min".
std::string HumanDuration(std::chrono::milliseconds d);

}  // namespace lm::tokenmgr
