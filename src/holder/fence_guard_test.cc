#include "holder/fence_guard.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "common/real_time.h"

namespace lm::holder {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(FenceGuard, WithdrawsOnceAtTheDeadlineAndRefusesToArmUntilDisarmed) {
  FakeClock clock;
  int withdrawn = 0;
  std::string named;
  FenceGuard guard(clock, [&](const std::string& name) {
    ++withdrawn;
    named = name;
  });
  EXPECT_FALSE(guard.Check());  // not armed: nothing to do
  ASSERT_TRUE(guard.Arm(clock.Now() + seconds(2), "license1"));
  clock.Advance(milliseconds(1999));
  EXPECT_FALSE(guard.Check());
  EXPECT_FALSE(guard.Fired());
  clock.Advance(milliseconds(1));
  EXPECT_TRUE(guard.Check());
  EXPECT_TRUE(guard.Fired());
  EXPECT_EQ(withdrawn, 1);
  EXPECT_EQ(named, "license1");  // for its log line
  clock.Advance(seconds(5));
  EXPECT_FALSE(guard.Check());  // once
  EXPECT_EQ(withdrawn, 1);
  EXPECT_FALSE(guard.Arm(clock.Now() + seconds(2), "license1"));  // a late renewal cannot re-arm it
  guard.Disarm();
  EXPECT_FALSE(guard.Fired());
  EXPECT_TRUE(guard.Arm(clock.Now() + seconds(2), "license1"));
}

TEST(FenceGuard, ARenewalMovesTheDeadline) {
  FakeClock clock;
  int withdrawn = 0;
  FenceGuard guard(clock, [&](const std::string&) { ++withdrawn; });
  guard.Arm(clock.Now() + seconds(2), "license1");
  clock.Advance(seconds(1));
  guard.Arm(clock.Now() + seconds(2), "license1");
  clock.Advance(milliseconds(1500));
  EXPECT_FALSE(guard.Check());
  guard.Disarm();
  clock.Advance(seconds(10));
  EXPECT_FALSE(guard.Check());
  EXPECT_EQ(withdrawn, 0);
}

TEST(FenceGuard, NoInstallAfterTheDeadline) {
  FakeClock clock;
  int withdrawn = 0, installed = 0;
  FenceGuard guard(clock, [&](const std::string&) { ++withdrawn; });
  guard.Arm(clock.Now() + seconds(2), "license1");
  EXPECT_TRUE(guard.UnlessFired([&] { ++installed; }));
  clock.Advance(seconds(3));  // the thread has not run yet: the install fires it first
  EXPECT_FALSE(guard.UnlessFired([&] { ++installed; }));
  EXPECT_EQ(installed, 1);
  EXPECT_EQ(withdrawn, 1);
}

TEST(FenceGuard, ItsThreadWithdrawsWhileTheCallerIsStuck) {
  RealTimeSystem& clock = RealTimeSystem::Get();
  std::atomic<int> withdrawn{0};
  FenceGuard guard(clock, [&](const std::string&) { ++withdrawn; });
  guard.StartThread();
  guard.Arm(clock.Now() + milliseconds(50), "license1");
  // The agent's thread would be blocked in a pool call here; nothing else calls the guard.
  const auto give_up = clock.Now() + seconds(10);
  while (withdrawn == 0 && clock.Now() < give_up) std::this_thread::sleep_for(milliseconds(5));
  EXPECT_EQ(withdrawn, 1);
  EXPECT_TRUE(guard.Fired());
}

TEST(FenceGuard, StopsItsThreadWhenDestroyedWhileArmed) {
  std::atomic<int> withdrawn{0};
  {
    FenceGuard guard(RealTimeSystem::Get(), [&](const std::string&) { ++withdrawn; });
    guard.StartThread();
    guard.Arm(RealTimeSystem::Get().Now() + seconds(3600), "license1");
  }  // joins at once, not in an hour
  EXPECT_EQ(withdrawn, 0);
}

}  // namespace
}  // namespace lm::holder
