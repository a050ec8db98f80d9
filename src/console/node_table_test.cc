#include "console/node_table.h"

#include <gtest/gtest.h>

namespace lm::console {
namespace {

using namespace std::chrono_literals;

class NodeTableTest : public ::testing::Test {
 protected:
  NodeReport R(std::string node, NodeState s, std::string license = "") {
    return {.node = node, .pod = "pod-" + node, .state = s, .license = std::move(license),
            .version = "1.0.0"};
  }
  FakeClock clock_;
  NodeTable nodes_{clock_, {.gone_after = 60s, .retention = 3600s, .max_nodes = 3}};
};

TEST_F(NodeTableTest, AReportedNodeIsListedWithItsState) {
  ASSERT_TRUE(nodes_.Report(R("n1", NodeState::kHeld, "license1")).ok());
  auto rows = nodes_.List();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].state, NodeState::kHeld);
  EXPECT_EQ(rows[0].license, "license1");
  EXPECT_EQ(rows[0].pod, "pod-n1");
}

TEST_F(NodeTableTest, WaitingNodesComeFirstLongestWaitFirst) {
  ASSERT_TRUE(nodes_.Report(R("a", NodeState::kHeld, "l1")).ok());
  ASSERT_TRUE(nodes_.Report(R("z", NodeState::kWaiting)).ok());
  clock_.Advance(5s);
  ASSERT_TRUE(nodes_.Report(R("m", NodeState::kWaiting)).ok());
  auto rows = nodes_.List();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].node, "z");
  EXPECT_EQ(rows[1].node, "m");
  EXPECT_EQ(rows[2].node, "a");
}

TEST_F(NodeTableTest, RepeatingAStateKeepsItsSince) {
  ASSERT_TRUE(nodes_.Report(R("n1", NodeState::kWaiting)).ok());
  const WallTime since = nodes_.List()[0].since;
  clock_.Advance(30s);
  ASSERT_TRUE(nodes_.Report(R("n1", NodeState::kWaiting)).ok());
  EXPECT_EQ(nodes_.List()[0].since, since);
  EXPECT_EQ(nodes_.List()[0].last_seen - since, 30s);
  clock_.Advance(1s);
  ASSERT_TRUE(nodes_.Report(R("n1", NodeState::kHeld, "l1")).ok());
  EXPECT_EQ(nodes_.List()[0].since - since, 31s);
}

TEST_F(NodeTableTest, SilentNodeIsGoneAfterTheTtlAndDroppedAfterRetention) {
  ASSERT_TRUE(nodes_.Report(R("n1", NodeState::kHeld, "l1")).ok());
  clock_.Advance(59s);
  EXPECT_EQ(nodes_.List()[0].state, NodeState::kHeld);
  clock_.Advance(1s);
  auto row = nodes_.Get("n1");
  ASSERT_TRUE(row);
  EXPECT_EQ(row->state, NodeState::kGone);
  EXPECT_EQ(row->last_reported, NodeState::kHeld);
  clock_.Advance(3600s);
  EXPECT_TRUE(nodes_.List().empty());
}

TEST_F(NodeTableTest, EachNodeIsDroppedExactlyARetentionAfterItWasLastSeen) {
  // Expire skips its scan until the oldest `seen` can have expired; a node that reported again
  // meanwhile must outlive the scan that drops the silent one, and go a retention after its
  // own last report, not later.
  ASSERT_TRUE(nodes_.Report(R("a", NodeState::kHeld, "l1")).ok());
  ASSERT_TRUE(nodes_.Report(R("b", NodeState::kHeld, "l2")).ok());
  clock_.Advance(1800s);
  ASSERT_TRUE(nodes_.Report(R("a", NodeState::kHeld, "l1")).ok());
  clock_.Advance(1799s);
  EXPECT_EQ(nodes_.List().size(), 2u);
  clock_.Advance(1s);  // b: a retention since its only report
  auto rows = nodes_.List();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].node, "a");
  clock_.Advance(1799s);
  EXPECT_TRUE(nodes_.Get("a").has_value());
  clock_.Advance(1s);
  EXPECT_FALSE(nodes_.Get("a").has_value());
  EXPECT_EQ(nodes_.size(), 0u);
  // A new node after the table emptied is kept and dropped on its own time.
  ASSERT_TRUE(nodes_.Report(R("c", NodeState::kWaiting)).ok());
  clock_.Advance(3599s);
  EXPECT_TRUE(nodes_.Get("c").has_value());
  clock_.Advance(1s);
  EXPECT_FALSE(nodes_.Get("c").has_value());
}

TEST_F(NodeTableTest, GoneIsDecidedOnTheMonotonicClockNotTheWallClock) {
  ASSERT_TRUE(nodes_.Report(R("n1", NodeState::kHeld, "l1")).ok());
  clock_.StepWall(24h);
  EXPECT_EQ(nodes_.List()[0].state, NodeState::kHeld);
}

TEST_F(NodeTableTest, RefusesHostileNamesAndGoneReports) {
  EXPECT_EQ(nodes_.Report(R("<script>", NodeState::kHeld)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(nodes_.Report(R("n1", NodeState::kHeld, "l\n1")).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(nodes_.Report(R("n1", NodeState::kGone)).code(), StatusCode::kInvalidArgument);
  NodeReport r = R("n1", NodeState::kHeld);
  r.version = std::string(100, 'v');
  EXPECT_EQ(nodes_.Report(r).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(nodes_.size(), 0u);
}

TEST_F(NodeTableTest, NewNodesBeyondTheBoundAreRefusedKnownOnesStillReport) {
  for (auto n : {"a", "b", "c"}) ASSERT_TRUE(nodes_.Report(R(n, NodeState::kWaiting)).ok());
  EXPECT_EQ(nodes_.Report(R("d", NodeState::kWaiting)).code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(nodes_.Report(R("a", NodeState::kHeld, "l1")).ok());
}

TEST(NodeStates, NamesRoundTrip) {
  for (NodeState s : {NodeState::kHeld, NodeState::kWaiting, NodeState::kCordoned,
                      NodeState::kReleased, NodeState::kDegraded, NodeState::kGone}) {
    EXPECT_EQ(ParseNodeState(NodeStateName(s)), s);
  }
  EXPECT_FALSE(ParseNodeState("HELD"));
}

}  // namespace
}  // namespace lm::console

namespace lm::console {
namespace {

TEST(NodeTableMerge, AnotherReplicasNewerRowIsTakenAndAgesFromItsLastSeen) {
  using namespace std::chrono_literals;
  FakeClock clock;
  NodeTable nodes(clock, {.gone_after = 60s, .retention = 3600s});
  NodeRow row;
  row.node = "n1";
  row.pod = "pod-n1";
  row.license = "license1";
  row.last_reported = NodeState::kHeld;
  row.since = clock.WallNow() - 300s;
  row.last_seen = clock.WallNow() - 50s;  // heard by the other replica 50 s ago
  ASSERT_TRUE(nodes.Merge(row).ok());
  auto got = nodes.Get("n1");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->state, NodeState::kHeld);
  EXPECT_EQ(got->since, row.since);
  // An older row changes nothing.
  NodeRow older = row;
  older.last_reported = NodeState::kWaiting;
  older.last_seen -= 1s;
  ASSERT_TRUE(nodes.Merge(older).ok());
  EXPECT_EQ(nodes.Get("n1")->state, NodeState::kHeld);
  clock.Advance(10s);  // 60 s since the other replica heard from it
  EXPECT_EQ(nodes.Get("n1")->state, NodeState::kGone);
}

TEST(NodeTableMerge, AMergedRowOlderThanEveryLocalReportIsDroppedOnItsOwnTime) {
  using namespace std::chrono_literals;
  FakeClock clock;
  NodeTable nodes(clock, {.gone_after = 60s, .retention = 3600s});
  ASSERT_TRUE(nodes.Report({.node = "local", .pod = "p", .state = NodeState::kHeld}).ok());
  NodeRow row;
  row.node = "n1";
  row.pod = "pod-n1";
  row.last_reported = NodeState::kHeld;
  row.since = clock.WallNow() - 3000s;
  row.last_seen = clock.WallNow() - 3000s;  // 600 s of its retention left
  ASSERT_TRUE(nodes.Merge(row).ok());
  clock.Advance(599s);
  EXPECT_TRUE(nodes.Get("n1").has_value());
  clock.Advance(1s);
  EXPECT_FALSE(nodes.Get("n1").has_value());
  EXPECT_TRUE(nodes.Get("local").has_value());
}

}  // namespace
}  // namespace lm::console
