#include "store/etcd_maintenance.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <string>
#include <vector>

#include "store/etcd_gateway_api.h"
#include "store/testing/fake_etcd.h"

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

TEST(EtcdAlarms, AlarmNameIsTheWordAfterAlarmColon) {
  EXPECT_EQ(AlarmName("memberID:3319814642761637952 alarm:NOSPACE "), "NOSPACE");
  EXPECT_EQ(AlarmName("alarm:CORRUPT"), "CORRUPT");
  EXPECT_EQ(AlarmName("etcdserver: no leader"), std::nullopt);
  EXPECT_EQ(AlarmName("alarm: NOSPACE"), std::nullopt);  // no name right after the colon
  EXPECT_EQ(AlarmName(""), std::nullopt);
}

// On a fake etcd whose revision grows as the test writes; time is simulated.
class EtcdMaintenanceTest : public ::testing::Test {
 protected:
  EtcdMaintenance Make(bool compact) {
    return EtcdMaintenance(time_, *api_, {.compact = compact, .compact_interval = seconds(60)});
  }
  // Polls once a second for `n` seconds while etcd's revision grows by `per_second`.
  void Run(EtcdMaintenance& m, int n, int per_second = 10) {
    for (int i = 0; i < n; ++i) {
      m.Poll();
      io_.poll();
      io_.restart();
      time_.Advance(seconds(1));
      for (int w = 0; w < per_second; ++w) etcd_.Put("/k", "v");
    }
  }
  void PollOnce(EtcdMaintenance& m) {
    m.Poll();
    io_.poll();
    io_.restart();
  }
  bool Has(const EtcdMaintenance& m, const std::string& line) {
    return m.RenderMetrics().find(line) != std::string::npos;
  }

  SimulatedTimeSystem time_;
  boost::asio::io_context io_;
  FakeEtcd etcd_{time_, io_.get_executor()};
  std::unique_ptr<FakeEtcdClient> api_ = etcd_.NewClient();
  const int64_t start_ = etcd_.revision();
};

TEST_F(EtcdMaintenanceTest, CompactsOnceAnIntervalToTheRevisionOfAnIntervalAgo) {
  EtcdMaintenance m = Make(true);
  Run(m, 60);
  EXPECT_EQ(etcd_.compactions(), 0);  // nothing is an interval old before the first interval
  Run(m, 1);
  ASSERT_EQ(etcd_.compactions(), 1);
  EXPECT_EQ(etcd_.compacted(), start_);  // the revision seen at t=0
  Run(m, 59);
  EXPECT_EQ(etcd_.compactions(), 1);
  Run(m, 1);
  ASSERT_EQ(etcd_.compactions(), 2);
  EXPECT_EQ(etcd_.compacted(), start_ + 60 * 10);  // seen at t=60, one interval before t=120
  EXPECT_TRUE(Has(m, "tokenmgr_etcd_compactions_total{result=\"ok\"} 2\n"));
  EXPECT_TRUE(Has(m, "tokenmgr_etcd_compacted_revision " + std::to_string(start_ + 600) + "\n"));
}

TEST_F(EtcdMaintenanceTest, StartPollsOnTheTimeSystemUntilStopped) {
  EtcdMaintenance m = Make(false);
  m.Start(io_);
  time_.AdvanceAndRun(seconds(10), io_);
  EXPECT_EQ(etcd_.status_calls(), 11);  // at once, then every second
  m.Stop();
  time_.AdvanceAndRun(seconds(10), io_);
  EXPECT_EQ(etcd_.status_calls(), 11);
  EXPECT_EQ(time_.armed_timers(), 0u);
}

TEST_F(EtcdMaintenanceTest, MetricsTextIsUnchanged) {
  EtcdMaintenance m = Make(true);
  etcd_.SetAlarm("NOSPACE", true);
  PollOnce(m);
  EXPECT_EQ(m.RenderMetrics(),
            "# HELP tokenmgr_store_alarm 1 while etcd has this alarm raised (nospace: out of "
            "quota, writes refused)\n"
            "# TYPE tokenmgr_store_alarm gauge\n"
            "tokenmgr_store_alarm{alarm=\"nospace\"} 1\n"
            "tokenmgr_store_alarm{alarm=\"corrupt\"} 0\n"
            "# HELP tokenmgr_etcd_db_size_bytes etcd's database size on the member tokenmgr talks "
            "to\n"
            "# TYPE tokenmgr_etcd_db_size_bytes gauge\n"
            "tokenmgr_etcd_db_size_bytes 4096\n"
            "# HELP tokenmgr_etcd_db_size_in_use_bytes the part of it in use (the rest is freed by "
            "compaction and reused, or returned by defragmentation)\n"
            "# TYPE tokenmgr_etcd_db_size_in_use_bytes gauge\n"
            "tokenmgr_etcd_db_size_in_use_bytes 2048\n"
            "# HELP tokenmgr_etcd_compactions_total etcd compactions made by this replica "
            "(ETCD_COMPACT=auto)\n"
            "# TYPE tokenmgr_etcd_compactions_total counter\n"
            "tokenmgr_etcd_compactions_total{result=\"ok\"} 0\n"
            "tokenmgr_etcd_compactions_total{result=\"error\"} 0\n"
            "# HELP tokenmgr_etcd_compacted_revision the revision etcd's history starts at, as far "
            "as this replica knows\n"
            "# TYPE tokenmgr_etcd_compacted_revision gauge\n"
            "tokenmgr_etcd_compacted_revision 0\n");
}

TEST_F(EtcdMaintenanceTest, OffNeverCompacts) {
  EtcdMaintenance m = Make(false);
  Run(m, 600);
  EXPECT_EQ(etcd_.compactions(), 0);
}

TEST_F(EtcdMaintenanceTest, AnIdleEtcdIsNotCompactedAgain) {
  EtcdMaintenance m = Make(true);
  Run(m, 61, /*per_second=*/0);
  EXPECT_EQ(etcd_.compactions(), 1);
  Run(m, 600, 0);  // same revision all along: nothing new to compact
  EXPECT_EQ(etcd_.compactions(), 1);
}

TEST_F(EtcdMaintenanceTest, CompactedBySomeoneElseIsNotAFailure) {
  EtcdMaintenance m = Make(true);
  Run(m, 60);
  ASSERT_TRUE(etcd_.Compact(start_ + 100).ok());  // someone else went further
  Run(m, 1);
  EXPECT_EQ(etcd_.compactions(), 1);  // ours was refused: "has been compacted"
  EXPECT_TRUE(Has(m, "{result=\"error\"} 0\n"));
  EXPECT_TRUE(Has(m, "tokenmgr_etcd_compacted_revision " + std::to_string(start_) + "\n"));
}

TEST_F(EtcdMaintenanceTest, AFailedCompactionIsRetriedAnIntervalLater) {
  etcd_.FailCompactions(Unavailable("etcd 127.0.0.1:2379: read: timeout"));
  EtcdMaintenance m = Make(true);
  Run(m, 61);
  EXPECT_TRUE(Has(m, "{result=\"error\"} 1\n"));
  Run(m, 59);
  EXPECT_TRUE(Has(m, "{result=\"error\"} 1\n"));  // not every second
  etcd_.FailCompactions(Status::Ok());
  Run(m, 1);
  EXPECT_EQ(etcd_.compactions(), 1);
}

TEST_F(EtcdMaintenanceTest, NoSpaceAlarmIsReportedAndClearedByItself) {
  EtcdMaintenance m = Make(true);
  PollOnce(m);
  EXPECT_FALSE(m.nospace());
  EXPECT_NE(m.RenderMetrics().find("tokenmgr_store_alarm{alarm=\"nospace\"} 0\n"),
            std::string::npos);
  etcd_.SetAlarm("NOSPACE", true);
  PollOnce(m);
  EXPECT_TRUE(m.nospace());
  EXPECT_NE(m.RenderMetrics().find("tokenmgr_store_alarm{alarm=\"nospace\"} 1\n"),
            std::string::npos);
  etcd_.SetUnavailable(true);  // etcd unreachable: the last known state stays
  PollOnce(m);
  EXPECT_TRUE(m.nospace());
  etcd_.SetUnavailable(false);
  etcd_.SetAlarm("NOSPACE", false);  // `etcdctl alarm disarm`
  PollOnce(m);
  EXPECT_FALSE(m.nospace());
}

TEST_F(EtcdMaintenanceTest, OnNoSpaceRunsOnceWhenTheAlarmIsRaised) {
  EtcdMaintenance m = Make(true);
  int calls = 0;
  m.OnNoSpace([&] { ++calls; });
  PollOnce(m);
  EXPECT_EQ(calls, 0);
  etcd_.SetAlarm("NOSPACE", true);
  PollOnce(m);
  PollOnce(m);
  EXPECT_EQ(calls, 1);
  etcd_.SetAlarm("NOSPACE", false);
  PollOnce(m);
  etcd_.SetAlarm("NOSPACE", true);
  PollOnce(m);
  EXPECT_EQ(calls, 2);
}

TEST_F(EtcdMaintenanceTest, ReportsTheDatabaseSize) {
  EtcdMaintenance m = Make(false);
  PollOnce(m);
  EXPECT_NE(m.RenderMetrics().find("tokenmgr_etcd_db_size_bytes 4096\n"), std::string::npos);
  EXPECT_NE(m.RenderMetrics().find("tokenmgr_etcd_db_size_in_use_bytes 2048\n"), std::string::npos);
}

}  // namespace
}  // namespace lm::store
