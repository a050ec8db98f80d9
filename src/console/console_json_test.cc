#include "console/console_json.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace lm::console {
namespace {

TEST(AgentReportJson, RoundTripsAReportWithEvents) {
  AgentReport r;
  r.report = {.node = "n1", .pod = "pod-1", .state = NodeState::kHeld, .license = "license3",
              .version = "1.2.3"};
  Event e;
  e.kind = EventKind::kTakeover;
  e.license = "license3";
  e.token = 77;
  e.detail = "from n2";
  e.time = WallTime(std::chrono::milliseconds(1796000000000));
  e.origin = 0xfeed0000beef0001;
  e.origin_seq = 42;
  r.events.push_back(e);
  auto back = ParseAgentReport("n1", AgentReportJson(r));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->report.state, NodeState::kHeld);
  EXPECT_EQ(back->report.license, "license3");
  ASSERT_EQ(back->events.size(), 1u);
  EXPECT_EQ(back->events[0].kind, EventKind::kTakeover);
  EXPECT_EQ(back->events[0].token, 77u);
  EXPECT_EQ(back->events[0].node, "n1");
  EXPECT_EQ(UnixMillis(back->events[0].time), 1796000000000);
  EXPECT_EQ(back->events[0].origin, 0xfeed0000beef0001u);
  EXPECT_EQ(back->events[0].origin_seq, 42u);
  // Without an origin (an older agent): no stream, nothing to recognise a resend by.
  auto plain = ParseAgentReport("n1", R"({"pod":"p","state":"held","events":[{"kind":"claim","n":3}]})");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->events[0].origin, 0u);
}

TEST(AgentReportJson, RefusesMalformedOversizedAndHostileBodies) {
  const std::string big(kMaxReportBytes + 1, ' ');
  for (std::string bad : {std::string(""), std::string("[]"), std::string("{}"),
                          std::string(R"({"pod":"p"})"),
                          std::string(R"({"pod":"p","state":"gone"})"),
                          std::string(R"({"pod":"p","state":"HELD"})"),
                          std::string(R"({"pod":7,"state":"held"})"),
                          std::string(R"({"pod":"p","state":"held","events":{}})"),
                          std::string(R"({"pod":"p","state":"held","events":[1]})"),
                          std::string(R"({"pod":"p","state":"held","events":[{"kind":"boom"}]})"),
                          std::string(R"({"pod":"p","state":"held","events":[{"kind":"claim","token":-1}]})"),
                          std::string(R"({"pod":"p","state":"held","origin":7})"),
                          std::string(R"({"pod":"p","state":"held","events":[{"kind":"claim","time_ms":17960000000000}]})"),
                          std::string(R"({"pod":"p","state":"held","origin":"0000000000000000"})"),
                          std::string(R"({"pod":"p","state":"held","origin":"FEED0000BEEF0001"})"),
                          std::string(R"({"pod":"p","state":"held","origin":"feed0000beef00011"})"),
                          std::string(R"({"pod":"p","state":"held","origin":"<script>alert(1)</"})"),
                          std::string(R"({"pod":"p","state":"held","events":[{"kind":"claim","n":-2}]})"),
                          std::string(R"({"pod":"p","state":"held","events":[{"kind":"claim","n":"1"}]})"),
                          R"({"pod":"p","state":"held","events":[{"kind":"claim","detail":")" +
                              std::string(300, 'x') + "\"}]}",
                          big}) {
    auto r = ParseAgentReport("n1", bad);
    ASSERT_FALSE(r.ok()) << bad.substr(0, 80);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad.substr(0, 80);
  }
}

TEST(DirectivesJson, RoundTripsAndRefusesBadNames) {
  Directives d{.cordoned = true, .disabled = {"license2", "license9"}, .acknowledged = 3};
  auto back = ParseDirectives(DirectivesJson(d));
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->cordoned);
  EXPECT_EQ(back->acknowledged, 3u);
  EXPECT_FALSE(ParseDirectives(R"({"cordoned":true,"disabled":[],"acknowledged":-1})").ok());
  EXPECT_EQ(back->disabled, d.disabled);
  EXPECT_FALSE(ParseDirectives(R"({"cordoned":true,"disabled":["../x"]})").ok());
  EXPECT_FALSE(ParseDirectives(R"({"cordoned":"yes","disabled":[]})").ok());
}

TEST(NodesJson, CountsEveryStateAndWritesNullForNoLicense) {
  NodeRow a{.node = "a", .pod = "p", .license = "", .version = "1"};
  a.state = NodeState::kWaiting;
  auto j = nlohmann::json::parse(NodesJson({a}));
  EXPECT_EQ(j["totals"]["waiting"], 1);
  EXPECT_EQ(j["totals"]["gone"], 0);
  EXPECT_TRUE(j["nodes"][0]["license"].is_null());
  EXPECT_EQ(j["nodes"][0]["state"], "waiting");
}

TEST(EventsJson, IsValidJsonWithTheCursor) {
  Page p;
  Event e;
  e.seq = 5;
  e.detail = "quote \" and <b>";
  p.events.push_back(e);
  p.next = 5;
  auto j = nlohmann::json::parse(EventsJson(p, 9));
  EXPECT_EQ(j["events"][0]["detail"], "quote \" and <b>");
  EXPECT_EQ(j["next"], 5);
  EXPECT_EQ(j["last_seq"], 9);
  EXPECT_EQ(j["more"], false);
}

}  // namespace
}  // namespace lm::console
