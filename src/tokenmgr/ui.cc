#include "tokenmgr/ui.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <optional>
#include <utility>

#include "common/random.h"
#include "common/strings.h"
#include "http/query.h"
#include "http/request_rules.h"
#include "tokenmgr/console_routes.h"
#include "tokenmgr/token_service.h"
#include "ui_assets.inc"  // kUiCss, kUiJs: generated from ui.css and ui.js by CMake

namespace lm::tokenmgr {

using http::Request;
using http::Responder;
using http::Response;

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string HumanDuration(std::chrono::milliseconds d) {
  int64_t ms = d.count();
  if (ms < 0) ms = 0;
  if (ms < 1000) return std::to_string(ms) + " ms";
  int64_t s = ms / 1000;
  if (s < 60) return std::to_string(s) + " s";
  if (s < 3600) {
    return std::to_string(s / 60) + " min" + (s % 60 ? " " + std::to_string(s % 60) + " s" : "");
  }
  if (s < 86400) {
    return std::to_string(s / 3600) + " h" +
           (s % 3600 / 60 ? " " + std::to_string(s % 3600 / 60) + " min" : "");
  }
  return std::to_string(s / 86400) + " d" +
         (s % 86400 / 3600 ? " " + std::to_string(s % 86400 / 3600) + " h" : "");
}

std::string FormatUtc(int64_t unix_ms) {
  if (unix_ms <= 0) return "\u2014";
  std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  if (!gmtime_r(&secs, &tm)) return "\u2014";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buf;
}

std::string HtmlOrDash(std::string_view s) { return s.empty() ? "\u2014" : HtmlEscape(s); }

namespace {

constexpr std::string_view kIndex = "/html/tmpl/index";
constexpr std::string_view kCssPath = "/html/tmpl/ui.css";
constexpr std::string_view kJsPath = "/html/tmpl/ui.js";

// What a holder label may be (common/strings.h ValidateLabel), in words.
constexpr std::string_view kHolderRule =
    "Letters, digits and . _ - : only (no spaces), at most 253 characters.";

// The API's error, in words an operator can act on. Same wording as ui.js.
std::string PlainWords(int status, std::string_view error) {
  std::string e(error);
  switch (status) {
    case 400:
      return "Not accepted: " + e;
    case 401:
      return "The access token is missing or wrong.";
    case 403:
      return "Refused: " + e;
    case 404:
      return "That lease id does not hold the lock (wrong id, already released, or the lease "
             "expired).";
    case 409:
      return "Not granted: " + e;
    case 503:
      return "tokenmgr cannot do that right now: " + e;
    default:
      return "Failed (HTTP " + std::to_string(status) + "): " + e;
  }
}

std::string StateBadge(std::string_view state) {
  std::string s(state);
  return "<span class=\"badge " + s + "\">" + s + "</span>";
}

std::string AuthField(bool auth) {
  if (!auth) return "";
  return "<label class=\"auth-field\">Access token<input name=\"token\" type=\"password\" "
         "autocomplete=\"current-password\" required></label>";
}

void RenderLock(const PageModel& m, std::string& h) {
  const lock::View& v = m.lock;
  h += "<section class=\"card\" id=\"lock-card\" aria-labelledby=\"lock-h\">";
  h += "<div class=\"card-head\"><h2 id=\"lock-h\">Lock</h2>";
  h += "<span id=\"lock-state\" class=\"badge " + std::string(v.held ? "held" : "free") + "\">" +
       (m.lock_known ? (v.held ? "held" : "free") : "unknown") + "</span></div>";
  h += "<p class=\"holder-line\"><span class=\"muted\">Holder</span> <span id=\"lock-holder\" "
       "class=\"holder\">" +
       (v.held ? HtmlOrDash(v.holder) : "\u2014") + "</span></p>";
  // Free: "No lease", not "— left of — s lease".
  h += "<div class=\"countdown\"><span id=\"lock-left\" class=\"big\">" +
       (v.held ? HumanDuration(v.expires_in) : "No lease") +
       "</span> <span id=\"lock-of\" class=\"muted\"" + (v.held ? "" : " hidden") +
       ">left of <span id=\"lock-ttl\">" + (v.held ? std::to_string(v.ttl.count()) : "") +
       "</span> s lease</span></div>";
  int64_t max_ms = v.held ? std::max<int64_t>(1, v.ttl.count() * 1000) : 1;
  h += "<progress id=\"lock-bar\" max=\"" + std::to_string(max_ms) + "\" value=\"" +
       std::to_string(v.held ? std::min<int64_t>(max_ms, v.expires_in.count()) : 0) +
       "\"></progress>";
  h += "<dl class=\"facts\">";
  auto fact = [&](const char* label, const char* id, const std::string& value) {
    h += std::string("<div><dt>") + label + "</dt><dd id=\"" + id + "\">" + value + "</dd></div>";
  };
  fact("Fencing token", "lock-token", v.held ? std::to_string(v.token) : "\u2014");
  fact("Acquired", "lock-acquired", v.held ? FormatUtc(UnixMillis(v.acquired_at)) : "\u2014");
  fact("Waiters", "lock-waiters", std::to_string(v.waiters));
  fact("Last token", "lock-last", std::to_string(v.last_token));
  h += "</dl></section>";
}

void RenderForms(const PageModel& m, std::string& h) {
  const std::string csrf =
      "<input type=\"hidden\" name=\"csrf\" value=\"" + HtmlEscape(m.csrf) + "\">";
  // The parts the three forms share.
  auto form_open = [&](const std::string& action) {
    return "<form id=\"form-" + action +
           "\" class=\"action\" method=\"post\" action=\"/html/tmpl/" + action +
           "\" data-action=\"" + action + "\">" + csrf;
  };
  const std::string lease_id =
      "<label class=\"wide\">Lease id<input name=\"id\" value=\"" + HtmlEscape(m.lease_id) +
      "\" placeholder=\"id from the grant\" autocomplete=\"off\" spellcheck=\"false\" "
      "required></label>";
  const std::string ttl_and_auth =
      "<label>Lease (s)<input name=\"ttl\" type=\"number\" min=\"1\" value=\"" +
      std::to_string(m.default_ttl.count()) + "\" inputmode=\"numeric\"></label>" +
      AuthField(m.auth) + "</div>";
  h += "<section class=\"card\" id=\"actions\" aria-labelledby=\"act-h\">";
  h += "<div class=\"card-head\"><h2 id=\"act-h\">Actions</h2>";
  if (m.auth) {
    h += "<span id=\"auth-status\" class=\"js-only auth-status\"></span>";
  }
  h += "</div>";
  h += form_open("lock");
  // The title is what the browser adds to its "match the requested format" message.
  h += "<div class=\"fields\"><label class=\"wide\">Holder label<input name=\"holder\" "
       "maxlength=\"253\" pattern=\"[A-Za-z0-9._:\\-]+\" title=\"" +
       std::string(kHolderRule) +
       "\" placeholder=\"e.g. gpu-node-7\" autocomplete=\"off\" spellcheck=\"false\" "
       "aria-describedby=\"holder-rule\"><span id=\"holder-rule\" class=\"hint\">" +
       std::string(kHolderRule) + "</span></label>";
  h += "<label>Wait (s)<input name=\"wait\" type=\"number\" min=\"0\" value=\"0\" "
       "inputmode=\"numeric\"></label>";
  h += ttl_and_auth;
  h += "<button type=\"submit\" class=\"primary\">Request lock</button></form>";

  h += form_open("renew");
  h += "<div class=\"fields\">" + lease_id + ttl_and_auth;
  h += "<button type=\"submit\">Renew</button></form>";

  h += form_open("release");
  h += "<div class=\"fields\">" + lease_id + AuthField(m.auth) + "</div>";
  h += "<button type=\"submit\" class=\"danger\">Release</button></form>";
  h += "</section>";
}

void RenderPool(const PageModel& m, std::string& h) {
  const PoolSnapshot* p = m.pool;
  bool on = p && p->configured;
  h += std::string("<section class=\"card\" id=\"pool-card\" aria-labelledby=\"pool-h\"") +
       (on ? "" : " hidden") + ">";
  h += "<div class=\"card-head\"><h2 id=\"pool-h\">License pool</h2><div class=\"totals\">";
  auto chip = [&](const char* cls, const char* label, size_t n) {
    h += std::string("<span class=\"chip ") + cls + "\"><b id=\"t-" + cls + "\">" +
         std::to_string(n) + "</b> " + label + "</span>";
  };
  PoolTotals t = on ? p->totals : PoolTotals{};
  chip("held", "held", t.held);
  chip("free", "free", t.free);
  chip("stale", "stale", t.stale);
  chip("unreadable", "unreadable", t.unreadable);
  chip("unusable", "unusable", t.unusable);
  chip("total", "total", t.total);
  h += "</div></div>";
  h += std::string("<p id=\"pool-error\" class=\"flash err\"") +
       (on && !p->error.empty() ? ">Cannot read the pool: " + HtmlEscape(p->error) : " hidden>") +
       "</p>";
  h += "<div class=\"table-wrap\"><table id=\"pool-table\"><thead><tr>"
       "<th data-sort=\"name\">License</th><th data-sort=\"state\">State</th>"
       "<th data-sort=\"node\">Node</th><th data-sort=\"pod\">Pod</th>"
       "<th data-sort=\"token\" class=\"num\">Token</th><th data-sort=\"claimed\">Claimed at</th>"
       "<th data-sort=\"age\" class=\"num\">Unchanged for</th>" +
       std::string(m.console ? "<th>Admin</th>" : "") + "</tr></thead><tbody id=\"pool-body\">";
  if (on) {
    for (const LicenseRow& r : p->rows) {
      std::string state(LicenseStateName(r.state));
      bool disabled = m.console && m.console->admin.disabled.count(r.name);
      h += "<tr class=\"" + state + "\" data-name=\"" + HtmlEscape(r.name) +
           "\"><td class=\"name\">" + HtmlEscape(r.name) + "</td><td>" + StateBadge(state) +
           (disabled ? " " + StateBadge("disabled") : "") + "</td>";
      if (r.state == LicenseState::kHeld || r.state == LicenseState::kStale) {
        h += "<td>" + HtmlOrDash(r.node) + "</td><td>" + HtmlOrDash(r.pod) +
             "</td><td class=\"num\">" + (r.seed_format ? "\u2014" : std::to_string(r.token)) +
             "</td><td>" + FormatUtc(r.claimed_at_ms) + "</td>";
      } else if (r.state == LicenseState::kUnreadable || r.state == LicenseState::kUnusable) {
        h += "<td colspan=\"4\" class=\"err\">" + HtmlEscape(r.error) + "</td>";
      } else {
        h += "<td>\u2014</td><td>\u2014</td><td class=\"num\">\u2014</td><td>\u2014</td>";
      }
      h += "<td class=\"num age\">" +
           (r.unchanged_for ? HumanDuration(*r.unchanged_for) : "\u2014") + "</td>";
      if (m.console) {
        h += "<td class=\"admin\">" +
             AdminForm(disabled ? AdminAction::kEnable : AdminAction::kDisable, r.name, m.csrf) +
             "</td>";
      }
      h += "</tr>";
    }
    if (p->rows.empty() && p->error.empty()) {
      h += std::string("<tr><td colspan=\"") + (m.console ? "8" : "7") +
           "\" class=\"muted\">No licenses in the pool directory.</td></tr>";
    }
  }
  h += "</tbody></table></div>";
  h += "<p class=\"muted small\" id=\"pool-note\">Stale: the claim has not changed for " +
       std::to_string(on ? p->claim_ttl.count() : 0) +
       " s as seen by this tokenmgr. Times in UTC.</p></section>";
}

void RenderStats(const PageModel& m, std::string& h) {
  h += "<section class=\"card\" id=\"stats-card\" aria-labelledby=\"stats-h\">"
       "<div class=\"card-head\"><h2 id=\"stats-h\">Requests</h2></div>"
       "<div class=\"table-wrap\"><table id=\"stats-table\"><thead><tr><th>Route</th>"
       "<th class=\"num\">Count</th></tr></thead><tbody id=\"stats-body\">";
  if (m.stats && !m.stats->empty()) {
    for (const auto& [route, count] : *m.stats) {
      h += "<tr><td class=\"route\">" + HtmlEscape(route) + "</td><td class=\"num\">" +
           std::to_string(count) + "</td></tr>";
    }
  } else {
    h += "<tr><td colspan=\"2\" class=\"muted\">No requests yet.</td></tr>";
  }
  h += "</tbody></table></div></section>";
}

std::string AssetVersion() {
  static const std::string v = license::HashHex(std::string(kUiCss) + std::string(kUiJs));
  return v;
}

// The document up to <body> (title plain text).
std::string PageHead(std::string_view title) {
  return "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
         "<meta name=\"referrer\" content=\"same-origin\"><title>" +
         HtmlEscape(title) +
         "</title><link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"" +
         std::string(kCssPath) + "?v=" + AssetVersion() + "\"><script src=\"" +
         std::string(kJsPath) + "?v=" + AssetVersion() + "\" defer></script></head>";
}

// The top bar; `live` shows the refresh status (the main page only).
std::string TopBar(bool live) {
  return std::string(
             "<header class=\"top\"><div class=\"wrap\"><h1>tokenmgr</h1><span "
             "class=\"sub\">license manager</span>") +
         (live ? "<span id=\"live\" class=\"live\" title=\"refresh status\">static view</span>"
               : "") +
         "</div></header>";
}

}  // namespace

std::string RenderPage(const PageModel& m) {
  bool pool_on = m.pool && m.pool->configured;
  std::string h;
  h.reserve(16 * 1024);
  h += PageHead("tokenmgr \u00b7 license manager");
  h += "<body data-auth=\"" + std::string(m.auth ? "on" : "off") + "\" data-pool=\"" +
       (pool_on ? "on" : "off") + "\" data-console=\"" + (m.console ? "on" : "off") + "\">";
  h += TopBar(true) + "<main class=\"wrap\">";
  h += std::string("<div id=\"flash\" class=\"flash ") + (m.flash_ok ? "ok" : "err") +
       "\" role=\"status\" aria-live=\"polite\"" + (m.flash.empty() ? " hidden>" : ">") +
       HtmlEscape(m.flash);
  if (!m.lease_id.empty()) {
    h += " <code id=\"flash-id\">" + HtmlEscape(m.lease_id) + "</code>";
  }
  h += "</div>";
  if (m.auth) {
    h += "<form id=\"auth-form\" class=\"card auth\" hidden><h2>Access token</h2>"
         "<p id=\"auth-msg\">Viewing is open. Locking, renewing and releasing need the access "
         "token.</p><p class=\"muted small\">It is kept in this browser tab only.</p>"
         "<div class=\"fields\"><label class=\"wide\">Token<input id=\"auth-input\" "
         "type=\"password\" autocomplete=\"current-password\" required></label></div>"
         "<button type=\"submit\" class=\"primary\">Use token</button> "
         "<button type=\"button\" id=\"auth-cancel\">Cancel</button></form>";
  }
  if (m.console) {
    RenderChartCard(*m.console, m.rendered_at, h);
    RenderNodesCard(*m.console, m.csrf, m.rendered_at, h);
  }
  h += "<div class=\"grid\">";
  RenderLock(m, h);
  RenderForms(m, h);
  h += "</div>";
  RenderPool(m, h);
  if (m.console) RenderEventsCard(*m.console, h);
  RenderStats(m, h);
  h += "</main><footer class=\"wrap muted small\"><span id=\"updated\">Rendered " +
       FormatUtc(UnixMillis(m.rendered_at)) +
       "</span> \u00b7 <a href=\"/api/token/status\">status</a> \u00b7 <a "
       "href=\"/api/licenses\">licenses</a> \u00b7 <a href=\"/api/stats\">stats</a> \u00b7 <a "
       "href=\"/metrics\">metrics</a></footer></body></html>\n";
  return h;
}

std::string RenderConfirmPage(AdminAction action, std::string_view name, std::string_view csrf,
                              bool auth) {
  const std::string verb(AdminActionName(action));
  const std::string label(AdminActionLabel(action));
  std::string h = PageHead(label + " " + std::string(name) + "? \u00b7 tokenmgr");
  h += "<body data-auth=\"" + std::string(auth ? "on" : "off") + "\" data-page=\"confirm\">" +
       TopBar(false) +
       "<main class=\"wrap\"><section class=\"card confirm\" id=\"confirm-card\" "
       "aria-labelledby=\"confirm-h\"><h2 id=\"confirm-h\">" +
       HtmlEscape(label) +
       " <span "
       "class=\"name\">" +
       HtmlEscape(name) + "</span>?</h2><p id=\"confirm-text\">" +
       HtmlEscape(AdminConsequence(action)) +
       "</p><p class=\"muted small\">Nothing has changed "
       "yet.</p>";
  h += "<form id=\"confirm-form\" class=\"action\" method=\"post\" action=\"/html/tmpl/" + verb +
       "\"><input type=\"hidden\" name=\"csrf\" value=\"" + HtmlEscape(csrf) +
       "\"><input type=\"hidden\" name=\"" + std::string(AdminTarget(action)) + "\" value=\"" +
       HtmlEscape(name) + "\"><input type=\"hidden\" name=\"confirm\" value=\"yes\">";
  if (auth) h += "<div class=\"fields\">" + AuthField(true) + "</div>";
  h += "<button type=\"submit\" class=\"primary\">Yes, " + verb + " " + HtmlEscape(name) +
       "</button> <a class=\"button\" id=\"confirm-cancel\" href=\"" + std::string(kIndex) +
       "\">Cancel</a></form></section></main></body></html>\n";
  return h;
}

// ---------------------------------------------------------------------------------------------

namespace {

constexpr std::string_view kCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

Response HtmlResponse(int status, std::string body) {
  Response r;
  r.status = status;
  r.content_type = "text/html; charset=utf-8";
  r.body = std::move(body);
  r.headers = {{"Content-Security-Policy", std::string(kCsp)},
               {"X-Content-Type-Options", "nosniff"},
               {"X-Frame-Options", "DENY"},
               {"Referrer-Policy", "same-origin"},
               {"Cache-Control", "no-store"}};
  return r;
}

Response AssetResponse(std::string_view content_type, std::string_view body) {
  Response r;
  r.content_type = content_type;  // literals only (see Response)
  r.body = std::string(body);
  r.headers = {{"X-Content-Type-Options", "nosniff"}, {"Cache-Control", "max-age=3600"}};
  return r;
}

constexpr std::string_view kCrossSite =
    "Refused: this form did not come from this page (cross-site request check). Reload the page "
    "and try again.";

std::string Field(const http::QueryParams& form, const char* key) {
  auto it = form.find(key);
  return it == form.end() ? "" : std::string(Trim(it->second));
}

}  // namespace

class WebUi::Impl {
 public:
  Impl(boost::asio::io_context& io, http::Router& router, LockApi& api, license::Filesystem& fs,
       TimeSystem& time, WebUiOptions options)
      : router_(router),
        api_(api),
        time_(time),
        options_(std::move(options)),
        pool_(fs, time, {.dir = options_.pool_dir, .claim_ttl = options_.claim_ttl}),
        timer_(time.CreateTimer(io.get_executor(), [this] { Tick(); })),
        csrf_(NewUuidV4() + NewUuidV4()),
        samples_(options_.chart_samples, options_.chart_window) {}

  void Register() {
    using Fn = http::Router::RouteFn;
    auto get = [this](std::string_view path, Fn fn) { router_.Add("GET", std::string(path), fn); };
    get("/", [](const Request&, std::string_view, std::shared_ptr<Responder> r) {
      Response resp = HtmlResponse(303, "");
      resp.headers.emplace_back("Location", std::string(kIndex));
      r->Send(std::move(resp));
    });
    get(kIndex, [this](const Request& req, std::string_view, std::shared_ptr<Responder> r) {
      // After a form post (redirected here): its outcome, while it is kept.
      auto query = http::ParseQuery(req.query);
      if (query.ok()) {
        if (auto it = query->find("result"); it != query->end()) {
          if (const Outcome* o = FindOutcome(it->second)) {
            return Render(200, o->flash, o->ok, o->lease_id, r);
          }
          return Render(200, "That result is no longer kept; the page shows the current state.",
                        true, "", r);
        }
      }
      Render(200, "", true, "", r);
    });
    get(kCssPath, [](const Request&, std::string_view, std::shared_ptr<Responder> r) {
      r->Send(AssetResponse("text/css; charset=utf-8", kUiCss));
    });
    get(kJsPath, [](const Request&, std::string_view, std::shared_ptr<Responder> r) {
      r->Send(AssetResponse("text/javascript; charset=utf-8", kUiJs));
    });
    std::vector<std::string> licenses = {"/api/licenses"};
    for (std::string_view prefix : kApiPrefixes)
      licenses.push_back(std::string(prefix) + "licenses");
    for (const std::string& path : licenses) {
      get(path, [this](const Request&, std::string_view, std::shared_ptr<Responder> r) {
        std::function<bool(const std::string&)> disabled;
        if (options_.console) {
          disabled = [c = options_.console](const std::string& l) { return c->IsDisabled(l); };
        }
        r->Send(http::JsonResponse(200, PoolSnapshotJson(pool_.Get(), disabled)));
      });
    }
    for (const char* action : {"lock", "renew", "release"}) {
      router_.Add("POST", std::string("/html/tmpl/") + action,
                  [this, action](const Request& req, std::string_view,
                                 std::shared_ptr<Responder> r) { FormAction(action, req, r); });
    }
    if (options_.console) {
      for (AdminAction a : {AdminAction::kCordon, AdminAction::kUncordon, AdminAction::kDisable,
                            AdminAction::kEnable}) {
        router_.Add("POST", "/html/tmpl/" + std::string(AdminActionName(a)),
                    [this, a](const Request& req, std::string_view, std::shared_ptr<Responder> r) {
                      AdminFormAction(a, req, r);
                    });
      }
      get("/api/console/samples",
          [this](const Request&, std::string_view, std::shared_ptr<Responder> r) {
            r->Send(http::JsonResponse(200, SamplesJson(samples_, time_.WallNow())));
          });
      get("/api/console/marks",
          [this](const Request&, std::string_view, std::shared_ptr<Responder> r) {
            r->Send(http::JsonResponse(200, console::ToJson(options_.console->admin())));
          });
    }
    if (pool_.configured() || options_.console) Tick();
  }

  std::string RenderMetrics() {
    // The same (rate-limited) scan as /api/licenses and the page. No pool: no pool series.
    return pool_.configured() ? RenderPoolMetrics(pool_.Get()) : "";
  }

  void Stop() {
    stopped_ = true;
    timer_->Disarm();
  }

 private:
  void Tick() {
    if (stopped_) return;
    if (pool_.configured()) pool_.Refresh();
    if (options_.console &&
        (!last_sample_ || time_.Now() - *last_sample_ >= options_.chart_every)) {
      last_sample_ = time_.Now();
      Sample();
    }
    timer_->Arm(options_.pool_refresh);
  }

  // One chart point: licenses held and free in the pool (without a pool: nodes holding one and
  // no free count), nodes waiting.
  void Sample() {
    ChartSample s{.at = time_.WallNow()};
    for (const console::NodeRow& n : options_.console->Nodes()) {
      if (n.state == console::NodeState::kWaiting) ++s.waiting;
      if (n.state == console::NodeState::kHeld) ++s.held;
    }
    if (pool_.configured()) {
      s.held = pool_.Get().totals.held;
      s.free = pool_.Get().totals.free;
    }
    samples_.Add(s);
  }

  ConsoleModel ConsoleNow() {
    console::Console& c = *options_.console;
    ConsoleModel m;
    m.nodes = c.Nodes();
    uint64_t last = c.last_seq();
    console::Page page =
        c.Events(last > kTimelineEvents ? last - kTimelineEvents : 0, kTimelineEvents);
    m.events.assign(page.events.rbegin(), page.events.rend());
    m.admin = c.admin();
    m.samples = &samples_.samples();
    m.chart_window = samples_.window();
    return m;
  }

  // An admin button's post: without confirm=yes, the confirmation page (nothing changes); with
  // it, the action through the Console, and the page with its outcome.
  void AdminFormAction(AdminAction a, const Request& req, std::shared_ptr<Responder> r) {
    auto form = http::ParseForm(req.body);
    if (!form.ok()) return Render(400, PlainWords(400, form.status().message()), false, "", r);
    if (!FormAllowed(req, *form)) return Render(403, std::string(kCrossSite), false, "", r);
    const std::string target(AdminTarget(a));
    std::string name = Field(*form, target.c_str());
    if (Status s = ValidateLabel(name, target); !s.ok()) {
      return Redirect({PlainWords(400, s.message()), false, ""}, r);
    }
    if (Field(*form, "confirm") != "yes") {
      return r->Send(HtmlResponse(200, RenderConfirmPage(a, name, csrf_, api_.auth_enabled())));
    }
    std::string token = Field(*form, "token");
    std::string authorization =
        token.empty() ? std::string(req.Header("authorization")) : "Bearer " + token;
    auto done = [this, a, name, r](Status s) {
      if (!s.ok()) {
        int status = http::HttpStatusFor(s.code());
        std::string words = status == 404 ? "Not found: " + std::string(s.message())
                                          : PlainWords(status, s.message());
        return Redirect({words, false, ""}, r);
      }
      Redirect({AdminDoneMessage(a, name), true, ""}, r);
    };
    if (Status s = api_.Authorize(authorization, req); !s.ok()) return done(s);
    // Recorded as the JSON admin routes record a caller named "web" (the script sends X-Actor).
    StatusOr<std::string> by = AdminActor(req, "web", api_.auth_enabled());
    const std::string actor = by.ok() ? *by : "web";  // "web" is a label: always ok
    options_.console->Act(a, name, actor, std::move(done));
  }

  // A same-origin browser request carrying this process's form token. Browsers that send
  // Sec-Fetch-Site are judged by it (it cannot be set by a page's script); older ones by Origin.
  bool FormAllowed(const Request& req, const http::QueryParams& form) const {
    std::string_view site = req.Header("sec-fetch-site");
    bool same_origin =
        site.empty() ? !http::CrossSite(req) : (site == "same-origin" || site == "none");
    return same_origin && ConstantTimeEquals(Field(form, "csrf"), csrf_);
  }

  void FormAction(std::string action, const Request& req, std::shared_ptr<Responder> r) {
    auto form = http::ParseForm(req.body);
    if (!form.ok()) return Render(400, PlainWords(400, form.status().message()), false, "", r);
    if (!FormAllowed(req, *form)) return Render(403, std::string(kCrossSite), false, "", r);
    std::string id = Field(*form, "id");
    std::string ttl_text = Field(*form, "ttl");
    if (action != "lock" && id.empty()) {
      return Render(400, "Enter the lease id you were granted.", false, "", r);
    }
    // From here on the form does what its API route does, and counts there too.
    std::string token = Field(*form, "token");
    std::string authorization =
        token.empty() ? std::string(req.Header("authorization")) : "Bearer " + token;
    if (Status s = api_.Authorize(authorization, req); !s.ok()) return Failed(action, id, s, r);
    std::optional<lock::Seconds> ttl;
    if (action == "lock") {
      std::string wait_text = Field(*form, "wait");
      auto wait = api_.ParseWait(wait_text.empty() ? "0" : wait_text);
      if (!wait.ok()) return Failed(action, id, wait.status(), r);
      if (!ttl_text.empty() && !SetTtl(ttl_text, ttl, action, id, r)) return;
      LockRequest lr;
      lr.wait = *wait;
      lr.ttl = ttl;
      if (std::string holder = Field(*form, "holder"); !holder.empty()) {
        if (Status s = LockApi::CheckHolder(holder); !s.ok()) return Failed(action, id, s, r);
        lr.holder = holder;
      } else {
        lr.holder = req.remote_address.empty() ? "unknown" : req.remote_address;
      }
      std::string holder = lr.holder;
      auto cancel = api_.Lock(std::move(lr), [this, r](StatusOr<lock::Grant> g) {
        if (!g.ok()) return Failed("lock", "", g.status(), r);
        Granted("lock", "Lock granted", *g, r);
      });
      if (!r->done()) {
        r->OnCancel([cancel, holder] {
          LockApi::LogWaiterGone(holder);
          cancel();
        });
      }
    } else if (action == "renew") {
      if (!ttl_text.empty() && !SetTtl(ttl_text, ttl, action, id, r)) return;
      api_.Renew(id, ttl, [this, id, r](StatusOr<lock::Grant> g) {
        if (!g.ok()) return Failed("renew", id, g.status(), r);
        Granted("renew", "Lease renewed", *g, r);
      });
    } else {
      api_.Release(id, [this, id, r](Status s) {
        if (!s.ok()) return Failed("release", id, s, r);
        if (r->done()) return;
        router_.Record(ApiRoute("release"), 200);
        Redirect({"Released. The lock is free for the next waiter.", true, ""}, r);
      });
    }
  }

  bool SetTtl(const std::string& text, std::optional<lock::Seconds>& ttl, const std::string& action,
              const std::string& id, const std::shared_ptr<Responder>& r) {
    auto parsed = api_.ParseTtl(text);
    if (!parsed.ok()) {
      Failed(action, id, parsed.status(), r);
      return false;
    }
    ttl = *parsed;
    return true;
  }

  // The outcome is shown by a redirect to the page (303 See Other: post/redirect/get), so a
  // reload shows it again instead of posting again.
  void Failed(const std::string& action, const std::string& id, const Status& s,
              const std::shared_ptr<Responder>& r) {
    if (r->done()) return;  // the client went away: nothing was sent, nothing counts
    int status = http::HttpStatusFor(s.code());
    router_.Record(ApiRoute(action), status);
    Redirect({PlainWords(status, s.message()), false, action == "lock" ? "" : id}, r);
  }

  void Granted(const std::string& action, const std::string& what, const lock::Grant& g,
               const std::shared_ptr<Responder>& r) {
    if (r->done()) return;
    router_.Record(ApiRoute(action), 200);
    Redirect({what + ": fencing token " + std::to_string(g.token) + ", lease " +
                  std::to_string(g.ttl.count()) + " s. Your lease id (needed to renew or release):",
              true, g.id},
             r);
  }

  // The outcome of a form post, kept for the page it redirects to.
  struct Outcome {
    std::string flash;
    bool ok = true;
    std::string lease_id;
    SteadyTime at{};
  };
  static constexpr size_t kMaxOutcomes = 64;
  static constexpr std::chrono::minutes kOutcomeLifetime{10};

  // Keeps `o` under a fresh random key and sends 303 to the page showing it. The key is as hard
  // to guess as a lease id, so the lease id shown is never in a URL.
  void Redirect(Outcome o, const std::shared_ptr<Responder>& r) {
    if (r->done()) return;
    const SteadyTime now = time_.Now();
    std::erase_if(outcomes_, [&](const auto& kv) { return now - kv.second.at > kOutcomeLifetime; });
    if (outcomes_.size() >= kMaxOutcomes) {
      outcomes_.erase(std::min_element(outcomes_.begin(), outcomes_.end(),
                                       [](auto& a, auto& b) { return a.second.at < b.second.at; }));
    }
    o.at = now;
    std::string key = NewUuidV4();
    outcomes_[key] = std::move(o);
    Response resp = HtmlResponse(303, "");
    resp.headers.emplace_back("Location", std::string(kIndex) + "?result=" + key);
    r->Send(std::move(resp));
  }

  const Outcome* FindOutcome(const std::string& key) const {
    auto it = outcomes_.find(key);
    if (it == outcomes_.end()) return nullptr;
    if (time_.Now() - it->second.at > kOutcomeLifetime) return nullptr;
    return &it->second;
  }

  void Render(int status, std::string flash, bool ok, std::string lease_id,
              std::shared_ptr<Responder> r) {
    if (r->done()) return;
    api_.GetStatus([this, status, flash = std::move(flash), ok, lease_id = std::move(lease_id),
                    r](StatusOr<lock::View> v) {
      PageModel m;
      m.lock_known = v.ok();
      if (v.ok()) m.lock = *v;
      const std::map<std::string, uint64_t> stats = router_.stats();
      m.stats = &stats;
      m.pool = &pool_.Get();
      m.auth = api_.auth_enabled();
      m.csrf = csrf_;
      m.default_ttl = api_.limits().default_ttl;
      m.flash = flash;
      m.flash_ok = ok;
      m.lease_id = lease_id;
      m.rendered_at = time_.WallNow();
      std::optional<ConsoleModel> console;
      if (options_.console) console = ConsoleNow();
      m.console = console ? &*console : nullptr;
      r->Send(HtmlResponse(status, RenderPage(m)));
    });
  }

  http::Router& router_;
  LockApi& api_;
  TimeSystem& time_;
  WebUiOptions options_;
  PoolView pool_;
  TimerPtr timer_;
  std::string csrf_;
  std::map<std::string, Outcome> outcomes_;  // by key; at most kMaxOutcomes
  SampleRing samples_;
  std::optional<SteadyTime> last_sample_;
  bool stopped_ = false;
};

WebUi::WebUi(boost::asio::io_context& io, http::Router& router, LockApi& api,
             license::Filesystem& fs, TimeSystem& time, WebUiOptions options) {
  if (!options.pool_dir.empty()) {
    spdlog::info("web page shows the license pool in {} (claim ttl {}s)", options.pool_dir,
                 options.claim_ttl.count());
  }
  impl_ = std::make_unique<Impl>(io, router, api, fs, time, std::move(options));
  impl_->Register();
}

WebUi::~WebUi() = default;

std::string WebUi::RenderMetrics() { return impl_->RenderMetrics(); }

void WebUi::Stop() { impl_->Stop(); }

}  // namespace lm::tokenmgr
