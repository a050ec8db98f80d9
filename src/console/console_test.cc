#include "console/console.h"

#include <gtest/gtest.h>

#include <set>

namespace lm::console {
namespace {

using namespace std::chrono_literals;

// A local journal: numbers, keeps and passes on inline, or fails.
class FakeJournal final : public ConsoleJournal {
 public:
  void AppendEvents(std::vector<Event> events, Done done) override {
    if (fail) return done(Unavailable("journal down"));
    for (Event& e : events) {
      e.seq = ++last_seq;
      stored.push_back(e);
    }
    sink_->ApplyEvents(std::move(events));
    done(Status::Ok());
  }
  void SetMark(MarkKind kind, const std::string& name, std::optional<AdminMark> mark,
               Done done) override {
    if (fail) return done(Unavailable("journal down"));
    auto& marks = kind == MarkKind::kCordon ? admin.cordoned : admin.disabled;
    if (mark) {
      marks[name] = *mark;
    } else {
      marks.erase(name);
    }
    sink_->ApplyMark(kind, name, std::move(mark));
    done(Status::Ok());
  }
  bool fail = false;
  uint64_t last_seq = 0;
  std::vector<Event> stored;
  AdminState admin;
};

StatusOr<Directives> ReportTo(Console& c, const NodeReport& r, std::vector<Event> events) {
  StatusOr<Directives> out = Internal("done not called");
  c.Report(r, std::move(events), [&](StatusOr<Directives> d) { out = std::move(d); });
  return out;
}

template <typename Action>
Status Sync(Action action) {
  Status out = Internal("done not called");
  action([&](Status s) { out = s; });
  return out;
}

class ConsoleTest : public ::testing::Test {
 protected:
  ConsoleTest() {
    ConsoleOptions o;
    o.nodes.gone_after = 60s;
    o.license_exists = [this](const std::string& l) { return pool_.count(l) > 0; };
    console_ = std::make_unique<Console>(clock_, o, journal_);
  }
  NodeReport R(std::string node, NodeState s, std::string license = "") {
    return {.node = node, .pod = "pod-" + node, .state = s, .license = std::move(license),
            .version = "1.0.0"};
  }
  Event Ev(EventKind k, std::string license) {
    Event e;
    e.kind = k;
    e.license = std::move(license);
    return e;
  }
  StatusOr<Directives> Report(const NodeReport& r, std::vector<Event> events) {
    return ReportTo(*console_, r, std::move(events));
  }
  Status Cordon(const std::string& n, const std::string& a) {
    return Sync([&](Console::Done d) { console_->Cordon(n, a, std::move(d)); });
  }
  Status Uncordon(const std::string& n, const std::string& a) {
    return Sync([&](Console::Done d) { console_->Uncordon(n, a, std::move(d)); });
  }
  Status Disable(const std::string& l, const std::string& a) {
    return Sync([&](Console::Done d) { console_->Disable(l, a, std::move(d)); });
  }
  FakeClock clock_;
  FakeJournal journal_;
  std::set<std::string> pool_{"license1", "license2"};
  std::unique_ptr<Console> console_;
};

// An agent resends events whose acknowledgement it lost: numbered in its stream, they are
// acknowledged again and stored once.
TEST_F(ConsoleTest, AResentEventIsAcknowledgedAndStoredOnce) {
  auto numbered = [](Event e, uint64_t origin, uint64_t n) {
    e.origin = origin;
    e.origin_seq = n;
    return e;
  };
  Event claim = Ev(EventKind::kClaim, "l1"), release = Ev(EventKind::kRelease, "l1");
  auto first = Report(R("n1", NodeState::kHeld, "l1"), {numbered(claim, 7, 1)});
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->acknowledged, 1u);
  auto again = Report(R("n1", NodeState::kHeld, "l1"),
                      {numbered(claim, 7, 1), numbered(release, 7, 2)});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->acknowledged, 2u);
  ASSERT_EQ(journal_.stored.size(), 2u);
  EXPECT_EQ(journal_.stored[1].kind, EventKind::kRelease);
  EXPECT_EQ(journal_.stored[1].origin_seq, 2u);
  // Only again: nothing is stored, all acknowledged.
  auto third = Report(R("n1", NodeState::kHeld, "l1"), {numbered(release, 7, 2)});
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third->acknowledged, 1u);
  EXPECT_EQ(journal_.stored.size(), 2u);
  // Another stream (a new spool, or a second pod of that name), another node, or no origin at
  // all: stored.
  ASSERT_TRUE(Report(R("n1", NodeState::kHeld, "l1"), {numbered(claim, 8, 1)}).ok());
  ASSERT_TRUE(Report(R("n2", NodeState::kHeld, "l2"), {numbered(claim, 7, 1)}).ok());
  ASSERT_TRUE(Report(R("n2", NodeState::kHeld, "l2"), {claim}).ok());
  ASSERT_TRUE(Report(R("n2", NodeState::kHeld, "l2"), {claim}).ok());
  EXPECT_EQ(journal_.stored.size(), 6u);
}

TEST_F(ConsoleTest, ResentEventsAreRecognisedAfterARestore) {
  Event stored = Ev(EventKind::kClaim, "l1");
  stored.node = "n1";
  stored.seq = 5;
  stored.origin = 9;
  stored.origin_seq = 3;
  console_->Restore({stored}, 5, {});
  Event resent = Ev(EventKind::kClaim, "l1");
  resent.origin = 9;
  resent.origin_seq = 3;
  auto d = Report(R("n1", NodeState::kHeld, "l1"), {resent});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->acknowledged, 1u);
  EXPECT_TRUE(journal_.stored.empty());
}

TEST_F(ConsoleTest, AFailedStoreForgetsNothingSoTheResendIsStored) {
  Event e = Ev(EventKind::kClaim, "l1");
  e.origin = 7;
  e.origin_seq = 1;
  journal_.fail = true;
  EXPECT_FALSE(Report(R("n1", NodeState::kHeld, "l1"), {e}).ok());
  journal_.fail = false;
  ASSERT_TRUE(Report(R("n1", NodeState::kHeld, "l1"), {e}).ok());
  EXPECT_EQ(journal_.stored.size(), 1u);
}

TEST_F(ConsoleTest, ReportStoresTheAgentsEventsUnderItsOwnNodeName) {
  Event e = Ev(EventKind::kClaim, "license1");
  e.node = "someone-else";
  e.actor = "forged";
  auto d = Report(R("n1", NodeState::kHeld, "license1"), {e});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(journal_.stored.size(), 1u);
  EXPECT_EQ(journal_.stored[0].node, "n1");
  EXPECT_EQ(journal_.stored[0].actor, "");
  EXPECT_EQ(console_->Events(0, 10).events.size(), 1u);
}

TEST_F(ConsoleTest, EventsTheJournalRefusedAreNotKeptAndTheReportFails) {
  journal_.fail = true;
  auto d = Report(R("n1", NodeState::kHeld, "license1"),
                            {Ev(EventKind::kClaim, "license1")});
  EXPECT_EQ(d.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(console_->Events(0, 10).events.empty());
  journal_.fail = false;
  ASSERT_TRUE(Report(R("n1", NodeState::kHeld, "license1"),
                               {Ev(EventKind::kClaim, "license1")}).ok());
  EXPECT_EQ(console_->Events(0, 10).events.at(0).seq, 1u);  // no gap from the failed try
}

TEST_F(ConsoleTest, AgentsCannotForgeAdminEventsOrFloodTheLog) {
  EXPECT_EQ(Report(R("n1", NodeState::kHeld), {Ev(EventKind::kAdmin, "")}).status().code(),
            StatusCode::kInvalidArgument);
  std::vector<Event> many(65, Ev(EventKind::kWaitStart, ""));
  EXPECT_EQ(Report(R("n1", NodeState::kWaiting), many).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(journal_.stored.empty());
}

TEST_F(ConsoleTest, CordonIsAnsweredInTheNextReportAndRecordedWithItsActor) {
  ASSERT_TRUE(Report(R("n1", NodeState::kHeld, "license1"), {}).ok());
  ASSERT_TRUE(Cordon("n1", "alice").ok());
  auto d = Report(R("n1", NodeState::kHeld, "license1"), {});
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->cordoned);
  Page p = console_->Events(0, 10);
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].kind, EventKind::kAdmin);
  EXPECT_EQ(p.events[0].detail, "cordon");
  EXPECT_EQ(p.events[0].actor, "alice");
  EXPECT_EQ(journal_.admin.cordoned.at("n1").actor, "alice");
}

TEST_F(ConsoleTest, CordonedNodeThatLetGoIsListedAsCordonedNotWaiting) {
  ASSERT_TRUE(Report(R("n1", NodeState::kHeld, "license1"), {}).ok());
  ASSERT_TRUE(Cordon("n1", "alice").ok());
  ASSERT_TRUE(Report(R("n1", NodeState::kWaiting), {}).ok());
  EXPECT_EQ(console_->Nodes().at(0).state, NodeState::kCordoned);
  ASSERT_TRUE(Uncordon("n1", "alice").ok());
  EXPECT_EQ(console_->Nodes().at(0).state, NodeState::kWaiting);
}

TEST_F(ConsoleTest, AdminActionsOnUnknownOrMalformedNamesAreRefused) {
  EXPECT_EQ(Cordon("nobody", "a").code(), StatusCode::kNotFound);
  EXPECT_EQ(Cordon("bad name", "a").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Disable("license9", "a").code(), StatusCode::kNotFound);
  EXPECT_EQ(Disable("../etc", "a").code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(journal_.stored.empty());
}

TEST_F(ConsoleTest, RepeatingAnActionChangesNothingAndRecordsNothing) {
  ASSERT_TRUE(Disable("license1", "a").ok());
  ASSERT_TRUE(Disable("license1", "b").ok());
  EXPECT_EQ(console_->Events(0, 10).events.size(), 1u);
  EXPECT_EQ(console_->admin().disabled.at("license1").actor, "a");
}

TEST_F(ConsoleTest, DisabledLicensesAreInEveryAgentsDirectives) {
  ASSERT_TRUE(Disable("license2", "ops").ok());
  auto d = Report(R("n9", NodeState::kWaiting), {});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->disabled, std::vector<std::string>{"license2"});
  EXPECT_FALSE(d->cordoned);
}

TEST_F(ConsoleTest, AMarkTheJournalCannotStoreIsNotInForce) {
  ASSERT_TRUE(Report(R("n1", NodeState::kHeld, "license1"), {}).ok());
  journal_.fail = true;
  EXPECT_EQ(Cordon("n1", "alice").code(), StatusCode::kUnavailable);
  journal_.fail = false;
  EXPECT_FALSE(Report(R("n1", NodeState::kHeld, "license1"), {})->cordoned);
}

TEST_F(ConsoleTest, AMarkOutlivesItsNodeAndCanStillBeLifted) {
  ASSERT_TRUE(Report(R("n1", NodeState::kHeld, "license1"), {}).ok());
  ASSERT_TRUE(Cordon("n1", "a").ok());
  clock_.Advance(48h);  // the node is dropped from the table
  EXPECT_TRUE(console_->Nodes().empty());
  EXPECT_TRUE(Uncordon("n1", "a").ok());
}

TEST_F(ConsoleTest, RestoreBringsBackHistoryAndMarks) {
  ASSERT_TRUE(Report(R("n1", NodeState::kHeld, "license1"), {}).ok());
  ASSERT_TRUE(Cordon("n1", "alice").ok());
  auto admin = AdminStateFromJson(ToJson(journal_.admin));
  ASSERT_TRUE(admin.ok()) << admin.status().ToString();

  FakeJournal j2;
  j2.last_seq = 1;
  Console fresh(clock_, {}, j2);
  fresh.Restore(journal_.stored, 1, *admin);
  EXPECT_EQ(fresh.admin().cordoned.at("n1").actor, "alice");
  EXPECT_EQ(fresh.Events(0, 10).events.size(), 1u);
  ASSERT_TRUE(ReportTo(fresh, R("n1", NodeState::kHeld, "license1"),
                       {Ev(EventKind::kRelease, "license1")}).ok());
  EXPECT_EQ(j2.stored.at(0).seq, 2u);
}

TEST(AdminStateJson, RefusesMalformedAndHostileRecords) {
  for (std::string bad : {"", "[]", R"({"cordoned":{}})", R"({"cordoned":[],"disabled":{}})",
                          R"({"cordoned":{"a b":{"actor":"x","at_ms":1}},"disabled":{}})",
                          R"({"cordoned":{"n":{"actor":1,"at_ms":1}},"disabled":{}})",
                          R"({"cordoned":{"n":{"actor":"x"}},"disabled":{}})"}) {
    EXPECT_EQ(AdminStateFromJson(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST_F(ConsoleTest, UsageComesFromTheRecordedHolds) {
  ASSERT_TRUE(Report(R("n1", NodeState::kHeld, "license1"),
                               {Ev(EventKind::kClaim, "license1")}).ok());
  const WallTime start = clock_.WallNow();
  clock_.Advance(90s);
  ASSERT_TRUE(Report(R("n1", NodeState::kReleased),
                               {Ev(EventKind::kRelease, "license1")}).ok());
  Usage u = console_->UsageReport(start - 1h, start + 1h);
  ASSERT_EQ(u.by_node.size(), 1u);
  EXPECT_EQ(u.by_node[0].held, 90s);
}

// A shared store (etcd): done comes later, and what any replica stored arrives through the sink.
class DeferredJournal final : public ConsoleJournal {
 public:
  void AppendEvents(std::vector<Event> events, Done done) override {
    pending.push_back({std::move(events), std::move(done)});
  }
  void SetMark(MarkKind kind, const std::string& name, std::optional<AdminMark> mark,
               Done done) override {
    marks.push_back([=, this, done = std::move(done)] {
      sink_->ApplyMark(kind, name, mark);
      done(Status::Ok());
    });
  }
  // Stores the oldest pending append as seq `first`...
  void StoreNext(uint64_t first) {
    auto [events, done] = std::move(pending.front());
    pending.erase(pending.begin());
    for (Event& e : events) e.seq = first++;
    done(Status::Ok());  // answered before the watch brings the events back
    sink_->ApplyEvents(std::move(events));
  }
  void StoreMarks() {
    for (auto& m : marks) m();
    marks.clear();
  }
  std::vector<std::pair<std::vector<Event>, Done>> pending;
  std::vector<std::function<void()>> marks;
};

TEST(ConsoleOnASharedStore, AnswersOnlyOnceStoredAndShowsOtherReplicasWrites) {
  FakeClock clock;
  DeferredJournal journal;
  Console c(clock, {}, journal);
  Event claim;
  claim.kind = EventKind::kClaim;
  claim.license = "license1";
  std::optional<StatusOr<Directives>> answer;
  c.Report({.node = "n1", .pod = "p", .state = NodeState::kHeld, .license = "license1", .version = ""},
           {claim},
           [&](StatusOr<Directives> d) { answer = std::move(d); });
  EXPECT_FALSE(answer.has_value());  // not acknowledged before it is stored
  // Another replica's event is stored first (seq 1) and arrives through the watch.
  Event other;
  other.seq = 1;
  other.kind = EventKind::kWaitStart;
  other.node = "n2";
  other.time = clock.WallNow();
  c.ApplyEvents({other});
  journal.StoreNext(2);
  ASSERT_TRUE(answer.has_value() && answer->ok());
  EXPECT_EQ((*answer)->acknowledged, 1u);
  Page p = c.Events(0, 10);
  ASSERT_EQ(p.events.size(), 2u);
  EXPECT_EQ(p.events[1].seq, 2u);
  EXPECT_EQ(p.events[1].node, "n1");
  // A cordon made on another replica is in force here once its mark arrives.
  c.ApplyMark(MarkKind::kCordon, "n1", AdminMark{"bob", clock.WallNow()});
  EXPECT_TRUE(c.DirectivesFor("n1").cordoned);
  // An action here answers only after its mark and its event are stored.
  std::optional<Status> done;
  c.Uncordon("n1", "alice", [&](Status s) { done = s; });
  EXPECT_FALSE(done.has_value());
  journal.StoreMarks();
  EXPECT_FALSE(done.has_value());  // its event is still pending
  EXPECT_FALSE(c.DirectivesFor("n1").cordoned);
  journal.StoreNext(3);
  ASSERT_TRUE(done.has_value() && done->ok());
  EXPECT_EQ(c.Events(0, 10).events.back().actor, "alice");
}

}  // namespace
}  // namespace lm::console
