#include "common/time_system.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <vector>

#include "common/real_time.h"

namespace lm {
namespace {

using namespace std::chrono_literals;

class SimulatedTimeSystemTest : public ::testing::Test {
 protected:
  boost::asio::io_context io_;
  SimulatedTimeSystem time_;
};

TEST_F(SimulatedTimeSystemTest, TimerFiresWhenTimeReachesItsDeadline) {
  int fired = 0;
  auto t = time_.CreateTimer(io_.get_executor(), [&] { ++fired; });
  t->Arm(5s);
  time_.AdvanceAndRun(4999ms, io_);
  EXPECT_EQ(fired, 0);
  EXPECT_TRUE(t->armed());
  time_.AdvanceAndRun(1ms, io_);
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(t->armed());
}

TEST_F(SimulatedTimeSystemTest, CallbackSeesTheClockAtItsDeadline) {
  const SteadyTime start = time_.Now();
  SteadyTime seen;
  auto t = time_.CreateTimer(io_.get_executor(), [&] { seen = time_.Now(); });
  t->Arm(3s);
  time_.AdvanceAndRun(10s, io_);
  EXPECT_EQ(seen - start, 3s);
  EXPECT_EQ(time_.Now() - start, 10s);
}

TEST_F(SimulatedTimeSystemTest, TimersFireInDeadlineOrderThenArmingOrder) {
  std::vector<int> order;
  auto a = time_.CreateTimer(io_.get_executor(), [&] { order.push_back(1); });
  auto b = time_.CreateTimer(io_.get_executor(), [&] { order.push_back(2); });
  auto c = time_.CreateTimer(io_.get_executor(), [&] { order.push_back(3); });
  a->Arm(2s);
  b->Arm(1s);
  c->Arm(2s);
  time_.AdvanceAndRun(2s, io_);
  EXPECT_EQ(order, (std::vector<int>{2, 1, 3}));
}

TEST_F(SimulatedTimeSystemTest, PeriodicTimerFiresEveryPeriodWithinOneAdvance) {
  int fired = 0;
  TimerPtr t;
  t = time_.CreateTimer(io_.get_executor(), [&] {
    ++fired;
    t->Arm(1s);
  });
  t->Arm(1s);
  time_.AdvanceAndRun(10s, io_);
  EXPECT_EQ(fired, 10);
}

TEST_F(SimulatedTimeSystemTest, DisarmedTimerNeverFires) {
  int fired = 0;
  auto t = time_.CreateTimer(io_.get_executor(), [&] { ++fired; });
  t->Arm(1s);
  t->Disarm();
  time_.AdvanceAndRun(5s, io_);
  EXPECT_EQ(fired, 0);
  EXPECT_EQ(time_.armed_timers(), 0u);
}

TEST_F(SimulatedTimeSystemTest, DisarmAfterDueButBeforeRunDropsTheCallback) {
  int fired = 0;
  auto t = time_.CreateTimer(io_.get_executor(), [&] { ++fired; });
  t->Arm(1s);
  time_.Advance(2s);  // posted, not yet run
  t->Disarm();
  io_.poll();
  EXPECT_EQ(fired, 0);
}

TEST_F(SimulatedTimeSystemTest, RearmReplacesTheDeadline) {
  int fired = 0;
  auto t = time_.CreateTimer(io_.get_executor(), [&] { ++fired; });
  t->Arm(1s);
  t->Arm(5s);
  time_.AdvanceAndRun(4s, io_);
  EXPECT_EQ(fired, 0);
  time_.AdvanceAndRun(1s, io_);
  EXPECT_EQ(fired, 1);
}

TEST_F(SimulatedTimeSystemTest, DestroyedTimerNeverFires) {
  int fired = 0;
  auto t = time_.CreateTimer(io_.get_executor(), [&] { ++fired; });
  t->Arm(1s);
  time_.Advance(1s);
  t.reset();
  io_.poll();
  EXPECT_EQ(fired, 0);
}

TEST_F(SimulatedTimeSystemTest, ZeroOrNegativeDelayFiresOnTheNextRunNotInsideArm) {
  int fired = 0;
  auto t = time_.CreateTimer(io_.get_executor(), [&] { ++fired; });
  t->Arm(-1s);
  EXPECT_EQ(fired, 0);
  time_.AdvanceAndRun(0s, io_);
  EXPECT_EQ(fired, 1);
}

TEST_F(SimulatedTimeSystemTest, NextDeadlineIsTheEarliestArmedTimer) {
  auto a = time_.CreateTimer(io_.get_executor(), [] {});
  auto b = time_.CreateTimer(io_.get_executor(), [] {});
  EXPECT_FALSE(time_.NextDeadline());
  a->Arm(7s);
  b->Arm(3s);
  EXPECT_EQ(*time_.NextDeadline() - time_.Now(), 3s);
}

TEST_F(SimulatedTimeSystemTest, StepWallMovesOnlyTheWallClock) {
  const SteadyTime steady = time_.Now();
  const WallTime wall = time_.WallNow();
  time_.StepWall(-1h);
  EXPECT_EQ(time_.Now(), steady);
  EXPECT_EQ(time_.WallNow() - wall, -1h);
}

// The real implementation, once: a short timer fires, a disarmed one does not.
TEST(RealTimeSystemTest, TimerFiresAndDisarmedTimerDoesNot) {
  boost::asio::io_context io;
  auto& time = RealTimeSystem::Get();
  int fired = 0, disarmed_fired = 0;
  auto t = time.CreateTimer(io.get_executor(), [&] { ++fired; });
  auto d = time.CreateTimer(io.get_executor(), [&] { ++disarmed_fired; });
  d->Arm(1ms);
  d->Disarm();
  t->Arm(2ms);
  io.run_for(5s);  // returns when no work is left: the fired timer was the last
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(disarmed_fired, 0);
}

TEST(RealSleeperTest, StopEndsEveryLaterSleepAtOnce) {
  RealSleeper s;
  s.Stop();
  EXPECT_FALSE(s.SleepFor(std::chrono::hours(1)));
  EXPECT_TRUE(s.stopped());
}

}  // namespace
}  // namespace lm
