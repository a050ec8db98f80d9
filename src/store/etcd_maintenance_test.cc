#include "store/etcd_maintenance.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lm::store {
namespace {

using json = nlohmann::json;
using std::chrono::seconds;

TEST(CompactionSchedule, TargetIsTheNewestRevisionAtLeastTheRetentionOld) {
  FakeClock clock;
  CompactionSchedule s(seconds(60));
  SteadyTime t0 = clock.Now();
  s.Sample(t0, 100);
  s.Sample(t0 + seconds(30), 200);
  s.Sample(t0 + seconds(59), 300);
  EXPECT_EQ(s.Target(t0 + seconds(59)), std::nullopt);  // nothing is a minute old yet
  EXPECT_EQ(s.Target(t0 + seconds(60)), 100);
  EXPECT_EQ(s.Target(t0 + seconds(89)), 100);
  EXPECT_EQ(s.Target(t0 + seconds(90)), 200);
  EXPECT_EQ(s.Target(t0 + seconds(600)), 300);
}

TEST(CompactionSchedule, NeverTargetsWhatIsCompactedAlready) {
  FakeClock clock;
  CompactionSchedule s(seconds(10));
  SteadyTime t0 = clock.Now();
  s.Sample(t0, 100);
  s.Compacted(150);  // someone else went further
  EXPECT_EQ(s.Target(t0 + seconds(20)), std::nullopt);
  s.Sample(t0 + seconds(20), 160);
  EXPECT_EQ(s.Target(t0 + seconds(30)), 160);
  s.Compacted(120);  // never moves back
  EXPECT_EQ(s.compacted(), 150);
}

TEST(CompactionSchedule, OldSamplesAreDropped) {
  FakeClock clock;
  CompactionSchedule s(seconds(10));
  SteadyTime t0 = clock.Now();
  for (int i = 0; i < 1000; ++i) s.Sample(t0 + seconds(i), 1000 + i);
  // Only the last one at least 10 s old can be a target; older ones are gone.
  EXPECT_EQ(s.Target(t0 + seconds(999)), 1989);
  EXPECT_EQ(s.Target(t0 + seconds(5000)), 1999);
}

TEST(EtcdAlarms, ReadsAlarmNamesFromStatusErrors) {
  json st = json::parse(R"({"errors":["memberID:3319814642761637952 alarm:NOSPACE ",
                                      "etcdserver: no leader", "memberID:2 alarm:CORRUPT"]})");
  EXPECT_EQ(AlarmsFromStatus(st), (std::set<std::string>{"NOSPACE", "CORRUPT"}));
  EXPECT_TRUE(AlarmsFromStatus(json::object()).empty());
  EXPECT_TRUE(AlarmsFromStatus(json{{"errors", "alarm:NOSPACE"}}).empty());  // not a list
}

// A fake etcd: answers status with the current revision and alarms; records compactions.
class EtcdMaintenanceTest : public ::testing::Test {
 protected:
  EtcdMaintenance Make(bool compact) {
    return EtcdMaintenance(
        clock_,
        [this](std::string path, json body, EtcdMaintenance::JsonDone done) {
          if (path == "/v3/maintenance/status") {
            if (down_) return done(Unavailable("etcd 127.0.0.1:1: connect: refused"));
            json st = {{"header", {{"revision", std::to_string(revision_)}}},
                       {"dbSize", "4096"},
                       {"dbSizeInUse", "2048"}};
            if (nospace_) st["errors"] = {"memberID:1 alarm:NOSPACE "};
            return done(st);
          }
          ASSERT_EQ(path, "/v3/kv/compaction");
          compactions_.push_back(std::stoll(body["revision"].get<std::string>()));
          done(compact_answer_);
        },
        {.compact = compact, .compact_interval = seconds(60)});
  }
  // Polls once a second for `n` seconds while etcd's revision grows by `per_second`.
  void Run(EtcdMaintenance& m, int n, int per_second = 10) {
    for (int i = 0; i < n; ++i) {
      m.Poll();
      clock_.Advance(seconds(1));
      revision_ += per_second;
    }
  }

  FakeClock clock_;
  int64_t revision_ = 1000;
  bool nospace_ = false, down_ = false;
  StatusOr<json> compact_answer_ = json::object();
  std::vector<int64_t> compactions_;
};

TEST_F(EtcdMaintenanceTest, CompactsOnceAnIntervalToTheRevisionOfAnIntervalAgo) {
  EtcdMaintenance m = Make(true);
  Run(m, 60);
  EXPECT_TRUE(compactions_.empty());  // nothing is an interval old before the first interval
  Run(m, 1);
  ASSERT_EQ(compactions_, std::vector<int64_t>{1000});  // the revision seen at t=0
  Run(m, 59);
  EXPECT_EQ(compactions_.size(), 1u);
  Run(m, 1);
  ASSERT_EQ(compactions_.size(), 2u);
  EXPECT_EQ(compactions_[1], 1000 + 60 * 10);  // seen at t=60, one interval before t=120
  EXPECT_NE(m.RenderMetrics().find("tokenmgr_etcd_compactions_total{result=\"ok\"} 2\n"),
            std::string::npos);
  EXPECT_NE(m.RenderMetrics().find("tokenmgr_etcd_compacted_revision 1600\n"), std::string::npos);
}

TEST_F(EtcdMaintenanceTest, OffNeverCompacts) {
  EtcdMaintenance m = Make(false);
  Run(m, 600);
  EXPECT_TRUE(compactions_.empty());
}

TEST_F(EtcdMaintenanceTest, AnIdleEtcdIsNotCompactedAgain) {
  EtcdMaintenance m = Make(true);
  Run(m, 61, /*per_second=*/0);
  EXPECT_EQ(compactions_.size(), 1u);
  Run(m, 600, 0);  // same revision all along: nothing new to compact
  EXPECT_EQ(compactions_.size(), 1u);
}

TEST_F(EtcdMaintenanceTest, CompactedBySomeoneElseIsNotAFailure) {
  compact_answer_ = Unavailable(
      "etcd 127.0.0.1:2379 answered 400: etcdserver: mvcc: required revision has been compacted");
  EtcdMaintenance m = Make(true);
  Run(m, 61);
  ASSERT_EQ(compactions_.size(), 1u);
  EXPECT_NE(m.RenderMetrics().find("{result=\"error\"} 0\n"), std::string::npos);
  EXPECT_NE(m.RenderMetrics().find("tokenmgr_etcd_compacted_revision 1000\n"), std::string::npos);
}

TEST_F(EtcdMaintenanceTest, AFailedCompactionIsRetriedAnIntervalLater) {
  compact_answer_ = Unavailable("etcd 127.0.0.1:2379: read: timeout");
  EtcdMaintenance m = Make(true);
  Run(m, 61);
  EXPECT_EQ(compactions_.size(), 1u);
  EXPECT_NE(m.RenderMetrics().find("{result=\"error\"} 1\n"), std::string::npos);
  Run(m, 59);
  EXPECT_EQ(compactions_.size(), 1u);  // not every second
  compact_answer_ = json::object();
  Run(m, 1);
  EXPECT_EQ(compactions_.size(), 2u);
}

TEST_F(EtcdMaintenanceTest, NoSpaceAlarmIsReportedAndClearedByItself) {
  EtcdMaintenance m = Make(true);
  m.Poll();
  EXPECT_FALSE(m.nospace());
  EXPECT_NE(m.RenderMetrics().find("tokenmgr_store_alarm{alarm=\"nospace\"} 0\n"),
            std::string::npos);
  nospace_ = true;
  m.Poll();
  EXPECT_TRUE(m.nospace());
  EXPECT_NE(m.RenderMetrics().find("tokenmgr_store_alarm{alarm=\"nospace\"} 1\n"),
            std::string::npos);
  down_ = true;  // etcd unreachable: the last known state stays
  m.Poll();
  EXPECT_TRUE(m.nospace());
  down_ = false;
  nospace_ = false;  // `etcdctl alarm disarm`
  m.Poll();
  EXPECT_FALSE(m.nospace());
}

TEST_F(EtcdMaintenanceTest, OnNoSpaceRunsOnceWhenTheAlarmIsRaised) {
  EtcdMaintenance m = Make(true);
  int calls = 0;
  m.OnNoSpace([&] { ++calls; });
  m.Poll();
  EXPECT_EQ(calls, 0);
  nospace_ = true;
  m.Poll();
  m.Poll();
  EXPECT_EQ(calls, 1);
  nospace_ = false;
  m.Poll();
  nospace_ = true;
  m.Poll();
  EXPECT_EQ(calls, 2);
}

TEST_F(EtcdMaintenanceTest, ReportsTheDatabaseSize) {
  EtcdMaintenance m = Make(false);
  m.Poll();
  EXPECT_NE(m.RenderMetrics().find("tokenmgr_etcd_db_size_bytes 4096\n"), std::string::npos);
  EXPECT_NE(m.RenderMetrics().find("tokenmgr_etcd_db_size_in_use_bytes 2048\n"), std::string::npos);
}

}  // namespace
}  // namespace lm::store
