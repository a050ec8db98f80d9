#include "tokenmgr/ui.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "tokenmgr/in_process_service.h"
#include "tokenmgr/token_service.h"

namespace lm::tokenmgr {
namespace {

using http::Response;

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kEvil = "\"><img src=x onerror=alert(1)><script>alert(2)</script>";

TEST(HtmlEscape, EscapesEverySpecialCharacter) {
  EXPECT_EQ(HtmlEscape("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
  EXPECT_EQ(HtmlEscape("plain-text_1.2"), "plain-text_1.2");
}

TEST(HumanDuration, ReadsNaturally) {
  EXPECT_EQ(HumanDuration(Millis(850)), "850 ms");
  EXPECT_EQ(HumanDuration(Millis(42000)), "42 s");
  EXPECT_EQ(HumanDuration(Millis(185000)), "3 min 5 s");
  EXPECT_EQ(HumanDuration(Millis(7800000)), "2 h 10 min");
  EXPECT_EQ(HumanDuration(Millis(-5)), "0 ms");
}

PoolSnapshot EvilPool() {
  PoolSnapshot p;
  p.configured = true;
  p.dir = "/pool";
  LicenseRow held;
  held.name = kEvil;
  held.state = LicenseState::kHeld;
  held.node = kEvil;
  held.pod = kEvil;
  held.unchanged_for = Millis(3000);
  LicenseRow bad;
  bad.name = "license2";
  bad.state = LicenseState::kUnreadable;
  bad.error = kEvil;
  p.rows = {held, bad};
  p.totals = {.total = 2, .held = 1, .unreadable = 1};
  return p;
}

TEST(RenderPage, EscapesEveryOutsideValue) {
  PageModel m;
  m.lock.held = true;
  m.lock.holder = kEvil;
  std::map<std::string, uint64_t> stats = {{kEvil, 3}};
  PoolSnapshot pool = EvilPool();
  m.stats = &stats;
  m.pool = &pool;
  m.flash = kEvil;
  m.lease_id = kEvil;
  std::string html = RenderPage(m);
  EXPECT_THAT(html, Not(HasSubstr("<script>alert")));
  EXPECT_THAT(html, Not(HasSubstr("<img")));
  EXPECT_THAT(html, HasSubstr("&lt;script&gt;alert(2)&lt;/script&gt;"));
  EXPECT_THAT(html, HasSubstr("data-name=\"&quot;&gt;&lt;img"));
}

TEST(RenderPage, PoolTableHiddenWhenNotConfigured) {
  PageModel m;
  PoolSnapshot pool;  // configured = false
  m.pool = &pool;
  std::string html = RenderPage(m);
  EXPECT_THAT(html, HasSubstr("id=\"pool-card\" aria-labelledby=\"pool-h\" hidden>"));
  EXPECT_THAT(html, HasSubstr("data-pool=\"off\""));
}

TEST(RenderPage, AuthAddsTokenFieldsToForms) {
  PageModel m;
  EXPECT_THAT(RenderPage(m), Not(HasSubstr("name=\"token\"")));
  m.auth = true;
  std::string html = RenderPage(m);
  EXPECT_THAT(html, HasSubstr("name=\"token\" type=\"password\""));
  EXPECT_THAT(html, HasSubstr("data-auth=\"on\""));
}

TEST(RenderPage, ShowsHolderCountdownAndPoolTotals) {
  PageModel m;
  m.lock.held = true;
  m.lock.holder = "gpu-node-7";
  m.lock.token = 12;
  m.lock.ttl = lock::Seconds(10);
  m.lock.expires_in = Millis(7000);
  PoolSnapshot pool = EvilPool();
  m.pool = &pool;
  std::string html = RenderPage(m);
  EXPECT_THAT(html, HasSubstr(">gpu-node-7</span>"));
  EXPECT_THAT(html, HasSubstr("id=\"lock-left\" class=\"big\">7 s</span>"));
  EXPECT_THAT(html, HasSubstr("<b id=\"t-held\">1</b>"));
  EXPECT_THAT(html, HasSubstr("<b id=\"t-unreadable\">1</b>"));
}

// The routes, through a real TokenService and embedded lock service (no network).
class WebUiRoutes : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(in_process_.Open().ok());
    in_process_.InstallPage({.claim_ttl = std::chrono::seconds(60)});
  }
  Response Call(std::string method, std::string target, std::string body = "",
                std::vector<std::pair<std::string, std::string>> headers = {}) {
    headers.emplace_back("host", "127.0.0.1:8080");
    return in_process_.Call(std::move(method), std::move(target), std::move(body),
                            std::move(headers));
  }
  // A form post's answer must be 303 to the page; returns that page.
  Response FollowRedirect(const Response& posted) {
    EXPECT_EQ(posted.status, 303) << posted.body;
    for (const auto& [k, v] : posted.headers) {
      if (k == "Location") {
        EXPECT_EQ(v.rfind("/html/tmpl/index?result=", 0), 0u) << v;
        return Call("GET", v);
      }
    }
    ADD_FAILURE() << "no Location";
    return {};
  }
  std::string Csrf() {
    std::string page = Call("GET", "/html/tmpl/index").body;
    std::string marker = "name=\"csrf\" value=\"";
    auto at = page.find(marker);
    if (at == std::string::npos) return "";
    at += marker.size();
    return page.substr(at, page.find('"', at) - at);
  }

  uint64_t api_stats_lock_requests() {
    return in_process_.router().stats()["/api/token/lock/:timeout"];
  }

  InProcessService in_process_;
};

TEST_F(WebUiRoutes, RootRedirectsToThePage) {
  Response r = Call("GET", "/");
  EXPECT_EQ(r.status, 303);
  EXPECT_THAT(r.headers, ::testing::Contains(
                             std::pair<std::string, std::string>("Location", "/html/tmpl/index")));
}

TEST_F(WebUiRoutes, PageIsHtmlWithStrictContentSecurityPolicy) {
  Response r = Call("GET", "/html/tmpl/index");
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.content_type, HasSubstr("text/html"));
  bool csp = false;
  for (auto& [k, v] : r.headers)
    csp |= k == "Content-Security-Policy" && v.find("script-src 'self'") != std::string::npos;
  EXPECT_TRUE(csp);
  EXPECT_THAT(r.body, Not(HasSubstr("http://")));
  EXPECT_THAT(r.body, Not(HasSubstr("https://")));
}

TEST_F(WebUiRoutes, LicensesAnswersNotConfiguredUnderBothPrefixes) {
  for (const char* path : {"/api/licenses", "/api/tokenmgr/licenses"}) {
    Response r = Call("GET", path);
    ASSERT_EQ(r.status, 200) << path;
    EXPECT_EQ(nlohmann::json::parse(r.body)["configured"], false);
  }
}

TEST_F(WebUiRoutes, FormRouteRefusesGetWith405) {
  Response r = Call("GET", "/html/tmpl/lock");
  EXPECT_EQ(r.status, 405);
  EXPECT_THAT(r.headers, ::testing::Contains(std::pair<std::string, std::string>("Allow", "POST")));
}

TEST_F(WebUiRoutes, FormLockThenReleaseWithToken) {
  std::string csrf = Csrf();
  ASSERT_FALSE(csrf.empty());
  Response posted = Call("POST", "/html/tmpl/lock", "csrf=" + csrf + "&holder=web-1&wait=0&ttl=30",
                         {{"origin", "http://127.0.0.1:8080"}, {"sec-fetch-site", "same-origin"}});
  Response granted = FollowRedirect(posted);
  ASSERT_EQ(granted.status, 200) << granted.body;
  EXPECT_THAT(granted.body, HasSubstr("Lock granted"));
  EXPECT_THAT(granted.body, HasSubstr(">web-1</span>"));
  auto at = granted.body.find("<code id=\"flash-id\">");
  ASSERT_NE(at, std::string::npos);
  at += std::string("<code id=\"flash-id\">").size();
  std::string id = granted.body.substr(at, granted.body.find('<', at) - at);
  Response released =
      FollowRedirect(Call("POST", "/html/tmpl/release", "csrf=" + csrf + "&id=" + id));
  EXPECT_EQ(released.status, 200);
  EXPECT_THAT(released.body, HasSubstr("Released."));
  EXPECT_THAT(released.body, HasSubstr("id=\"lock-state\" class=\"badge free\""));
}

TEST_F(WebUiRoutes, FormWithoutCsrfTokenIsRefused) {
  Response r = Call("POST", "/html/tmpl/lock", "holder=web-1&wait=0");
  EXPECT_EQ(r.status, 403);
  EXPECT_THAT(r.body, HasSubstr("cross-site"));
}

TEST_F(WebUiRoutes, CrossSiteFormIsRefusedEvenWithToken) {
  std::string csrf = Csrf();
  EXPECT_EQ(
      Call("POST", "/html/tmpl/lock", "csrf=" + csrf, {{"origin", "http://evil.example"}}).status,
      403);
  EXPECT_EQ(
      Call("POST", "/html/tmpl/lock", "csrf=" + csrf, {{"sec-fetch-site", "same-site"}}).status,
      403);
}

TEST_F(WebUiRoutes, FormErrorsAreInPlainWords) {
  std::string csrf = Csrf();
  Response r =
      FollowRedirect(Call("POST", "/html/tmpl/release", "csrf=" + csrf + "&id=not-a-lease"));
  EXPECT_THAT(r.body, HasSubstr("does not hold the lock"));
  Response bad =
      FollowRedirect(Call("POST", "/html/tmpl/lock", "csrf=" + csrf + "&wait=5%3Fttl%3D1"));
  EXPECT_THAT(bad.body, HasSubstr("Not accepted"));
}

TEST_F(WebUiRoutes, ReloadingTheResultPageShowsTheOutcomeAgainWithoutPostingAgain) {
  std::string csrf = Csrf();
  Response posted = Call("POST", "/html/tmpl/lock", "csrf=" + csrf + "&holder=web-3");
  std::string location;
  for (const auto& [k, v] : posted.headers)
    if (k == "Location") location = v;
  ASSERT_FALSE(location.empty());
  EXPECT_THAT(location, Not(HasSubstr("web-3")));
  Response first = Call("GET", location);
  Response again = Call("GET", location);
  EXPECT_THAT(again.body, HasSubstr("Lock granted"));
  EXPECT_EQ(api_stats_lock_requests(), 1u);  // the reload asked for nothing
  Response unknown = Call("GET", "/html/tmpl/index?result=nope");
  EXPECT_EQ(unknown.status, 200);
  EXPECT_THAT(unknown.body, HasSubstr("no longer kept"));
}

TEST_F(WebUiRoutes, FreeLockSaysNoLeaseInsteadOfDashes) {
  std::string page = Call("GET", "/html/tmpl/index").body;
  EXPECT_THAT(page, HasSubstr("id=\"lock-left\" class=\"big\">No lease</span>"));
  EXPECT_THAT(page, HasSubstr("id=\"lock-of\" class=\"muted\" hidden>"));
}

TEST_F(WebUiRoutes, HolderFieldSaysWhatIsAllowed) {
  std::string page = Call("GET", "/html/tmpl/index").body;
  EXPECT_THAT(page, HasSubstr("title=\"Letters, digits and . _ - : only"));
}

TEST_F(WebUiRoutes, MetricsHaveNoPoolSeriesWithoutAPool) {
  EXPECT_THAT(Call("GET", "/metrics").body, Not(HasSubstr("tokenmgr_pool_licenses")));
}

// The metrics of a pool in a real temp directory: one free license.
TEST(WebUiPoolMetrics, MetricsCountThePoolsLicensesByState) {
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "ui_pool_metrics";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "license1" / "lic");
  std::ofstream(dir / "license1" / "lic" / "host_id") << "id\n";
  InProcessService in_process;
  ASSERT_TRUE(in_process.Open().ok());
  WebUi& ui =
      in_process.InstallPage({.pool_dir = dir.string(), .claim_ttl = std::chrono::seconds(60)});
  std::string m = in_process.Call("GET", "/metrics").body;
  ui.Stop();
  EXPECT_THAT(m, HasSubstr("# TYPE tokenmgr_pool_licenses gauge\n"));
  EXPECT_THAT(m, HasSubstr("tokenmgr_pool_licenses{state=\"free\"} 1\n"));
  EXPECT_THAT(m, HasSubstr("tokenmgr_pool_licenses{state=\"held\"} 0\n"));
  std::filesystem::remove_all(dir);
}

// Chrome sends "Origin: null" on form posts under some referrer policies; Sec-Fetch-Site decides.
TEST_F(WebUiRoutes, SameOriginFormWithNullOriginIsAccepted) {
  std::string csrf = Csrf();
  Response r = Call("POST", "/html/tmpl/lock", "csrf=" + csrf + "&holder=web-2",
                    {{"origin", "null"}, {"sec-fetch-site", "same-origin"}});
  EXPECT_EQ(r.status, 303) << r.body;
}

TEST_F(WebUiRoutes, FormLockCountsUnderTheLockRouteAndItsOwn) {
  std::string csrf = Csrf();
  Call("POST", "/html/tmpl/lock", "csrf=" + csrf + "&holder=web-4");
  Call("POST", "/html/tmpl/lock", "csrf=" + csrf + "&holder=web-5");  // busy: 409
  auto stats = in_process_.router().stats();
  EXPECT_EQ(stats["/html/tmpl/lock"], 2u);
  EXPECT_EQ(stats["/api/token/lock/:timeout"], 2u);
  std::string m = Call("GET", "/metrics").body;
  EXPECT_THAT(m, HasSubstr("{route=\"/api/token/lock/:timeout\",code=\"409\"} 1\n"));
}

TEST_F(WebUiRoutes, FormWithWrongTokenSaysSoInPlainWords) {
  InProcessService secured;
  ASSERT_TRUE(secured.Open({.auth_token = "s3cret"}).ok());
  secured.InstallPage();
  std::vector<std::pair<std::string, std::string>> host = {{"host", "127.0.0.1:8080"}};
  std::string page = secured.Call("GET", "/html/tmpl/index", "", host).body;
  std::string marker = "name=\"csrf\" value=\"";
  auto at = page.find(marker) + marker.size();
  std::string csrf = page.substr(at, page.find('"', at) - at);
  Response posted = secured.Call("POST", "/html/tmpl/lock", "csrf=" + csrf + "&token=nope", host);
  ASSERT_EQ(posted.status, 303);
  std::string location = posted.headers.back().second;
  EXPECT_THAT(secured.Call("GET", location, "", host).body,
              HasSubstr("The access token is missing or wrong."));
  EXPECT_EQ(secured.router().stats()["/api/token/lock/:timeout"], 1u);
}

TEST_F(WebUiRoutes, ResultIsForgottenAfterTenMinutesOfTheInjectedClock) {
  std::string csrf = Csrf();
  Response posted = Call("POST", "/html/tmpl/lock", "csrf=" + csrf + "&holder=web-6");
  std::string location = posted.headers.back().second;
  EXPECT_THAT(Call("GET", location).body, HasSubstr("Lock granted"));
  in_process_.time().Advance(std::chrono::minutes(10) + std::chrono::seconds(1));
  EXPECT_THAT(Call("GET", location).body, HasSubstr("no longer kept"));
}

TEST_F(WebUiRoutes, PageSaysWhenItWasRenderedByTheInjectedWallClock) {
  EXPECT_THAT(Call("GET", "/html/tmpl/index").body, HasSubstr("Rendered 2026-01-01 00:00:00Z"));
}

TEST(WebUiPoolRefresh, PoolIsRescannedOnTheTimerUntilStopped) {
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "ui_pool_refresh";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  InProcessService in_process;
  ASSERT_TRUE(in_process.Open().ok());
  SimulatedTimeSystem& time = in_process.time();
  const SteadyTime start = time.Now();
  WebUi& ui =
      in_process.InstallPage({.pool_dir = dir.string(), .pool_refresh = std::chrono::seconds(2)});
  EXPECT_EQ(time.NextDeadline(), start + std::chrono::seconds(2));
  time.AdvanceAndRun(std::chrono::seconds(2), in_process.io());
  EXPECT_EQ(time.NextDeadline(), start + std::chrono::seconds(4));  // it ran and re-armed
  ui.Stop();
  EXPECT_EQ(time.armed_timers(), 0u);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lm::tokenmgr
