#include "http/ui.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "http/in_process_api.h"

namespace lm::http {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kEvil = "\"><img src=x onerror=alert(1)><script>alert(2)</script>";

TEST(HtmlEscape, EscapesEverySpecialCharacter) {
  EXPECT_EQ(HtmlEscape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
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
    auto ui = WebUi::Install(in_process_.io(), in_process_.api(),
                             {.claim_ttl = std::chrono::seconds(60)});
    ASSERT_TRUE(ui.ok());
    ui_ = std::move(*ui);
  }
  void TearDown() override {
    if (ui_) ui_->Stop();
  }
  Response Call(std::string method, std::string target, std::string body = "",
                std::vector<std::pair<std::string, std::string>> headers = {}) {
    headers.emplace_back("host", "127.0.0.1:8080");
    return in_process_.Call(std::move(method), std::move(target), std::move(body),
                            std::move(headers));
  }
  std::string Csrf() {
    std::string page = Call("GET", "/html/tmpl/index").body;
    std::string marker = "name=\"csrf\" value=\"";
    auto at = page.find(marker);
    if (at == std::string::npos) return "";
    at += marker.size();
    return page.substr(at, page.find('"', at) - at);
  }

  InProcessApi in_process_;
  std::unique_ptr<WebUi> ui_;
};

TEST_F(WebUiRoutes, RootRedirectsToThePage) {
  Response r = Call("GET", "/");
  EXPECT_EQ(r.status, 303);
  EXPECT_THAT(r.headers, ::testing::Contains(std::pair<std::string, std::string>(
                             "Location", "/html/tmpl/index")));
}

TEST_F(WebUiRoutes, PageIsHtmlWithStrictContentSecurityPolicy) {
  Response r = Call("GET", "/html/tmpl/index");
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.content_type, HasSubstr("text/html"));
  bool csp = false;
  for (auto& [k, v] : r.headers) csp |= k == "Content-Security-Policy" && v.find("script-src 'self'") != std::string::npos;
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
  Response granted = Call("POST", "/html/tmpl/lock", "csrf=" + csrf + "&holder=web-1&wait=0&ttl=30",
                          {{"origin", "http://127.0.0.1:8080"}, {"sec-fetch-site", "same-origin"}});
  ASSERT_EQ(granted.status, 200) << granted.body;
  EXPECT_THAT(granted.body, HasSubstr("Lock granted"));
  EXPECT_THAT(granted.body, HasSubstr(">web-1</span>"));
  auto at = granted.body.find("<code id=\"flash-id\">");
  ASSERT_NE(at, std::string::npos);
  at += std::string("<code id=\"flash-id\">").size();
  std::string id = granted.body.substr(at, granted.body.find('<', at) - at);
  Response released = Call("POST", "/html/tmpl/release", "csrf=" + csrf + "&id=" + id);
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
  EXPECT_EQ(Call("POST", "/html/tmpl/lock", "csrf=" + csrf,
                 {{"origin", "http://evil.example"}}).status,
            403);
  EXPECT_EQ(Call("POST", "/html/tmpl/lock", "csrf=" + csrf, {{"sec-fetch-site", "same-site"}}).status,
            403);
}

TEST_F(WebUiRoutes, FormErrorsAreInPlainWords) {
  std::string csrf = Csrf();
  Response r = Call("POST", "/html/tmpl/release", "csrf=" + csrf + "&id=not-a-lease");
  EXPECT_EQ(r.status, 404);
  EXPECT_THAT(r.body, HasSubstr("does not hold the lock"));
  Response bad = Call("POST", "/html/tmpl/lock", "csrf=" + csrf + "&wait=5%3Fttl%3D1");
  EXPECT_EQ(bad.status, 400);
  EXPECT_THAT(bad.body, HasSubstr("Not accepted"));
}

}  // namespace
}  // namespace lm::http

namespace lm::http {
namespace {

// Chrome sends "Origin: null" on form posts under some referrer policies; Sec-Fetch-Site decides.
TEST_F(WebUiRoutes, SameOriginFormWithNullOriginIsAccepted) {
  std::string csrf = Csrf();
  Response r = Call("POST", "/html/tmpl/lock", "csrf=" + csrf + "&holder=web-2",
                    {{"origin", "null"}, {"sec-fetch-site", "same-origin"}});
  EXPECT_EQ(r.status, 200) << r.body;
}

}  // namespace
}  // namespace lm::http
