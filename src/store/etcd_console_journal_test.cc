// The console's etcd journal on FakeEtcd with simulated time: no etcd binary, no real waiting.
// Several journals share one FakeEtcd, as tokenmgr replicas share one etcd.
#include "store/etcd_console_journal.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/time_system.h"
#include "store/etcd_client.h"
#include "store/etcd_gateway_api.h"
#include "store/etcd_lock_service.h"
#include "store/testing/fake_etcd.h"

namespace lm::store {
namespace {

using console::AdminMark;
using console::Event;
using console::EventKind;
using console::MarkKind;
using std::chrono::milliseconds;
using std::chrono::seconds;

// What a replica's console would receive.
class RecordingSink final : public console::ConsoleSink {
 public:
  void ApplyEvents(std::vector<Event> stored) override {
    for (Event& e : stored) events.push_back(std::move(e));
  }
  void ApplyMark(MarkKind kind, const std::string& name, std::optional<AdminMark> mark) override {
    auto& m = kind == MarkKind::kCordon ? cordoned : disabled;
    if (mark) {
      m[name] = *mark;
    } else {
      m.erase(name);
    }
  }
  std::vector<uint64_t> Seqs() const {
    std::vector<uint64_t> out;
    for (const Event& e : events) out.push_back(e.seq);
    return out;
  }
  std::vector<Event> events;
  std::map<std::string, AdminMark> cordoned, disabled;
};

std::vector<uint64_t> Range(uint64_t from, uint64_t to) {
  std::vector<uint64_t> out;
  for (uint64_t s = from; s <= to; ++s) out.push_back(s);
  return out;
}

class EtcdConsoleJournalTest : public ::testing::Test {
 protected:
  struct Replica {
    FakeEtcdClient* client = nullptr;  // owned by `journal`
    std::unique_ptr<EtcdConsoleJournal> journal;
    std::unique_ptr<RecordingSink> sink = std::make_unique<RecordingSink>();
    EtcdConsoleJournal* operator->() { return journal.get(); }
  };

  EtcdConsoleOptions Options() {
    EtcdConsoleOptions o;
    o.prefix = "/t/";
    o.limits = limits_;
    o.retention_interval = seconds(10);
    o.event_flush = milliseconds(0);  // appends go at once; EventsWithinEventFlushShareOneTxn
    return o;
  }
  // A replica's journal, started and run until idle. Owned by the fixture.
  Replica& Open(const std::string& name = "replica", bool run = true) {
    auto client = etcd_.NewClient(name);
    auto r = std::make_unique<Replica>();
    r->client = client.get();
    r->journal = std::make_unique<EtcdConsoleJournal>(time_, io_.get_executor(), std::move(client),
                                                      Options());
    r->journal->Attach(r->sink.get());
    r->journal->Start();
    replicas_.push_back(std::move(r));
    if (run) Run(milliseconds(0));
    return *replicas_.back();
  }
  void Close(Replica& r) { r.journal.reset(); }
  void Run(milliseconds d) { time_.AdvanceAndRun(d, io_); }

  Event Ev(const std::string& node, const std::string& detail = "") {
    Event e;
    e.kind = EventKind::kClaim;
    e.license = "license1";
    e.node = node;
    e.detail = detail;
    e.time = time_.WallNow();
    return e;
  }
  // Appends without running: the answer lands in `out` once the io runs.
  void AppendAsync(Replica& r, std::vector<Event> events, std::optional<Status>& out) {
    r->AppendEvents(std::move(events), [&out](Status s) { out = s; });
  }
  Status Append(Replica& r, std::vector<Event> events) {
    std::optional<Status> out;
    AppendAsync(r, std::move(events), out);
    Run(milliseconds(0));
    return out.value_or(Internal("not answered"));
  }
  Status Mark(Replica& r, MarkKind kind, const std::string& name, bool on) {
    std::optional<Status> out;
    std::optional<AdminMark> m;
    if (on) m = AdminMark{"alice", time_.WallNow()};
    r->SetMark(kind, name, m, [&out](Status s) { out = s; });
    Run(milliseconds(0));
    return out.value_or(Internal("not answered"));
  }
  size_t EventKeys() { return etcd_.List("/t/console/events/", "/t/console/events0").size(); }

  SimulatedTimeSystem time_;
  boost::asio::io_context io_;
  FakeEtcd etcd_{time_, io_.get_executor()};
  console::Limits limits_;
  std::vector<std::unique_ptr<Replica>> replicas_;
};

TEST_F(EtcdConsoleJournalTest, ConcurrentAppendsOnTwoReplicasShareOneGapFreeNumbering) {
  Replica& a = Open("a");
  Replica& b = Open("b");
  std::vector<std::optional<Status>> answers(40);
  for (size_t i = 0; i < answers.size(); ++i) {
    Replica& r = i % 2 ? b : a;
    AppendAsync(r, {Ev(i % 2 ? "nb" : "na", std::to_string(i)), Ev("n", std::to_string(i))},
                answers[i]);
  }
  Run(milliseconds(0));
  for (const auto& s : answers) ASSERT_TRUE(s.has_value() && s->ok()) << s->ToString();
  EXPECT_EQ(a.sink->Seqs(), Range(1, 80));
  EXPECT_EQ(b.sink->Seqs(), Range(1, 80));
  for (size_t i = 0; i < 80; ++i) {
    EXPECT_EQ(a.sink->events[i].node, b.sink->events[i].node);
    EXPECT_EQ(a.sink->events[i].detail, b.sink->events[i].detail);
  }
  EXPECT_EQ(etcd_.Get("/t/console/seq")->value, "80");
  EXPECT_EQ(EventKeys(), 80u);
}

TEST_F(EtcdConsoleJournalTest, EventsWithinEventFlushShareOneTxn) {
  // 500 holders started together report an event each every few ms: a txn each cost etcd as
  // much as the lock's handoffs. Appends within event_flush of the first go in one txn.
  auto client = etcd_.NewClient("batching");
  EtcdConsoleOptions o = Options();
  o.event_flush = milliseconds(10);
  EtcdConsoleJournal j(time_, io_.get_executor(), std::move(client), o);
  RecordingSink sink;
  j.Attach(&sink);
  j.Start();
  Run(milliseconds(0));
  ASSERT_TRUE(j.synced());
  const int txns = etcd_.txns();
  std::vector<std::optional<Status>> answers(8);
  for (size_t i = 0; i < answers.size(); ++i) {
    j.AppendEvents({Ev("n" + std::to_string(i))}, [&answers, i](Status s) { answers[i] = s; });
    Run(milliseconds(1));
  }
  EXPECT_FALSE(answers[0].has_value());
  EXPECT_EQ(etcd_.txns(), txns);
  Run(milliseconds(2));  // 10 ms after the first
  for (size_t i = 0; i < answers.size(); ++i) {
    ASSERT_TRUE(answers[i].has_value()) << i;
    EXPECT_TRUE(answers[i]->ok()) << answers[i]->ToString();
  }
  EXPECT_EQ(etcd_.txns(), txns + 1);
  EXPECT_EQ(EventKeys(), answers.size());
  EXPECT_EQ(j.last_seq(), answers.size());
  // A full batch does not wait.
  std::vector<Event> full(EtcdConsoleJournal::kMaxEventsPerTxn, Ev("bulk"));
  std::optional<Status> bulk;
  j.AppendEvents(full, [&bulk](Status s) { bulk = s; });
  Run(milliseconds(0));
  ASSERT_TRUE(bulk.has_value());
  EXPECT_TRUE(bulk->ok()) << bulk->ToString();
  // Stopping fails what still waits; nothing is sent after.
  std::optional<Status> late;
  j.AppendEvents({Ev("late")}, [&late](Status s) { late = s; });
  j.Stop();
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(late->code(), StatusCode::kUnavailable);
  const int after = etcd_.txns();
  Run(milliseconds(50));
  EXPECT_EQ(etcd_.txns(), after);
}

TEST_F(EtcdConsoleJournalTest, AMarkSetOnOneReplicaIsSeenByTheOtherAndLiftedFromIt) {
  Replica& a = Open("a");
  Replica& b = Open("b");
  ASSERT_TRUE(Mark(a, MarkKind::kCordon, "node-7", true).ok());
  ASSERT_TRUE(Mark(a, MarkKind::kDisable, "license3", true).ok());
  EXPECT_EQ(b.sink->cordoned.count("node-7"), 1u);
  EXPECT_EQ(b.sink->cordoned["node-7"].actor, "alice");
  EXPECT_EQ(b.sink->disabled.count("license3"), 1u);
  ASSERT_TRUE(Mark(b, MarkKind::kCordon, "node-7", false).ok());
  EXPECT_EQ(a.sink->cordoned.count("node-7"), 0u);
  EXPECT_FALSE(etcd_.Get("/t/console/cordon/node-7").has_value());
}

TEST_F(EtcdConsoleJournalTest, AStaleTxnAnswerNeverOverwritesANewerMarkFromTheWatch) {
  Replica& a = Open("a");
  Replica& b = Open("b");
  // a's put is stored first, b's delete second; a's watch brings both before a's answer.
  std::optional<Status> put, del;
  a->SetMark(MarkKind::kCordon, "node-1", AdminMark{"alice", time_.WallNow()},
             [&](Status s) { put = s; });
  b->SetMark(MarkKind::kCordon, "node-1", std::nullopt, [&](Status s) { del = s; });
  Run(milliseconds(0));
  ASSERT_TRUE(put.has_value() && put->ok());
  ASSERT_TRUE(del.has_value() && del->ok());
  EXPECT_FALSE(etcd_.Get("/t/console/cordon/node-1").has_value());
  EXPECT_EQ(a.sink->cordoned.count("node-1"), 0u);
  EXPECT_EQ(b.sink->cordoned.count("node-1"), 0u);
}

TEST_F(EtcdConsoleJournalTest, ARestartedReplicaReadsEverythingBackAndNumbersOn) {
  Replica& a = Open("a");
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(Append(a, {Ev("n1", std::to_string(i))}).ok());
  ASSERT_TRUE(Mark(a, MarkKind::kCordon, "n1", true).ok());
  Close(a);
  Replica& again = Open("a-again");
  EXPECT_TRUE(again->synced());
  EXPECT_EQ(again.sink->Seqs(), Range(1, 5));
  EXPECT_EQ(again.sink->events[4].detail, "4");
  EXPECT_EQ(again.sink->cordoned.count("n1"), 1u);
  ASSERT_TRUE(Append(again, {Ev("n1")}).ok());
  EXPECT_EQ(again.sink->Seqs(), Range(1, 6));
}

TEST_F(EtcdConsoleJournalTest, StartUpReadsOnlyTheNewestMaxEventsInPages) {
  limits_.max_events = 1500;
  Replica& a = Open("a");
  for (int i = 0; i < 20; ++i) {
    std::vector<Event> batch(100, Ev("n1"));
    ASSERT_TRUE(Append(a, std::move(batch)).ok());
  }
  Replica& b = Open("b");
  EXPECT_EQ(b.sink->Seqs(), Range(501, 2000));
  EXPECT_EQ(b->last_seq(), 2000u);
}

TEST_F(EtcdConsoleJournalTest, RetentionDeletesEventsBeyondMaxEventsButNeverTheCounter) {
  limits_.max_events = 10;
  Replica& a = Open("a");
  Replica& b = Open("b");
  for (int i = 0; i < 25; ++i) ASSERT_TRUE(Append(i % 2 ? a : b, {Ev("n1")}).ok());
  EXPECT_EQ(EventKeys(), 25u);
  Run(seconds(10));
  auto kept = etcd_.List("/t/console/events/", "/t/console/events0");
  ASSERT_EQ(kept.size(), 10u);
  EXPECT_EQ(kept.front().key, a->EventKey(16));
  EXPECT_EQ(etcd_.Get("/t/console/seq")->value, "25");
  // Nothing more to delete: no further etcd writes.
  const int txns = etcd_.txns();
  Run(seconds(20));
  EXPECT_EQ(etcd_.txns(), txns);
  // Numbering goes on above the deleted ones, after a restart too.
  Close(a);
  Replica& again = Open("a-again");
  EXPECT_EQ(again.sink->Seqs(), Range(16, 25));
  ASSERT_TRUE(Append(again, {Ev("n1")}).ok());
  EXPECT_EQ(again.sink->Seqs().back(), 26u);
}

TEST_F(EtcdConsoleJournalTest, AReplicaThatAppendsALotTrimsWithoutWaitingForTheTimer) {
  limits_.max_events = 10;
  Replica& a = Open("a");
  for (int i = 0; i < 139; ++i) ASSERT_TRUE(Append(a, {Ev("n1")}).ok());
  // The 138th append left 128 beyond the 10 kept: one range delete, no time passed.
  EXPECT_EQ(EventKeys(), 11u);
  EXPECT_EQ(etcd_.List("/t/console/events/", "/t/console/events0").front().key, a->EventKey(129));
}

TEST_F(EtcdConsoleJournalTest, RetentionDeletesEventsOlderThanMaxAgeOldestFirst) {
  limits_.max_age = std::chrono::hours(1);
  Replica& a = Open("a");
  Event old = Ev("n1", "old");
  old.time -= std::chrono::hours(2);
  Event young = Ev("n1", "young");
  ASSERT_TRUE(Append(a, {old, old, young}).ok());
  Run(seconds(10));
  auto kept = etcd_.List("/t/console/events/", "/t/console/events0");
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept.front().key, a->EventKey(3));
}

TEST_F(EtcdConsoleJournalTest, ACompactedWatchStartIsReadAgainWithEveryEventOnce) {
  Replica& a = Open("a");
  Replica& b = Open("b");
  ASSERT_TRUE(Append(a, {Ev("n1")}).ok());
  b.client->SilenceWatch(true);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(Append(a, {Ev("n2")}).ok());
  ASSERT_TRUE(Mark(a, MarkKind::kDisable, "license2", true).ok());
  ASSERT_TRUE(etcd_.Compact(etcd_.revision()).ok());
  b.client->SilenceWatch(false);
  Run(milliseconds(0));
  EXPECT_TRUE(b->synced());
  EXPECT_EQ(b.sink->Seqs(), Range(1, 4));
  EXPECT_EQ(b.sink->disabled.count("license2"), 1u);
}

TEST_F(EtcdConsoleJournalTest, ASeqAboveAMissingOneIsHeldBackUntilAReadFillsTheGap) {
  Replica& a = Open("a");
  Replica& b = Open("b");
  b.client->SilenceWatch(true);  // b does not hear of a's event
  ASSERT_TRUE(Append(a, {Ev("na")}).ok());
  ASSERT_TRUE(Append(b, {Ev("nb")}).ok());  // numbered 2 after a failed compare
  EXPECT_TRUE(b.sink->events.empty());      // 2 waits for 1
  Run(seconds(2));                          // the hold-back ends: b reads etcd again
  EXPECT_EQ(b.sink->Seqs(), Range(1, 2));
  EXPECT_EQ(b.sink->events[0].node, "na");
  EXPECT_EQ(a.sink->Seqs(), Range(1, 2));
}

TEST_F(EtcdConsoleJournalTest, ForeignOrUndecodableKeysAreSkippedAndCounted) {
  Replica& a = Open("a");
  ASSERT_TRUE(Append(a, {Ev("n1"), Ev("n1")}).ok());
  etcd_.Put(a->EventKey(3), "not an event");
  etcd_.Put("/t/console/seq", "3");
  etcd_.Put("/t/console/cordon/n9", "{");
  etcd_.Put("/t/console/disable/bad name", "{\"actor\":\"x\",\"at_ms\":1}");
  etcd_.Put("/t/console/other", "x");
  ASSERT_TRUE(Append(a, {Ev("n1", "after")}).ok());
  Run(seconds(2));  // 4 waited for 3, which never comes
  EXPECT_EQ(a.sink->Seqs(), (std::vector<uint64_t>{1, 2, 4}));
  EXPECT_EQ(a->skipped_keys(), 4u);
  EXPECT_TRUE(a.sink->cordoned.empty());
  Replica& b = Open("b");
  EXPECT_EQ(b.sink->Seqs(), (std::vector<uint64_t>{1, 2, 4}));
  EXPECT_EQ(b->skipped_keys(), 3u);  // console/other is in no range it reads
  // An unreadable counter does not stop numbering.
  etcd_.Put("/t/console/seq", "garbage");
  ASSERT_TRUE(Append(b, {Ev("n1")}).ok());
  EXPECT_EQ(b.sink->Seqs().back(), 5u);
  EXPECT_EQ(etcd_.Get("/t/console/seq")->value, "5");
}

TEST_F(EtcdConsoleJournalTest, UnreachableEtcdStoresNothingAndSaysRetry) {
  Replica& a = Open("a");
  ASSERT_TRUE(Append(a, {Ev("n1")}).ok());
  etcd_.SetUnavailable(true);
  Status s = Append(a, {Ev("n1")});
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("events not stored, retry"), std::string::npos) << s.message();
  s = Mark(a, MarkKind::kCordon, "n1", true);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("admin action not stored, retry"), std::string::npos) << s.message();
  EXPECT_TRUE(a.sink->cordoned.empty());
  etcd_.SetUnavailable(false);
  etcd_.SetNoLeader(true);
  s = Mark(a, MarkKind::kCordon, "n1", true);
  EXPECT_NE(s.message().find("no leader"), std::string::npos) << s.message();
  etcd_.SetNoLeader(false);
  Run(seconds(1));  // the watch comes back
  EXPECT_TRUE(a->synced());
  ASSERT_TRUE(Append(a, {Ev("n1")}).ok());
  EXPECT_EQ(a.sink->Seqs(), Range(1, 2));
  EXPECT_EQ(EventKeys(), 2u);
}

TEST_F(EtcdConsoleJournalTest, AReplicaStartedWhileEtcdIsDownSyncsOnceItIsBack) {
  ASSERT_TRUE(Append(Open("writer"), {Ev("n1")}).ok());
  etcd_.SetUnavailable(true);
  Replica& late = Open("late");
  Run(seconds(60));
  EXPECT_FALSE(late->synced());
  etcd_.SetUnavailable(false);
  Run(seconds(5));  // the retry interval is capped at 5 s
  EXPECT_TRUE(late->synced());
  EXPECT_EQ(late.sink->Seqs(), Range(1, 1));
}

TEST_F(EtcdConsoleJournalTest, TheNospaceAlarmIsReportedWithTheQuota) {
  Replica& a = Open("a");
  etcd_.SetAlarm("NOSPACE", true);
  Status s = Mark(a, MarkKind::kDisable, "license1", true);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("NOSPACE"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("quota"), std::string::npos) << s.message();
  EXPECT_TRUE(a.sink->disabled.empty());
}

TEST_F(EtcdConsoleJournalTest, NumberingGivesUpAfterMaxAttemptsUnderContention) {
  Replica& a = Open("a");
  Replica& b = Open("b");
  b.client->SilenceWatch(true);
  ASSERT_TRUE(Append(a, {Ev("na")}).ok());
  // b's counter is stale; with one attempt allowed it cannot number.
  auto client = etcd_.NewClient("c");
  FakeEtcdClient* c_client = client.get();
  EtcdConsoleOptions o = Options();
  o.max_attempts = 1;
  EtcdConsoleJournal c(time_, io_.get_executor(), std::move(client), o);
  RecordingSink sink;
  c.Attach(&sink);
  c.Start();
  Run(milliseconds(0));
  c_client->SilenceWatch(true);
  ASSERT_TRUE(Append(a, {Ev("na")}).ok());
  std::optional<Status> out;
  c.AppendEvents({Ev("nc")}, [&](Status s) { out = s; });
  Run(milliseconds(0));
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->code(), StatusCode::kUnavailable);
  EXPECT_NE(out->message().find("could not number"), std::string::npos) << out->message();
  EXPECT_EQ(EventKeys(), 2u);
}

TEST_F(EtcdConsoleJournalTest, TwoConsolesShareMarksAndHistory) {
  Replica& a = Open("a");
  Replica& b = Open("b");
  console::Console ca(time_, {}, *a.journal);
  console::Console cb(time_, {}, *b.journal);
  std::optional<StatusOr<console::Directives>> d;
  ca.Report({.node = "n1",
             .pod = "p",
             .state = console::NodeState::kHeld,
             .license = "l1",
             .version = ""},
            {Ev("n1")}, [&](StatusOr<console::Directives> r) { d = std::move(r); });
  Run(milliseconds(0));
  ASSERT_TRUE(d.has_value() && d->ok());
  EXPECT_EQ((*d)->acknowledged, 1u);
  std::optional<Status> done;
  ca.Cordon("n1", "alice", [&](Status s) { done = s; });
  Run(milliseconds(0));
  ASSERT_TRUE(done.has_value() && done->ok()) << done->ToString();
  EXPECT_TRUE(cb.DirectivesFor("n1").cordoned);
  console::Page p = cb.Events(0, 10);
  ASSERT_EQ(p.events.size(), 2u);
  EXPECT_EQ(p.events[1].seq, 2u);
  EXPECT_EQ(p.events[1].actor, "alice");
  EXPECT_EQ(ca.Events(0, 10).events.size(), 2u);
}

TEST_F(EtcdConsoleJournalTest, TheLockStoreOnTheSamePrefixIgnoresConsoleKeys) {
  EtcdStoreOptions store;
  store.prefix = "/t/";
  store.maintenance.compact = false;
  auto lock = EtcdLockService::Create(io_, time_, {}, store, etcd_.NewClient("lock"));
  ASSERT_TRUE(lock.ok());
  Replica& a = Open("a");
  ASSERT_TRUE(Append(a, {Ev("n1")}).ok());
  ASSERT_TRUE(Mark(a, MarkKind::kCordon, "n1", true).ok());
  EXPECT_TRUE((*lock)->Ready()) << (*lock)->NotReadyReason();
  EXPECT_EQ((*lock)->StoreWarning(), "");
  (*lock)->Shutdown();
  Run(milliseconds(0));
}

TEST_F(EtcdConsoleJournalTest, TheLockStoresStartUpReadLeavesTheConsoleKeysOut) {
  Replica& a = Open("a");
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Append(a, std::vector<Event>(100, Ev("n1"))).ok());
  EtcdStoreOptions store;
  store.prefix = "/t/";
  store.maintenance.compact = false;
  const int64_t before = etcd_.kvs_read();
  auto lock = EtcdLockService::Create(io_, time_, {}, store, etcd_.NewClient("lock"));
  ASSERT_TRUE(lock.ok());
  Run(milliseconds(0));
  EXPECT_TRUE((*lock)->Ready()) << (*lock)->NotReadyReason();
  EXPECT_LT(etcd_.kvs_read() - before, 10);  // not the 1,000 events
  (*lock)->Shutdown();
  Run(milliseconds(0));
}

TEST(EtcdGatewayTxnJson, ARangeDeleteCarriesItsRangeEnd) {
  Txn t;
  t.success = {Op::DeleteRange("/t/console/events/", "/t/console/events/9"), Op::Delete("/k")};
  nlohmann::json j = TxnJson(t);
  const auto& ranged = j["success"][0]["request_delete_range"];
  EXPECT_EQ(ranged["key"], Base64Encode("/t/console/events/"));
  EXPECT_EQ(ranged.value("range_end", ""), Base64Encode("/t/console/events/9"));
  EXPECT_FALSE(j["success"][1]["request_delete_range"].contains("range_end"));
}

TEST_F(EtcdConsoleJournalTest, ANodeReportingToOneReplicaIsListedOnTheOther) {
  Replica& a = Open("a");
  Replica& b = Open("b");
  console::ConsoleOptions o;
  o.nodes.gone_after = seconds(60);
  console::Console ca(time_, o, *a.journal);
  console::Console cb(time_, o, *b.journal);
  a->SetNodeSink([&](const console::NodeRow& r) { ca.MergeNode(r); });
  b->SetNodeSink([&](const console::NodeRow& r) { cb.MergeNode(r); });
  auto report = [&](console::Console& c, console::NodeState st) {
    std::optional<StatusOr<console::Directives>> d;
    c.Report({.node = "n1", .pod = "p", .state = st, .license = "l1", .version = "1"}, {},
             [&](StatusOr<console::Directives> r) { d = std::move(r); });
    ASSERT_TRUE(d.has_value() && d->ok());
  };
  report(ca, console::NodeState::kHeld);
  Run(milliseconds(200));  // the batch goes out
  std::vector<console::NodeRow> rows = cb.Nodes();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].node, "n1");
  EXPECT_EQ(rows[0].state, console::NodeState::kHeld);
  // So b can cordon it (404 before: no agent had reported there).
  std::optional<Status> done;
  cb.Cordon("n1", "bob", [&](Status s) { done = s; });
  Run(milliseconds(0));
  ASSERT_TRUE(done.has_value() && done->ok()) << done->ToString();
  // Unchanged reports are not written again before gone_after / 3.
  const int txns = etcd_.txns();
  for (int i = 0; i < 10; ++i) {
    report(ca, console::NodeState::kHeld);
    Run(seconds(1));
  }
  EXPECT_EQ(etcd_.txns(), txns);
  // After that, a refresh keeps it from looking gone on b.
  for (int i = 0; i < 50; ++i) {
    report(ca, console::NodeState::kHeld);
    Run(seconds(1));
  }
  EXPECT_EQ(cb.Nodes()[0].state, console::NodeState::kHeld);
  EXPECT_GE(etcd_.txns(), txns + 2);
  EXPECT_LE(etcd_.txns(), txns + 4);
}

}  // namespace
}  // namespace lm::store
