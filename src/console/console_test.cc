#include "console/console.h"

#include <gtest/gtest.h>

#include <set>

namespace lm::console {
namespace {

using namespace std::chrono_literals;

class FakeJournal final : public ConsoleJournal {
 public:
  Status AppendEvents(const std::vector<Event>& events) override {
    if (fail) return Unavailable("journal down");
    for (const Event& e : events) stored.push_back(e);
    return Status::Ok();
  }
  Status SaveAdmin(const AdminState& state) override {
    if (fail) return Unavailable("journal down");
    admin_json = ToJson(state);
    return Status::Ok();
  }
  bool fail = false;
  std::vector<Event> stored;
  std::string admin_json;
};

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
  FakeClock clock_;
  FakeJournal journal_;
  std::set<std::string> pool_{"license1", "license2"};
  std::unique_ptr<Console> console_;
};

TEST_F(ConsoleTest, ReportStoresTheAgentsEventsUnderItsOwnNodeName) {
  Event e = Ev(EventKind::kClaim, "license1");
  e.node = "someone-else";
  e.actor = "forged";
  auto d = console_->Report(R("n1", NodeState::kHeld, "license1"), {e});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(journal_.stored.size(), 1u);
  EXPECT_EQ(journal_.stored[0].node, "n1");
  EXPECT_EQ(journal_.stored[0].actor, "");
  EXPECT_EQ(console_->Events(0, 10).events.size(), 1u);
}

TEST_F(ConsoleTest, EventsTheJournalRefusedAreNotKeptAndTheReportFails) {
  journal_.fail = true;
  auto d = console_->Report(R("n1", NodeState::kHeld, "license1"),
                            {Ev(EventKind::kClaim, "license1")});
  EXPECT_EQ(d.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(console_->Events(0, 10).events.empty());
  journal_.fail = false;
  ASSERT_TRUE(console_->Report(R("n1", NodeState::kHeld, "license1"),
                               {Ev(EventKind::kClaim, "license1")}).ok());
  EXPECT_EQ(console_->Events(0, 10).events.at(0).seq, 1u);  // no gap from the failed try
}

TEST_F(ConsoleTest, AgentsCannotForgeAdminEventsOrFloodTheLog) {
  EXPECT_EQ(console_->Report(R("n1", NodeState::kHeld), {Ev(EventKind::kAdmin, "")}).status().code(),
            StatusCode::kInvalidArgument);
  std::vector<Event> many(65, Ev(EventKind::kWaitStart, ""));
  EXPECT_EQ(console_->Report(R("n1", NodeState::kWaiting), many).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(journal_.stored.empty());
}

TEST_F(ConsoleTest, CordonIsAnsweredInTheNextReportAndRecordedWithItsActor) {
  ASSERT_TRUE(console_->Report(R("n1", NodeState::kHeld, "license1"), {}).ok());
  ASSERT_TRUE(console_->Cordon("n1", "alice").ok());
  auto d = console_->Report(R("n1", NodeState::kHeld, "license1"), {});
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->cordoned);
  Page p = console_->Events(0, 10);
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].kind, EventKind::kAdmin);
  EXPECT_EQ(p.events[0].detail, "cordon");
  EXPECT_EQ(p.events[0].actor, "alice");
  EXPECT_NE(journal_.admin_json.find("\"n1\""), std::string::npos);
}

TEST_F(ConsoleTest, CordonedNodeThatLetGoIsListedAsCordonedNotWaiting) {
  ASSERT_TRUE(console_->Report(R("n1", NodeState::kHeld, "license1"), {}).ok());
  ASSERT_TRUE(console_->Cordon("n1", "alice").ok());
  ASSERT_TRUE(console_->Report(R("n1", NodeState::kWaiting), {}).ok());
  EXPECT_EQ(console_->Nodes().at(0).state, NodeState::kCordoned);
  ASSERT_TRUE(console_->Uncordon("n1", "alice").ok());
  EXPECT_EQ(console_->Nodes().at(0).state, NodeState::kWaiting);
}

TEST_F(ConsoleTest, AdminActionsOnUnknownOrMalformedNamesAreRefused) {
  EXPECT_EQ(console_->Cordon("nobody", "a").code(), StatusCode::kNotFound);
  EXPECT_EQ(console_->Cordon("bad name", "a").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(console_->Disable("license9", "a").code(), StatusCode::kNotFound);
  EXPECT_EQ(console_->Disable("../etc", "a").code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(journal_.stored.empty());
}

TEST_F(ConsoleTest, RepeatingAnActionChangesNothingAndRecordsNothing) {
  ASSERT_TRUE(console_->Disable("license1", "a").ok());
  ASSERT_TRUE(console_->Disable("license1", "b").ok());
  EXPECT_EQ(console_->Events(0, 10).events.size(), 1u);
  EXPECT_EQ(console_->admin().disabled.at("license1").actor, "a");
}

TEST_F(ConsoleTest, DisabledLicensesAreInEveryAgentsDirectives) {
  ASSERT_TRUE(console_->Disable("license2", "ops").ok());
  auto d = console_->Report(R("n9", NodeState::kWaiting), {});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->disabled, std::vector<std::string>{"license2"});
  EXPECT_FALSE(d->cordoned);
}

TEST_F(ConsoleTest, AMarkTheJournalCannotStoreIsNotInForce) {
  ASSERT_TRUE(console_->Report(R("n1", NodeState::kHeld, "license1"), {}).ok());
  journal_.fail = true;
  EXPECT_EQ(console_->Cordon("n1", "alice").code(), StatusCode::kUnavailable);
  journal_.fail = false;
  EXPECT_FALSE(console_->Report(R("n1", NodeState::kHeld, "license1"), {})->cordoned);
}

TEST_F(ConsoleTest, AMarkOutlivesItsNodeAndCanStillBeLifted) {
  ASSERT_TRUE(console_->Report(R("n1", NodeState::kHeld, "license1"), {}).ok());
  ASSERT_TRUE(console_->Cordon("n1", "a").ok());
  clock_.Advance(48h);  // the node is dropped from the table
  EXPECT_TRUE(console_->Nodes().empty());
  EXPECT_TRUE(console_->Uncordon("n1", "a").ok());
}

TEST_F(ConsoleTest, RestoreBringsBackHistoryAndMarks) {
  ASSERT_TRUE(console_->Report(R("n1", NodeState::kHeld, "license1"), {}).ok());
  ASSERT_TRUE(console_->Cordon("n1", "alice").ok());
  auto admin = AdminStateFromJson(journal_.admin_json);
  ASSERT_TRUE(admin.ok()) << admin.status().ToString();

  FakeJournal j2;
  Console fresh(clock_, {}, j2);
  fresh.Restore(journal_.stored, 1, *admin);
  EXPECT_EQ(fresh.admin().cordoned.at("n1").actor, "alice");
  EXPECT_EQ(fresh.Events(0, 10).events.size(), 1u);
  ASSERT_TRUE(fresh.Report(R("n1", NodeState::kHeld, "license1"), {Ev(EventKind::kRelease, "license1")}).ok());
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
  ASSERT_TRUE(console_->Report(R("n1", NodeState::kHeld, "license1"),
                               {Ev(EventKind::kClaim, "license1")}).ok());
  const WallTime start = clock_.WallNow();
  clock_.Advance(90s);
  ASSERT_TRUE(console_->Report(R("n1", NodeState::kReleased),
                               {Ev(EventKind::kRelease, "license1")}).ok());
  Usage u = console_->UsageReport(start - 1h, start + 1h);
  ASSERT_EQ(u.by_node.size(), 1u);
  EXPECT_EQ(u.by_node[0].held, 90s);
}

}  // namespace
}  // namespace lm::console
