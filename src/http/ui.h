// WebUi: the operator's page at /html/tmpl/index (the seed's path; "/" redirects there) and the
// pool JSON at /api/licenses, registered on a TokenService. The page is rendered on the server
// with the current state, so it works with JavaScript off; its script then refreshes it from
// the JSON API every ~2 s. HTML, CSS and JS are compiled in: no requests leave tokenmgr.
// Not thread-safe: create, use and stop it on the server's event-loop thread.
//
//   auto ui = WebUi::Install(io, api, {.pool_dir = config.pool_dir});
//   if (!ui.ok()) { /* bad CLAIM_TTL_SECONDS */ }
//   (*ui)->Stop();  // at shutdown: cancels the pool refresh timer so io.run() can return
//
// Form endpoints for JavaScript-off use: POST /html/tmpl/{lock,renew,release}. They go through
// the same API handler as /api/token/... (same checks, errors and stats) and are protected
// against cross-site request forgery by an origin check plus a per-process random token.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "license/pool_view.h"
#include "http/token_service.h"
#include "lock/lock_table.h"

namespace lm::http {

struct WebUiOptions {
  std::string pool_dir{};  // empty: the page has no pool table; /api/licenses says so
  // Unset: from env CLAIM_TTL_SECONDS (default 60), the variable the agents read.
  std::optional<std::chrono::seconds> claim_ttl{};
  std::chrono::milliseconds pool_refresh{2000};
};

class WebUi {
 public:
  // Registers the routes on `api`. Fails on a bad CLAIM_TTL_SECONDS. `api` and `io` must
  // outlive the returned object, and no request may arrive after it is destroyed.
  static StatusOr<std::unique_ptr<WebUi>> Install(boost::asio::io_context& io, TokenService& api,
                                                  WebUiOptions options);
  ~WebUi();

  // Stops the pool refresh timer. Idempotent.
  void Stop();

  class Impl;

 private:
  explicit WebUi(std::unique_ptr<Impl> impl);
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
  std::string lease_id;  // after a grant: prefilled into renew/release
};

std::string RenderPage(const PageModel& model);

// A human duration: "850 ms", "42 s", "3 min 5 s", "2 h 10 min".
std::string HumanDuration(std::chrono::milliseconds d);

}  // namespace lm::http
