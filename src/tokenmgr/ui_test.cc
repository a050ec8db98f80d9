#include "tokenmgr/ui.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "common/clock.h"
#include "console/console.h"
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

// ---- the console parts (issue 17) ------------------------------------------------------------

using console::NodeState;

// Every '<' in `html` opens one of the tags the page itself writes: none comes from data.
void ExpectOnlyOwnTags(const std::string& html) {
  static const std::set<std::string> kOwn = {
      "!doctype", "html",   "head",     "meta",   "title", "link",     "script", "body",  "header",
      "div",      "h1",     "h2",       "span",   "main",  "section",  "p",      "form",  "input",
      "label",    "button", "dl",       "dt",     "dd",    "progress", "table",  "thead", "tbody",
      "tr",       "th",     "td",       "b",      "code",  "footer",   "a",      "svg",   "desc",
      "line",     "text",   "polyline", "figure", "ul",    "li",       "ol",     "q"};
  for (size_t at = html.find('<'); at != std::string::npos; at = html.find('<', at + 1)) {
    size_t from = at + 1 + (html[at + 1] == '/' ? 1 : 0);
    size_t end = html.find_first_of(" >/", from);
    std::string tag = html.substr(from, end - from);
    EXPECT_TRUE(kOwn.count(tag)) << "unexpected <" << tag << " at " << html.substr(at, 60);
  }
  EXPECT_EQ(html.find("<script>"), std::string::npos);  // our one script tag has a src
}

ConsoleModel HostileConsole() {
  ConsoleModel m;
  console::NodeRow row;
  row.node = kEvil;
  row.pod = kEvil;
  row.license = kEvil;
  row.version = kEvil;
  row.state = NodeState::kWaiting;
  m.nodes = {row};
  console::Event e;
  e.seq = 7;
  e.kind = console::EventKind::kAdmin;
  e.node = kEvil;
  e.license = kEvil;
  e.actor = kEvil;
  e.detail = kEvil;
  m.events = {e};
  m.admin.disabled[kEvil] = {kEvil, WallTime{}};
  m.admin.cordoned[kEvil] = {kEvil, WallTime{}};
  return m;
}

TEST(RenderConsole, EscapesHostileNodesPodsActorsAndEventDetails) {
  ConsoleModel c = HostileConsole();
  PageModel m;
  PoolSnapshot pool = EvilPool();
  m.pool = &pool;
  m.console = &c;
  m.csrf = "tok";
  std::string html = RenderPage(m);
  ExpectOnlyOwnTags(html);
  EXPECT_THAT(html, HasSubstr("data-node=\"&quot;&gt;&lt;img"));
  EXPECT_THAT(html, HasSubstr("data-name=\"&quot;&gt;&lt;img"));
  EXPECT_THAT(html, HasSubstr("<q class=\"ev-detail\">&quot;&gt;&lt;img"));
  EXPECT_THAT(html, HasSubstr("name=\"node\" value=\"&quot;&gt;&lt;img"));
}

TEST(RenderConsole, ConfirmPageEscapesTheName) {
  std::string html = RenderConfirmPage(AdminAction::kDisable, kEvil, "tok", true);
  ExpectOnlyOwnTags(html);
  EXPECT_THAT(html, HasSubstr("name=\"license\" value=\"&quot;&gt;&lt;img"));
  EXPECT_THAT(html, HasSubstr("name=\"confirm\" value=\"yes\""));
  EXPECT_THAT(html, HasSubstr("name=\"token\" type=\"password\""));
}

TEST(RenderConsole, WithoutAConsoleThePageHasNoConsoleParts) {
  PageModel m;
  PoolSnapshot pool = EvilPool();
  m.pool = &pool;
  std::string html = RenderPage(m);
  EXPECT_THAT(html, Not(HasSubstr("nodes-card")));
  EXPECT_THAT(html, Not(HasSubstr("<svg")));
  EXPECT_THAT(html, Not(HasSubstr("<th>Admin</th>")));
  EXPECT_THAT(html, HasSubstr("data-console=\"off\""));
}

TEST(RenderConsole, DisabledLicenseIsMarkedAndOffersEnable) {
  ConsoleModel c;
  c.admin.disabled["license2"] = {"web", WallTime{}};
  PageModel m;
  PoolSnapshot pool = EvilPool();
  m.pool = &pool;
  m.console = &c;
  std::string html = RenderPage(m);
  auto row = html.substr(html.find("data-name=\"license2\""));
  row = row.substr(0, row.find("</tr>"));
  EXPECT_THAT(row, HasSubstr("<span class=\"badge disabled\">disabled</span>"));
  EXPECT_THAT(row, HasSubstr("action=\"/html/tmpl/enable\""));
  EXPECT_THAT(html, HasSubstr("action=\"/html/tmpl/disable\""));  // the other license
}

// All numbers of the SVG's coordinates (points, x, y, x1, ...), for bounds checks.
std::vector<double> SvgCoordinates(const std::string& svg) {
  std::vector<double> out;
  std::regex number("(?:points|x|y|x1|y1|x2|y2)=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), number); it != std::sregex_iterator();
       ++it) {
    std::string v = (*it)[1];
    for (char& ch : v)
      if (ch == ',') ch = ' ';
    std::istringstream in(v);
    for (double d; in >> d;) out.push_back(d);
  }
  return out;
}

TEST(RenderChart, ThreeLinesLabelsAndATextAlternativeInsideTheViewBox) {
  const WallTime now = WallTime(std::chrono::hours(24 * 20000));
  std::deque<ChartSample> samples;
  samples.push_back({.at = now - std::chrono::hours(30), .held = 99999});  // outside the window
  for (int i = 0; i < 20; ++i) {
    samples.push_back({.at = now - std::chrono::minutes(60 - 3 * i),
                       .held = size_t(i),
                       .free = size_t(20 - i),
                       .waiting = size_t(i % 4)});
  }
  samples.push_back({.at = now + std::chrono::hours(1), .held = 99999});  // from the future
  std::string svg = RenderChart(samples, now, std::chrono::hours(6));
  EXPECT_THAT(svg, HasSubstr("viewBox=\"0 0 480.0 170.0\""));
  EXPECT_THAT(svg, HasSubstr("<title id=\"chart-title\">Licenses held, free and nodes waiting"));
  EXPECT_THAT(svg, HasSubstr("<desc id=\"chart-desc\">Now 19 held, 1 free, 3 nodes waiting"));
  for (const char* line : {"line held", "line free", "line waiting"}) {
    EXPECT_THAT(svg, HasSubstr(std::string("<polyline class=\"") + line + "\" points=\""));
  }
  EXPECT_THAT(svg, HasSubstr(">20</text>"));  // the y axis tops at a round number
  EXPECT_THAT(svg, Not(HasSubstr("99999")));
  std::vector<double> coords = SvgCoordinates(svg);
  ASSERT_GT(coords.size(), 60u);
  for (double c : coords) {
    EXPECT_GE(c, 0);
    EXPECT_LE(c, 480);
  }
}

TEST(RenderChart, OneSampleIsALevelLineAcrossTheChart) {
  const WallTime now = WallTime(std::chrono::hours(1000));
  std::string svg =
      RenderChart({{.at = now, .held = 1, .free = 2, .waiting = 0}}, now, std::chrono::hours(6));
  EXPECT_THAT(svg, HasSubstr("<polyline class=\"line free\" points=\"34.0,10.0 472.0,10.0\"/>"));
}

TEST(RenderChart, NoSamplesSaysSo) {
  std::string svg = RenderChart({}, WallTime(std::chrono::hours(1000)), std::chrono::hours(6));
  EXPECT_THAT(svg, HasSubstr("No samples yet"));
  EXPECT_THAT(svg, HasSubstr("<desc id=\"chart-desc\">No samples yet.</desc>"));
}

TEST(SampleRing, KeepsAtMostMaxSamplesAndOnlyTheWindow) {
  SampleRing ring(720, std::chrono::hours(6));
  WallTime t = WallTime(std::chrono::hours(1000));
  for (int i = 0; i < 1000; ++i) ring.Add({.at = t + std::chrono::seconds(10 * i)});
  EXPECT_EQ(ring.samples().size(), 720u);
  EXPECT_EQ(ring.samples().back().at, t + std::chrono::seconds(9990));
  ring.Add({.at = t + std::chrono::hours(12)});  // hours later: the old ones are out of window
  EXPECT_EQ(ring.samples().size(), 1u);
}

// The console on the routes: a real Console over a MemoryJournal, simulated time.
class ConsolePage : public ::testing::Test {
 protected:
  void Open() {
    ASSERT_TRUE(in_process_.Open().ok());
    console_ =
        std::make_unique<console::Console>(in_process_.time(), console::ConsoleOptions{}, journal_);
    in_process_.InstallPage({.console = console_.get()});
  }
  void SetUp() override { Open(); }
  void Report(const std::string& node, NodeState state, const std::string& license = "") {
    console_->Report(
        {.node = node, .pod = "pod-" + node, .state = state, .license = license, .version = "1.0"},
        {}, [](StatusOr<console::Directives> d) { ASSERT_TRUE(d.ok()); });
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
    auto at = page.find(marker) + marker.size();
    return page.substr(at, page.find('"', at) - at);
  }
  // The page a form post redirected to.
  std::string Followed(const Response& posted) {
    EXPECT_EQ(posted.status, 303) << posted.body;
    for (const auto& [k, v] : posted.headers)
      if (k == "Location") return Call("GET", v).body;
    return "";
  }
  std::vector<std::string> NodeOrder(const std::string& page) {
    std::vector<std::string> out;
    std::regex row("<tr class=\"[a-z]+\" data-node=\"([^\"]+)\"");
    for (auto it = std::sregex_iterator(page.begin(), page.end(), row);
         it != std::sregex_iterator(); ++it) {
      out.push_back((*it)[1]);
    }
    return out;
  }

  console::MemoryJournal journal_;
  std::unique_ptr<console::Console> console_;
  InProcessService in_process_;  // last: destroyed first (the page holds the console)
};

TEST_F(ConsolePage, WaitingNodesComeFirstWithHowLongTheyWaited) {
  Report("node-a", NodeState::kHeld, "license1");
  Report("node-b", NodeState::kWaiting);
  in_process_.time().Advance(std::chrono::seconds(40));
  Report("node-a", NodeState::kHeld, "license1");
  Report("node-b", NodeState::kWaiting);  // still waiting: since stays
  Report("node-c", NodeState::kWaiting);
  in_process_.time().Advance(std::chrono::seconds(30));
  std::string page = Call("GET", "/html/tmpl/index").body;
  EXPECT_EQ(NodeOrder(page), (std::vector<std::string>{"node-b", "node-c", "node-a"}));
  EXPECT_THAT(page, HasSubstr("data-label=\"Waiting for\">1 min 10 s</td>"));
  EXPECT_THAT(page, HasSubstr("data-label=\"Waiting for\">30 s</td>"));
  EXPECT_THAT(page, HasSubstr("<b id=\"n-waiting\">2</b>"));
}

TEST_F(ConsolePage, TimelineShowsTheNewestFiftyNewestFirst) {
  std::vector<console::Event> events(60);
  for (size_t i = 0; i < events.size(); ++i) events[i].node = "node-" + std::to_string(i + 1);
  console_->Record(std::move(events));
  std::string page = Call("GET", "/html/tmpl/index").body;
  std::regex item("<li class=\"ev [a-z_]+\" data-seq=\"(\\d+)\"");
  std::vector<int> seqs;
  for (auto it = std::sregex_iterator(page.begin(), page.end(), item); it != std::sregex_iterator();
       ++it) {
    seqs.push_back(std::stoi((*it)[1]));
  }
  ASSERT_EQ(seqs.size(), 50u);
  EXPECT_EQ(seqs.front(), 60);
  EXPECT_EQ(seqs.back(), 11);
  EXPECT_THAT(page, HasSubstr("data-last-seq=\"60\""));
}

TEST_F(ConsolePage, WithoutJavaScriptTheFirstPostOnlyAsksAndTheSecondCordons) {
  Report("node-7", NodeState::kHeld, "license1");
  std::string csrf = Csrf();
  Response ask = Call("POST", "/html/tmpl/cordon", "csrf=" + csrf + "&node=node-7");
  EXPECT_EQ(ask.status, 200);
  EXPECT_THAT(ask.body, HasSubstr("Cordon <span class=\"name\">node-7</span>?"));
  EXPECT_THAT(ask.body, HasSubstr("gives its license back within one heartbeat"));
  EXPECT_THAT(ask.body, HasSubstr("name=\"confirm\" value=\"yes\""));
  EXPECT_TRUE(console_->admin().cordoned.empty()) << "nothing changes before confirmation";
  EXPECT_EQ(console_->last_seq(), 0u);

  std::string page =
      Followed(Call("POST", "/html/tmpl/cordon", "csrf=" + csrf + "&node=node-7&confirm=yes"));
  EXPECT_THAT(page, HasSubstr("node-7 is cordoned."));
  ASSERT_TRUE(console_->admin().cordoned.count("node-7"));
  EXPECT_EQ(console_->admin().cordoned.at("node-7").actor, "web (unknown)");  // no address here
  EXPECT_THAT(page, HasSubstr("action=\"/html/tmpl/uncordon\""));
  EXPECT_THAT(page, HasSubstr("<span class=\"muted\">by</span> web (unknown)</span>"));

  Followed(Call("POST", "/html/tmpl/uncordon", "csrf=" + csrf + "&node=node-7&confirm=yes"));
  EXPECT_TRUE(console_->admin().cordoned.empty());
}

TEST_F(ConsolePage, DisableAndEnableThroughTheForms) {
  std::string csrf = Csrf();
  EXPECT_THAT(Followed(Call("POST", "/html/tmpl/disable",
                            "csrf=" + csrf + "&license=license3&confirm=yes")),
              HasSubstr("license3 is disabled."));
  EXPECT_TRUE(console_->IsDisabled("license3"));
  EXPECT_THAT(
      Followed(Call("POST", "/html/tmpl/enable", "csrf=" + csrf + "&license=license3&confirm=yes")),
      HasSubstr("license3 is enabled."));
  EXPECT_FALSE(console_->IsDisabled("license3"));
}

TEST_F(ConsolePage, AdminFormsRefuseCrossSiteAndMissingTokenPosts) {
  Report("node-7", NodeState::kHeld, "license1");
  std::string csrf = Csrf();
  EXPECT_EQ(Call("POST", "/html/tmpl/cordon", "node=node-7&confirm=yes").status, 403);
  EXPECT_EQ(Call("POST", "/html/tmpl/cordon", "csrf=guess&node=node-7&confirm=yes").status, 403);
  EXPECT_EQ(Call("POST", "/html/tmpl/cordon", "csrf=" + csrf + "&node=node-7&confirm=yes",
                 {{"origin", "http://evil.example"}})
                .status,
            403);
  EXPECT_EQ(Call("POST", "/html/tmpl/disable", "csrf=" + csrf + "&license=l1&confirm=yes",
                 {{"sec-fetch-site", "cross-site"}})
                .status,
            403);
  EXPECT_EQ(Call("POST", "/html/tmpl/cordon", "node=node-7").status, 403)
      << "the confirmation page itself needs the form token";
  EXPECT_TRUE(console_->admin().cordoned.empty());
  EXPECT_TRUE(console_->admin().disabled.empty());
}

TEST_F(ConsolePage, UnknownAndMalformedNamesSayWhy) {
  std::string csrf = Csrf();
  EXPECT_THAT(
      Followed(Call("POST", "/html/tmpl/cordon", "csrf=" + csrf + "&node=node-9&confirm=yes")),
      HasSubstr("Not found: no agent has reported from node &#39;node-9&#39;"));
  EXPECT_THAT(Followed(Call("POST", "/html/tmpl/cordon",
                            "csrf=" + csrf + "&node=%3Cscript%3E&confirm=yes")),
              HasSubstr("Not accepted: "));
}

TEST_F(ConsolePage, ChartSamplesEveryThirtySecondsOnTheRefreshTimer) {
  Report("node-b", NodeState::kWaiting);
  in_process_.time().AdvanceAndRun(std::chrono::minutes(10), in_process_.io());
  auto j = nlohmann::json::parse(Call("GET", "/api/console/samples").body);
  ASSERT_EQ(j["samples"].size(), 21u) << j.dump();  // at 0 s, 30 s, ... 600 s
  EXPECT_EQ(j["samples"][0]["waiting"], 0);         // sampled as the page started
  EXPECT_EQ(j["samples"][1]["waiting"], 1);
  EXPECT_EQ(j["samples"][1]["at_ms"].get<int64_t>() - j["samples"][0]["at_ms"].get<int64_t>(),
            30000);
  EXPECT_EQ(j["window_s"], 6 * 3600);
  std::string page = Call("GET", "/html/tmpl/index").body;
  EXPECT_THAT(page, HasSubstr("<svg id=\"chart\""));
  EXPECT_THAT(page, HasSubstr("at most 1 waiting"));  // node-b is gone after 60 s
}

TEST(ConsolePageBounds, SamplesStayBoundedOverManyHours) {
  console::MemoryJournal journal;
  InProcessService in_process;
  ASSERT_TRUE(in_process.Open().ok());
  console::Console c(in_process.time(), {}, journal);
  WebUi& ui = in_process.InstallPage(
      {.pool_refresh = std::chrono::seconds(30), .console = &c, .chart_samples = 100});
  in_process.time().AdvanceAndRun(std::chrono::hours(2), in_process.io());
  auto j = nlohmann::json::parse(in_process.Call("GET", "/api/console/samples").body);
  EXPECT_EQ(j["samples"].size(), 100u);
  ui.Stop();
}

TEST_F(ConsolePage, MarksAnswerWhoCordonedAndDisabled) {
  Report("node-7", NodeState::kHeld, "license1");
  std::string csrf = Csrf();
  Followed(Call("POST", "/html/tmpl/cordon", "csrf=" + csrf + "&node=node-7&confirm=yes"));
  auto j = nlohmann::json::parse(Call("GET", "/api/console/marks").body);
  EXPECT_EQ(j["cordoned"]["node-7"]["actor"], "web (unknown)");
  EXPECT_TRUE(j["disabled"].empty());
}

TEST(ConsolePageAuth, FormsNeedTheTokenAndRecordTheActor) {
  console::MemoryJournal journal;
  InProcessService in_process;
  ASSERT_TRUE(in_process.Open({.auth_token = "s3cret"}).ok());
  console::Console c(in_process.time(), {}, journal);
  in_process.InstallPage({.console = &c});
  c.Report(
      {.node = "node-7", .pod = "p", .state = NodeState::kHeld, .license = "l1", .version = "1"},
      {}, [](StatusOr<console::Directives>) {});
  std::vector<std::pair<std::string, std::string>> host = {{"host", "127.0.0.1:8080"}};
  std::string page = in_process.Call("GET", "/html/tmpl/index", "", host).body;
  std::string marker = "name=\"csrf\" value=\"";
  auto at = page.find(marker) + marker.size();
  std::string csrf = page.substr(at, page.find('"', at) - at);
  Response ask =
      in_process.Call("POST", "/html/tmpl/cordon", "csrf=" + csrf + "&node=node-7", host);
  EXPECT_THAT(ask.body, HasSubstr("name=\"token\" type=\"password\""));
  auto post = [&](const std::string& token) {
    Response r = in_process.Call("POST", "/html/tmpl/cordon",
                                 "csrf=" + csrf + "&node=node-7&confirm=yes&token=" + token, host);
    return in_process.Call("GET", r.headers.back().second, "", host).body;
  };
  EXPECT_THAT(post("nope"), HasSubstr("The access token is missing or wrong."));
  EXPECT_TRUE(c.admin().cordoned.empty());
  EXPECT_THAT(post("s3cret"), HasSubstr("node-7 is cordoned."));
  EXPECT_EQ(c.admin().cordoned.at("node-7").actor, "web (token)");
}

}  // namespace
}  // namespace lm::tokenmgr
