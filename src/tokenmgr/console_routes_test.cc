#include "tokenmgr/console_routes.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tokenmgr/in_process_service.h"

namespace lm::tokenmgr {
namespace {

using http::Response;
using nlohmann::json;
using ::testing::HasSubstr;

// A journal that stores in memory, or fails every call, or holds the answers until Flush()
// (a shared store answers later).
class TestJournal final : public console::ConsoleJournal {
 public:
  enum class Mode { kStore, kFail, kDefer };
  void AppendEvents(std::vector<console::Event> events, Done done) override {
    Run(
        [this, events = std::move(events)]() mutable {
          for (auto& e : events) e.seq = ++last_seq_;
          sink_->ApplyEvents(std::move(events));
        },
        std::move(done));
  }
  void SetMark(console::MarkKind kind, const std::string& name,
               std::optional<console::AdminMark> mark, Done done) override {
    Run([this, kind, name, mark]() { sink_->ApplyMark(kind, name, mark); }, std::move(done));
  }
  void Flush() {
    auto pending = std::move(pending_);
    for (auto& p : pending) p();
  }
  Mode mode = Mode::kStore;

 private:
  void Run(std::function<void()> store, Done done) {
    if (mode == Mode::kFail) return done(Unavailable("journal: disk full"));
    auto both = [store = std::move(store), done = std::move(done)] {
      store();
      done(Status::Ok());
    };
    if (mode == Mode::kDefer) return pending_.push_back(std::move(both));
    both();
  }
  uint64_t last_seq_ = 0;
  std::vector<std::function<void()>> pending_;
};

constexpr char kReport[] =
    R"({"pod":"p1","state":"waiting","version":"1.2","events":[{"kind":"wait_start"}]})";

class ConsoleRoutesTest : public ::testing::Test {
 protected:
  void Open(LockApiOptions options = {}) {
    ASSERT_TRUE(in_process_.Open(std::move(options)).ok());
    console::ConsoleOptions o;
    o.license_exists = [](const std::string& l) { return l == "license1"; };
    console_ = std::make_unique<console::Console>(in_process_.time(), o, journal_);
    routes_ = std::make_unique<ConsoleRoutes>(in_process_.router(), *console_, in_process_.api(),
                                              in_process_.time(), ConsoleRoutesOptions{});
    in_process_.service().AddMetrics([this] { return routes_->RenderMetrics(); });
  }
  Response Call(std::string method, std::string target, std::string body = "",
                std::vector<std::pair<std::string, std::string>> headers = {}) {
    return in_process_.Call(std::move(method), std::move(target), std::move(body),
                            std::move(headers));
  }
  InProcessService in_process_;
  TestJournal journal_;
  std::unique_ptr<console::Console> console_;
  std::unique_ptr<ConsoleRoutes> routes_;
};

TEST_F(ConsoleRoutesTest, ReportIsListedAtOnceAndAnswersDirectives) {
  Open();
  Response r = Call("PUT", "/api/nodes/n1", kReport);
  ASSERT_EQ(r.status, 200) << r.body;
  json d = json::parse(r.body);
  EXPECT_EQ(d["cordoned"], false);
  EXPECT_EQ(d["acknowledged"], 1);
  json nodes = json::parse(Call("GET", "/api/nodes").body);
  ASSERT_EQ(nodes["nodes"].size(), 1u);
  EXPECT_EQ(nodes["nodes"][0]["node"], "n1");
  EXPECT_EQ(nodes["nodes"][0]["state"], "waiting");
  EXPECT_EQ(nodes["totals"]["waiting"], 1);
}

TEST_F(ConsoleRoutesTest, ReportAnswersOnlyOnceTheJournalHasStored) {
  Open();
  journal_.mode = TestJournal::Mode::kDefer;
  http::Request req;
  req.method = "PUT";
  req.path = req.target = "/api/nodes/n1";
  req.body = kReport;
  auto out = std::make_shared<Response>();
  out->status = 0;
  in_process_.router().Handle(
      req, std::make_shared<http::Responder>([out](Response r) { *out = std::move(r); }));
  EXPECT_EQ(out->status, 0);  // not answered before the journal has stored
  EXPECT_EQ(json::parse(Call("GET", "/api/events").body)["events"].size(), 0u);
  journal_.Flush();
  EXPECT_EQ(out->status, 200);
  EXPECT_EQ(json::parse(out->body)["acknowledged"], 1);
  EXPECT_EQ(json::parse(Call("GET", "/api/events").body)["events"].size(), 1u);
}

TEST_F(ConsoleRoutesTest, MalformedReportsAndNamesAre400) {
  Open();
  EXPECT_EQ(Call("PUT", "/api/nodes/n1", "not json").status, 400);
  EXPECT_EQ(Call("PUT", "/api/nodes/%3Cscript%3E", kReport).status, 400);
  EXPECT_EQ(Call("PUT", "/api/nodes/n1", R"({"pod":"<b>","state":"held"})").status, 400);
  EXPECT_EQ(Call("PUT", "/api/nodes/n1?x=1", kReport).status, 400);
  EXPECT_EQ(Call("POST", "/api/nodes/a%20b/cordon").status, 400);
  EXPECT_EQ(Call("POST", "/api/licenses/lic%3Brm/disable").status, 400);
  EXPECT_EQ(
      Call("GET", "/api/nodes").body,
      R"({"nodes":[],"totals":{"cordoned":0,"degraded":0,"gone":0,"held":0,"released":0,"waiting":0}})");
}

TEST_F(ConsoleRoutesTest, ReportAndAdminNeedTheTokenWhenAuthIsOn) {
  Open({.auth_token = "s3cret"});
  EXPECT_EQ(Call("PUT", "/api/nodes/n1", kReport).status, 401);
  EXPECT_EQ(Call("PUT", "/api/nodes/n1", kReport, {{"authorization", "Bearer nope"}}).status, 401);
  EXPECT_EQ(Call("POST", "/api/licenses/license1/disable").status, 401);
  EXPECT_EQ(Call("PUT", "/api/nodes/n1", kReport, {{"authorization", "Bearer s3cret"}}).status,
            200);
  Response r = Call("POST", "/api/licenses/license1/disable", "",
                    {{"authorization", "Bearer s3cret"}, {"x-actor", "alice"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["actor"], "alice (token)");
  EXPECT_EQ(console_->admin().disabled.at("license1").actor, "alice (token)");
  EXPECT_EQ(Call("GET", "/api/nodes").status, 200);  // reading needs no token
}

TEST_F(ConsoleRoutesTest, AdminActionsRefuseCrossSiteBrowsers) {
  Open();
  Call("PUT", "/api/nodes/n1", kReport);
  EXPECT_EQ(Call("POST", "/api/nodes/n1/cordon", "", {{"sec-fetch-site", "cross-site"}}).status,
            403);
  EXPECT_FALSE(console_->DirectivesFor("n1").cordoned);
}

TEST_F(ConsoleRoutesTest, UnknownNodeOrLicenseIs404) {
  Open();
  EXPECT_EQ(Call("POST", "/api/nodes/nobody/cordon").status, 404);
  EXPECT_EQ(Call("POST", "/api/licenses/license9/disable").status, 404);
}

TEST_F(ConsoleRoutesTest, CordonShowsInTheNextDirectivesWithTheActor) {
  Open();
  Call("PUT", "/api/nodes/n1", kReport);
  Response r = Call("POST", "/api/nodes/n1/cordon?by=bob");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["actor"], "bob (unknown)");
  EXPECT_EQ(json::parse(Call("PUT", "/api/nodes/n1", kReport).body)["cordoned"], true);
  EXPECT_EQ(Call("POST", "/api/nodes/n1/cordon?by=a%20b").status, 400);
  EXPECT_EQ(Call("POST", "/api/nodes/n1/cordon?by=a", "", {{"x-actor", "b"}}).status, 400);
  EXPECT_EQ(Call("POST", "/api/nodes/n1/uncordon").status, 200);
  EXPECT_EQ(json::parse(Call("PUT", "/api/nodes/n1", kReport).body)["cordoned"], false);
}

TEST_F(ConsoleRoutesTest, JournalDownIs503AndChangesNothing) {
  Open();
  Call("PUT", "/api/nodes/n1", kReport);
  journal_.mode = TestJournal::Mode::kFail;
  Response r = Call("POST", "/api/nodes/n1/cordon");
  EXPECT_EQ(r.status, 503);
  EXPECT_THAT(r.body, HasSubstr("disk full"));
  EXPECT_EQ(Call("PUT", "/api/nodes/n1", kReport).status, 503);
  EXPECT_FALSE(console_->DirectivesFor("n1").cordoned);
}

TEST_F(ConsoleRoutesTest, EventsPageDefaultsClampsAndRefusesGarbage) {
  Open();
  for (int i = 0; i < 3; ++i) Call("PUT", "/api/nodes/n1", kReport);
  json all = json::parse(Call("GET", "/api/events").body);
  EXPECT_EQ(all["events"].size(), 3u);
  EXPECT_EQ(all["last_seq"], 3);
  json none = json::parse(Call("GET", "/api/events?limit=0").body);
  EXPECT_EQ(none["events"].size(), 0u);
  EXPECT_EQ(none["last_seq"], 3);
  EXPECT_EQ(Call("GET", "/api/events?limit=99999999999999999999999").status, 200);
  EXPECT_EQ(json::parse(Call("GET", "/api/events?after=3").body)["events"].size(), 0u);
  EXPECT_EQ(json::parse(Call("GET", "/api/events?after=999").body)["events"].size(), 0u);
  for (const char* bad : {"after=-1", "after=x", "limit=-5", "limit=", "limit=1e3", "lmit=1"}) {
    Response r = Call("GET", std::string("/api/events?") + bad);
    EXPECT_EQ(r.status, 400) << bad;
  }
  EXPECT_THAT(Call("GET", "/api/events?after=-1").body, HasSubstr("after"));
  EXPECT_THAT(Call("GET", "/api/events?limit=-1").body, HasSubstr("limit"));
}

TEST(ParseEventsLimit, ClampsLargeValuesAndRefusesNonDigits) {
  EXPECT_EQ(*ParseEventsLimit("0", 1000), 0u);
  EXPECT_EQ(*ParseEventsLimit("999", 1000), 999u);
  EXPECT_EQ(*ParseEventsLimit("1001", 1000), 1000u);
  EXPECT_EQ(*ParseEventsLimit(std::string(40, '9'), 1000), 1000u);
  EXPECT_FALSE(ParseEventsLimit("-1", 1000).ok());
  EXPECT_FALSE(ParseEventsLimit(" 1", 1000).ok());
}

TEST_F(ConsoleRoutesTest, UsageWindowsAndFormats) {
  Open();
  Response csv = Call("GET", "/api/usage?format=csv");
  EXPECT_EQ(csv.status, 200);
  EXPECT_EQ(csv.content_type, "text/csv; charset=utf-8");
  EXPECT_THAT(csv.body, HasSubstr("kind,name,held_seconds,holds"));
  EXPECT_EQ(Call("GET", "/api/usage?from=-1h&to=-2h").status, 400);
  EXPECT_EQ(Call("GET", "/api/usage?from=0").status, 400);  // 1970..now: absurd
  EXPECT_EQ(Call("GET", "/api/usage?from=yesterday").status, 400);
  EXPECT_EQ(Call("GET", "/api/usage?format=xml").status, 400);
  EXPECT_EQ(Call("GET", "/api/usage?from=-7d&to=now").status, 200);
}

TEST_F(ConsoleRoutesTest, MetricsShowEveryNodeStateEventKindAndTheLongestWait) {
  Open();
  Call("PUT", "/api/nodes/n1", kReport);
  in_process_.time().Advance(std::chrono::seconds(30));
  std::string m = Call("GET", "/metrics").body;
  EXPECT_THAT(m, HasSubstr("tokenmgr_nodes{state=\"waiting\"} 1\n"));
  EXPECT_THAT(m, HasSubstr("tokenmgr_nodes{state=\"gone\"} 0\n"));
  EXPECT_THAT(m, HasSubstr("tokenmgr_events_total{kind=\"wait_start\"} 1\n"));
  EXPECT_THAT(m, HasSubstr("tokenmgr_events_total{kind=\"admin\"} 0\n"));
  EXPECT_THAT(m, HasSubstr("tokenmgr_longest_wait_seconds 30\n"));
  EXPECT_THAT(m, HasSubstr("tokenmgr_cordoned_nodes 0\n"));
  ASSERT_EQ(Call("POST", "/api/nodes/n1/cordon").status, 200);
  ASSERT_EQ(Call("POST", "/api/licenses/license1/disable").status, 200);
  m = Call("GET", "/metrics").body;
  EXPECT_THAT(m, HasSubstr("tokenmgr_cordoned_nodes 1\n"));
  EXPECT_THAT(m, HasSubstr("tokenmgr_disabled_licenses 1\n"));
  EXPECT_THAT(m, HasSubstr("tokenmgr_events_total{kind=\"admin\"} 2\n"));
}

}  // namespace
}  // namespace lm::tokenmgr
