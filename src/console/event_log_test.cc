#include "console/event_log.h"

#include <gtest/gtest.h>

#include "console/usage.h"

namespace lm::console {
namespace {

using namespace std::chrono_literals;

Event Ev(EventKind k, std::string license, std::string node) {
  Event e;
  e.kind = k;
  e.license = std::move(license);
  e.node = std::move(node);
  return e;
}

class EventLogTest : public ::testing::Test {
 protected:
  FakeClock clock_;
};

TEST_F(EventLogTest, AppendAssignsGrowingSequenceNumbersAndTheTime) {
  EventLog log(clock_, {});
  Event a = log.Append(Ev(EventKind::kClaim, "l1", "n1"));
  clock_.Advance(1s);
  Event b = log.Append(Ev(EventKind::kRelease, "l1", "n1"));
  EXPECT_EQ(a.seq, 1u);
  EXPECT_EQ(b.seq, 2u);
  EXPECT_EQ(b.time - a.time, 1s);
}

TEST_F(EventLogTest, PagesThroughEveryEventWithoutSkipping) {
  EventLog log(clock_, {});
  for (int i = 0; i < 25; ++i) log.Append(Ev(EventKind::kClaim, "l" + std::to_string(i), "n"));
  uint64_t after = 0;
  std::vector<uint64_t> seen;
  for (int pages = 0; pages < 10; ++pages) {
    Page p = log.After(after, 10);
    for (const Event& e : p.events) seen.push_back(e.seq);
    after = p.next;
    if (!p.more) break;
  }
  ASSERT_EQ(seen.size(), 25u);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i + 1);
}

TEST_F(EventLogTest, LastPageSaysNoMoreAndKeepsTheCursor) {
  EventLog log(clock_, {});
  log.Append(Ev(EventKind::kClaim, "l", "n"));
  Page p = log.After(1, 10);
  EXPECT_TRUE(p.events.empty());
  EXPECT_FALSE(p.more);
  EXPECT_EQ(p.next, 1u);
}

TEST_F(EventLogTest, CountLimitDropsTheOldest) {
  EventLog log(clock_, {.max_events = 3});
  for (int i = 0; i < 5; ++i) log.Append(Ev(EventKind::kClaim, "l", "n"));
  Page p = log.After(0, 100);
  ASSERT_EQ(p.events.size(), 3u);
  EXPECT_EQ(p.events.front().seq, 3u);
  EXPECT_EQ(p.first_retained, 3u);
}

TEST_F(EventLogTest, AgeLimitDropsEventsOlderThanMaxAgeEvenWithoutAppends) {
  EventLog log(clock_, {.max_events = 100, .max_age = 60s});
  log.Append(Ev(EventKind::kClaim, "l", "n"));
  clock_.Advance(30s);
  log.Append(Ev(EventKind::kRelease, "l", "n"));
  clock_.Advance(31s);
  Page p = log.After(0, 100);
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].seq, 2u);
}

TEST_F(EventLogTest, RestoreContinuesAboveTheHighestSequenceSeen) {
  EventLog log(clock_, {});
  Event e = Ev(EventKind::kClaim, "l", "n");
  e.seq = 41;
  e.time = clock_.WallNow();
  log.Restore({e, e}, /*last_seq=*/7);
  EXPECT_EQ(log.size(), 1u);
  EXPECT_EQ(log.Append(Ev(EventKind::kRelease, "l", "n")).seq, 42u);
}

TEST_F(EventLogTest, RestoreNeverGoesBelowTheStoredLastSequence) {
  EventLog log(clock_, {});
  log.Restore({}, /*last_seq=*/99);  // every event aged out, the counter did not
  EXPECT_EQ(log.Append(Ev(EventKind::kClaim, "l", "n")).seq, 100u);
}

TEST_F(EventLogTest, JsonRoundTripKeepsEveryField) {
  EventLog log(clock_, {});
  Event e = log.Append({.kind = EventKind::kAdmin, .license = "l", .node = "n", .token = 12,
                        .actor = "ops", .detail = "cordon \"x\" <script>"});
  auto back = EventFromJson(ToJson(e));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->seq, e.seq);
  EXPECT_EQ(UnixMillis(back->time), UnixMillis(e.time));
  EXPECT_EQ(back->kind, EventKind::kAdmin);
  EXPECT_EQ(back->detail, e.detail);
  EXPECT_EQ(back->actor, "ops");
  EXPECT_EQ(back->token, 12u);
  EXPECT_EQ(back->origin, 0u);
  EXPECT_EQ(ToJson(e).find("origin"), std::string::npos);  // tokenmgr's own: no stream
  Event agent = e;
  agent.origin = 0x0123456789abcdef;
  agent.origin_seq = 9;
  auto numbered = EventFromJson(ToJson(agent));
  ASSERT_TRUE(numbered.ok()) << numbered.status().ToString();
  EXPECT_EQ(numbered->origin, 0x0123456789abcdefu);
  EXPECT_EQ(numbered->origin_seq, 9u);
}

TEST(EventFromJson, RefusesMalformedMissingUnknownAndOversizedRecords) {
  for (std::string bad : {std::string("not json"), std::string("[]"), std::string("{}"),
                          std::string(R"({"seq":-1,"time_ms":0,"kind":"claim","license":"",)"
                                      R"("node":"","token":0,"actor":"","detail":""})"),
                          std::string(R"({"seq":1,"time_ms":0,"kind":"explode","license":"",)"
                                      R"("node":"","token":0,"actor":"","detail":""})"),
                          std::string(R"({"seq":1,"time_ms":0,"kind":"claim","license":5,)"
                                      R"("node":"","token":0,"actor":"","detail":""})"),
                          std::string(R"({"seq":1,"time_ms":0,"kind":"claim","license":"",)"
                                      R"("node":"","token":0,"actor":"","detail":"",)"
                                      R"("origin":"xyz","origin_seq":1})"),
                          std::string(R"({"seq":1,"time_ms":17960000000000,"kind":"claim",)"
                                      R"("license":"","node":"","token":0,"actor":"",)"
                                      R"("detail":""})"),
                          std::string(R"({"seq":1,"time_ms":0,"kind":"claim","license":"",)"
                                      R"("node":"","token":0,"actor":"","detail":"",)"
                                      R"("origin":"0123456789abcdef"})"),
                          R"({"seq":1,"time_ms":0,"kind":"claim","license":"","node":"",)"
                          R"("token":0,"actor":"","detail":")" +
                              std::string(5000, 'x') + "\"}"}) {
    auto e = EventFromJson(bad);
    ASSERT_FALSE(e.ok()) << bad.substr(0, 80);
    EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(EventKinds, NamesRoundTrip) {
  for (EventKind k : {EventKind::kClaim, EventKind::kTakeover, EventKind::kWithdraw,
                      EventKind::kRelease, EventKind::kWaitStart, EventKind::kWaitEnd,
                      EventKind::kLeaseExpiry, EventKind::kAdmin}) {
    EXPECT_EQ(ParseKind(KindName(k)), k);
  }
  EXPECT_FALSE(ParseKind("Claim"));
}

// ---- usage ----

class UsageTest : public ::testing::Test {
 protected:
  void At(std::chrono::seconds t, EventKind k, std::string license, std::string node) {
    Event e = Ev(k, std::move(license), std::move(node));
    e.seq = ++seq_;
    e.time = t0_ + t;
    events_.push_back(e);
  }
  const UsageRow* Find(const std::vector<UsageRow>& rows, const std::string& name) {
    for (const auto& r : rows) {
      if (r.name == name) return &r;
    }
    return nullptr;
  }
  WallTime t0_ = WallTime(std::chrono::hours(500000));
  uint64_t seq_ = 0;
  std::deque<Event> events_;
};

TEST_F(UsageTest, HoldFromClaimToReleaseCountsForNodeAndLicense) {
  At(10s, EventKind::kClaim, "l1", "n1");
  At(70s, EventKind::kRelease, "l1", "n1");
  Usage u = ComputeUsage(events_, t0_, t0_ + 1000s, t0_ + 1000s, false);
  ASSERT_NE(Find(u.by_node, "n1"), nullptr);
  EXPECT_EQ(Find(u.by_node, "n1")->held, 60s);
  EXPECT_EQ(Find(u.by_license, "l1")->holds, 1u);
}

TEST_F(UsageTest, HoldsAreClippedToTheWindow) {
  At(0s, EventKind::kClaim, "l1", "n1");
  At(100s, EventKind::kWithdraw, "l1", "n1");
  Usage u = ComputeUsage(events_, t0_ + 40s, t0_ + 60s, t0_ + 1000s, false);
  EXPECT_EQ(Find(u.by_node, "n1")->held, 20s);
}

TEST_F(UsageTest, TakeoverEndsTheFormerHoldersHold) {
  At(0s, EventKind::kClaim, "l1", "n1");
  At(30s, EventKind::kTakeover, "l1", "n2");
  At(50s, EventKind::kRelease, "l1", "n2");
  Usage u = ComputeUsage(events_, t0_, t0_ + 100s, t0_ + 100s, false);
  EXPECT_EQ(Find(u.by_node, "n1")->held, 30s);
  EXPECT_EQ(Find(u.by_node, "n2")->held, 20s);
  EXPECT_EQ(Find(u.by_license, "l1")->held, 50s);
  EXPECT_EQ(Find(u.by_license, "l1")->holds, 2u);
}

TEST_F(UsageTest, OpenHoldLastsUntilNowNotUntilTheWindowsEnd) {
  At(0s, EventKind::kClaim, "l1", "n1");
  Usage u = ComputeUsage(events_, t0_, t0_ + 1000s, t0_ + 25s, false);
  EXPECT_EQ(Find(u.by_node, "n1")->held, 25s);
}

TEST_F(UsageTest, ReleaseByAnotherNodeDoesNotEndTheHold) {
  At(0s, EventKind::kClaim, "l1", "n1");
  At(10s, EventKind::kRelease, "l1", "n2");
  Usage u = ComputeUsage(events_, t0_, t0_ + 40s, t0_ + 40s, false);
  EXPECT_EQ(Find(u.by_node, "n1")->held, 40s);
  EXPECT_EQ(Find(u.by_node, "n2"), nullptr);
}

TEST_F(UsageTest, CsvQuotesHostileNamesAndDefusesFormulas) {
  At(0s, EventKind::kClaim, "l1", "=cmd|' /C calc'!A0");
  At(5s, EventKind::kClaim, "l2", "a,\"b\"");
  std::string csv = UsageCsv(ComputeUsage(events_, t0_, t0_ + 10s, t0_ + 10s, false));
  EXPECT_NE(csv.find("node,'=cmd|' /C calc'!A0,10.000,1\n"), std::string::npos) << csv;
  EXPECT_NE(csv.find("node,\"a,\"\"b\"\"\",5.000,1\n"), std::string::npos) << csv;
}

TEST_F(UsageTest, TrimmedHistorySaysFromWhenTheReportIsComplete) {
  At(100s, EventKind::kClaim, "l1", "n1");
  Usage u = ComputeUsage(events_, t0_, t0_ + 200s, t0_ + 200s, /*history_trimmed=*/true);
  EXPECT_EQ(u.known_from, t0_ + 100s);
}

TEST(ParseTimeArg, TakesEveryDocumentedFormAndRefusesTheRest) {
  const WallTime now = WallTime(std::chrono::seconds(1796000000));
  EXPECT_EQ(*ParseTimeArg("now", now, "from"), now);
  EXPECT_EQ(*ParseTimeArg("1700000000", now, "from"), WallTime(std::chrono::seconds(1700000000)));
  EXPECT_EQ(*ParseTimeArg("-90m", now, "from"), now - 90min);
  EXPECT_EQ(*ParseTimeArg("-7d", now, "from"), now - std::chrono::hours(168));
  EXPECT_EQ(UnixMillis(*ParseTimeArg("2026-12-01T00:00:00Z", now, "from")), 1796083200000);
  EXPECT_EQ(UnixMillis(*ParseTimeArg("2026-12-01T00:00:00.25Z", now, "from")), 1796083200250);
  for (const char* bad : {"", "yesterday", "-", "-5", "-5w", "--5h", "2026-13-01T00:00:00Z",
                          "2026-02-30T00:00:00Z", "2026-12-01T00:00:00", "2026-12-01 00:00:00Z",
                          "2026-12-01T00:00:00.Z", "2026-12-01T00:00:00+01:00",
                          "99999999999999999999", "1e9"}) {
    auto t = ParseTimeArg(bad, now, "from");
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_NE(t.status().message().find("from must be"), std::string::npos);
  }
}

}  // namespace
}  // namespace lm::console
