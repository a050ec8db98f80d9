#include "holder/reporter.h"

#include <gtest/gtest.h>

#include "holder/fake_client.h"

namespace lm::holder {
namespace {

using console::EventKind;
using console::NodeState;
using std::chrono::milliseconds;
using std::chrono::seconds;

class ReporterTest : public ::testing::Test {
 protected:
  ReporterOptions Options() {
    ReporterOptions o;
    o.node = "n1";
    o.pod = "pod-n1";
    o.version = "9.8.7";
    o.heartbeat = seconds(10);
    return o;
  }
  void RecordN(Reporter& r, int n, int first = 0) {
    for (int i = first; i < first + n; ++i) {
      r.Record(EventKind::kClaim, "license" + std::to_string(i), i, "");
    }
  }
  FakeClient client_;
  FakeClock clock_;
};

TEST_F(ReporterTest, SendsStateVersionAndEventsWithTheirAgentTime) {
  Reporter r(Options(), client_, clock_);
  WallTime at = clock_.WallNow();
  r.Record(EventKind::kTakeover, "license3", 7, "node-b");
  clock_.Advance(seconds(3));
  ASSERT_TRUE(r.MaybeSend(NodeState::kHeld, "license3"));
  ASSERT_EQ(client_.reports.size(), 1u);
  const console::AgentReport& sent = client_.reports[0];
  EXPECT_EQ(sent.report.pod, "pod-n1");
  EXPECT_EQ(sent.report.state, NodeState::kHeld);
  EXPECT_EQ(sent.report.license, "license3");
  EXPECT_EQ(sent.report.version, "9.8.7");
  ASSERT_EQ(sent.events.size(), 1u);
  EXPECT_EQ(sent.events[0].kind, EventKind::kTakeover);
  EXPECT_EQ(sent.events[0].token, 7u);
  EXPECT_EQ(sent.events[0].detail, "node-b");
  EXPECT_EQ(sent.events[0].time, at);  // when it happened, not when it was sent
  EXPECT_EQ(r.stats().buffered, 0u);
}

TEST_F(ReporterTest, TimeoutIsTwoSecondsOrAQuarterHeartbeat) {
  ReporterOptions o = Options();
  EXPECT_EQ(o.Timeout(), milliseconds(2000));
  o.heartbeat = seconds(2);
  EXPECT_EQ(o.Timeout(), milliseconds(500));
  Reporter r(o, client_, clock_);
  r.MaybeSend(NodeState::kWaiting, "");
  EXPECT_EQ(client_.report_timeout, milliseconds(500));
}

TEST_F(ReporterTest, ReportsAtMostEveryHalfHeartbeat) {
  // 1 s: half of it in whole seconds would be 0 (no limit at all).
  for (seconds heartbeat : {seconds(10), seconds(1)}) {
    SCOPED_TRACE(heartbeat.count());
    ReporterOptions o = Options();
    o.heartbeat = heartbeat;
    Reporter r(o, client_, clock_);
    const size_t before = client_.reports.size();
    EXPECT_TRUE(r.MaybeSend(NodeState::kWaiting, ""));
    clock_.Advance(milliseconds(heartbeat) / 2 - milliseconds(1));
    EXPECT_FALSE(r.MaybeSend(NodeState::kWaiting, ""));
    clock_.Advance(milliseconds(1));
    EXPECT_TRUE(r.MaybeSend(NodeState::kWaiting, ""));
    EXPECT_EQ(client_.reports.size(), before + 2);
  }
}

TEST_F(ReporterTest, ANewStateOrLicenseIsReportedAtOnce) {
  Reporter r(Options(), client_, clock_);
  EXPECT_TRUE(r.MaybeSend(NodeState::kWaiting, ""));
  EXPECT_FALSE(r.MaybeSend(NodeState::kWaiting, ""));
  EXPECT_TRUE(r.MaybeSend(NodeState::kHeld, "license1"));  // claimed
  EXPECT_FALSE(r.MaybeSend(NodeState::kHeld, "license1"));
  EXPECT_TRUE(r.MaybeSend(NodeState::kHeld, "license2"));
  EXPECT_EQ(client_.reports.size(), 3u);
}

TEST_F(ReporterTest, RefreshAsksAtOnceWithoutEventsAndKeepsThemForTheNextReport) {
  Reporter r(Options(), client_, clock_);
  EXPECT_TRUE(r.MaybeSend(NodeState::kWaiting, ""));
  RecordN(r, 2);
  client_.cordoned.insert("n1");
  clock_.Advance(milliseconds(10));  // a report is not due for another 4.99 s
  EXPECT_FALSE(r.MaybeSend(NodeState::kWaiting, ""));
  EXPECT_FALSE(r.cordoned());
  EXPECT_TRUE(r.Refresh(NodeState::kWaiting, ""));
  EXPECT_TRUE(r.cordoned());
  ASSERT_EQ(client_.reports.size(), 2u);
  EXPECT_TRUE(client_.reports[1].events.empty());
  EXPECT_EQ(r.stats().buffered, 2u);
  clock_.Advance(milliseconds(4990));  // due as before the refresh
  EXPECT_TRUE(r.MaybeSend(NodeState::kCordoned, ""));
  EXPECT_EQ(client_.reports.back().events.size(), 2u);
  EXPECT_EQ(r.stats().buffered, 0u);
}

TEST_F(ReporterTest, RefreshSendsNothingWhileOffOrPaused) {
  ReporterOptions off = Options();
  off.enabled = false;
  Reporter quiet(off, client_, clock_);
  EXPECT_FALSE(quiet.Refresh(NodeState::kWaiting, ""));
  EXPECT_TRUE(client_.reports.empty());
  Reporter r(Options(), client_, clock_);
  client_.report_status = NotFound("tokenmgr answered the node report with HTTP 404");
  EXPECT_FALSE(r.MaybeSend(NodeState::kWaiting, ""));
  clock_.Advance(seconds(10));
  EXPECT_FALSE(r.Refresh(NodeState::kWaiting, ""));
  EXPECT_EQ(client_.reports.size(), 1u);
}

TEST_F(ReporterTest, SendsAtMost64AndDropsOnlyTheAcknowledged) {
  Reporter r(Options(), client_, clock_);
  RecordN(r, 100);
  client_.ack_limit = 10;
  ASSERT_TRUE(r.MaybeSend(NodeState::kHeld, "x"));
  EXPECT_EQ(client_.reports.back().events.size(), 64u);
  EXPECT_EQ(r.stats().buffered, 90u);
  client_.ack_limit = SIZE_MAX;
  clock_.Advance(seconds(10));
  ASSERT_TRUE(r.MaybeSend(NodeState::kHeld, "x"));
  // The next report starts with the first event not acknowledged.
  EXPECT_EQ(client_.reports.back().events.front().license, "license10");
  EXPECT_EQ(r.stats().buffered, 26u);
  ASSERT_EQ(client_.stored.size(), 74u);
  for (size_t i = 0; i < client_.stored.size(); ++i) {
    EXPECT_EQ(client_.stored[i].token, i);  // in order, none twice
  }
}

TEST_F(ReporterTest, FullBufferDropsTheOldestAndCountsThem) {
  Reporter r(Options(), client_, clock_);
  RecordN(r, 1005);
  EXPECT_EQ(r.stats().buffered, 1000u);
  EXPECT_EQ(r.stats().dropped, 5u);
  ASSERT_TRUE(r.MaybeSend(NodeState::kHeld, "x"));
  EXPECT_EQ(client_.reports.back().events.front().license, "license5");
}

TEST_F(ReporterTest, UnavailableKeepsTheEventsAndTheLastDirectives) {
  Reporter r(Options(), client_, clock_);
  client_.cordoned.insert("n1");
  client_.disabled.insert("license9");
  ASSERT_TRUE(r.MaybeSend(NodeState::kHeld, "x"));
  EXPECT_TRUE(r.cordoned());
  RecordN(r, 3);
  client_.cordoned.clear();
  client_.disabled.clear();
  client_.report_status = Unavailable("tokenmgr answered HTTP 503");
  clock_.Advance(seconds(10));
  EXPECT_FALSE(r.MaybeSend(NodeState::kCordoned, ""));
  client_.down = true;
  client_.report_status = Status::Ok();
  clock_.Advance(seconds(10));
  EXPECT_FALSE(r.MaybeSend(NodeState::kCordoned, ""));
  EXPECT_TRUE(r.cordoned());
  EXPECT_TRUE(r.Disabled("license9"));
  EXPECT_EQ(r.stats().buffered, 3u);
  EXPECT_EQ(r.stats().failures, 2u);
  client_.down = false;
  clock_.Advance(seconds(10));
  ASSERT_TRUE(r.MaybeSend(NodeState::kCordoned, ""));
  EXPECT_FALSE(r.cordoned());
  EXPECT_FALSE(r.Disabled("license9"));
  EXPECT_EQ(client_.stored.size(), 3u);
}

TEST_F(ReporterTest, UnauthenticatedKeepsTheEvents) {
  Reporter r(Options(), client_, clock_);
  RecordN(r, 2);
  client_.report_status = Unauthenticated("tokenmgr answered the node report with HTTP 401");
  EXPECT_FALSE(r.MaybeSend(NodeState::kHeld, "x"));
  EXPECT_EQ(r.stats().buffered, 2u);
}

TEST_F(ReporterTest, MalformedReportDropsTheEventsItCarried) {
  Reporter r(Options(), client_, clock_);
  RecordN(r, 70);
  client_.report_status = InvalidArgument("tokenmgr answered the node report with HTTP 400");
  EXPECT_FALSE(r.MaybeSend(NodeState::kHeld, "x"));
  EXPECT_EQ(r.stats().buffered, 6u);
  EXPECT_EQ(r.stats().refused, 64u);
}

TEST_F(ReporterTest, TokenmgrWithoutTheConsoleIsAskedAgainOnlyAfterFiveMinutes) {
  Reporter r(Options(), client_, clock_);
  RecordN(r, 2);
  client_.report_status = NotFound("tokenmgr answered the node report with HTTP 404");
  EXPECT_FALSE(r.MaybeSend(NodeState::kHeld, "x"));
  EXPECT_TRUE(r.stats().paused);
  for (int i = 0; i < 29; ++i) {
    clock_.Advance(seconds(10));
    EXPECT_FALSE(r.MaybeSend(NodeState::kHeld, "x"));
  }
  EXPECT_EQ(client_.reports.size(), 1u);
  client_.report_status = Status::Ok();
  clock_.Advance(seconds(10));
  EXPECT_TRUE(r.MaybeSend(NodeState::kHeld, "x"));
  EXPECT_FALSE(r.stats().paused);
  EXPECT_EQ(client_.stored.size(), 2u);  // the events were kept meanwhile
}

TEST_F(ReporterTest, EventsAreNumberedInOneStreamAndResentUnderTheSameNumbers) {
  Reporter r(Options(), client_, clock_);
  RecordN(r, 2);
  client_.report_status = Unavailable("timed out");  // maybe stored, the answer lost
  EXPECT_FALSE(r.MaybeSend(NodeState::kHeld, "x"));
  client_.report_status = Status::Ok();
  clock_.Advance(seconds(10));
  ASSERT_TRUE(r.MaybeSend(NodeState::kHeld, "x"));
  ASSERT_EQ(client_.reports.size(), 2u);
  for (const console::AgentReport& sent : client_.reports) {
    ASSERT_EQ(sent.events.size(), 2u);
    EXPECT_NE(sent.events[0].origin, 0u);
    EXPECT_EQ(sent.events[0].origin, sent.events[1].origin);
    EXPECT_EQ(sent.events[0].origin_seq, 1u);
    EXPECT_EQ(sent.events[1].origin_seq, 2u);
  }
  Reporter other(Options(), client_, clock_);  // another agent: another stream
  RecordN(other, 1);
  clock_.Advance(seconds(10));
  ASSERT_TRUE(other.MaybeSend(NodeState::kHeld, "x"));
  EXPECT_NE(client_.reports.back().events[0].origin, client_.reports[0].events[0].origin);
}

TEST_F(ReporterTest, TheSpoolKeepsUnacknowledgedEventsAndTheNumberingAcrossRestarts) {
  MemorySpool spool;
  uint64_t origin = 0;
  {
    Reporter r(Options(), client_, clock_, &spool);
    RecordN(r, 3);
    ASSERT_TRUE(spool.contents.has_value());
    EXPECT_EQ(spool.contents->events.size(), 3u);
    client_.ack_limit = 1;
    ASSERT_TRUE(r.MaybeSend(NodeState::kHeld, "x"));
    EXPECT_EQ(spool.contents->events.size(), 2u);  // the acknowledged one is gone from it too
    origin = spool.contents->origin;
  }  // killed: two events not acknowledged
  client_.ack_limit = SIZE_MAX;
  Reporter again(Options(), client_, clock_, &spool);
  EXPECT_EQ(again.stats().buffered, 2u);
  RecordN(again, 1, 10);
  clock_.Advance(seconds(10));
  ASSERT_TRUE(again.MaybeSend(NodeState::kHeld, "x"));
  const auto& sent = client_.reports.back().events;
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[0].origin, origin);
  EXPECT_EQ(sent[0].origin_seq, 2u);
  EXPECT_EQ(sent[1].origin_seq, 3u);
  EXPECT_EQ(sent[2].origin_seq, 4u);
  EXPECT_EQ(sent[2].license, "license10");
  EXPECT_TRUE(spool.contents->events.empty());
  EXPECT_EQ(spool.contents->next_seq, 5u);
}

TEST_F(ReporterTest, AnUnwritableSpoolKeepsTheEventsInMemory) {
  MemorySpool spool;
  spool.save_status = Unavailable("read-only file system");
  Reporter r(Options(), client_, clock_, &spool);
  RecordN(r, 2);
  EXPECT_EQ(r.stats().buffered, 2u);
  ASSERT_TRUE(r.MaybeSend(NodeState::kHeld, "x"));
  EXPECT_EQ(client_.stored.size(), 2u);
}

TEST_F(ReporterTest, OffRecordsAndSendsNothing) {
  ReporterOptions o = Options();
  o.enabled = false;
  Reporter r(o, client_, clock_);
  RecordN(r, 3);
  EXPECT_FALSE(r.MaybeSend(NodeState::kHeld, "x"));
  EXPECT_TRUE(client_.reports.empty());
  EXPECT_EQ(r.stats().buffered, 0u);
}

}  // namespace
}  // namespace lm::holder
