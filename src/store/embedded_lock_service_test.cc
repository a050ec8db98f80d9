#include "store/embedded_lock_service.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <deque>
#include <filesystem>

#include "common/time_system.h"
#include "store/state_file.h"

namespace lm::store {
namespace {

using std::chrono::seconds;

class EmbeddedLockServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = EmbeddedLockService::Open(io_, time_, {}, "");
    ASSERT_TRUE(s.ok());
    service_ = std::move(*s);
  }
  void TearDown() override { service_->Shutdown(); }

  std::string Grant(std::string holder, seconds ttl) {
    std::string id;
    service_->Acquire({std::move(holder), ttl, seconds(0)}, [&](StatusOr<lock::Grant> g) {
      if (g.ok()) id = g->id;
    });
    return id;
  }
  bool Held() {
    bool held = false;
    service_->GetView([&](StatusOr<lock::View> v) { held = v.ok() && v->held; });
    return held;
  }
  // Moves simulated time forward by `d`, running every timer that falls due (no real waiting).
  void Run(std::chrono::milliseconds d) { time_.AdvanceAndRun(d, io_); }

  // Queues a waiter; the flag returned becomes true when it gets the lock. The flag belongs to
  // the fixture: a waiter still queued at the end is answered by Shutdown in TearDown, after
  // the test body's locals are gone.
  const bool* Wait(std::string holder) {
    bool* granted = &flags_.emplace_back(false);
    service_->Acquire({std::move(holder), seconds(10), seconds(30)},
                      [granted](StatusOr<lock::Grant> g) { *granted = g.ok(); });
    return granted;
  }

  std::deque<bool> flags_;  // see Wait; a deque keeps their addresses
  boost::asio::io_context io_;
  SimulatedTimeSystem time_;
  std::unique_ptr<EmbeddedLockService> service_;
};

// The expiry timer is left armed for an earlier lease after its release. When it fires early
// for a later lease, the later lease must still be ended, and handed to a waiter, once due,
// with no request arriving to notice it.
TEST_F(EmbeddedLockServiceTest, ATimerArmedForAnEarlierLeaseStillHandsTheNextOneOver) {
  std::string first = Grant("a", seconds(1));
  ASSERT_FALSE(first.empty());
  bool released = false;
  service_->Release(first, [&](Status s) { released = s.ok(); });
  ASSERT_TRUE(released);
  ASSERT_FALSE(Grant("b", seconds(5)).empty());
  const bool* c_granted = Wait("c");
  // The timer fires at 1 s for a's lease and finds nothing due; b's lease is due at 5 s and
  // nothing but the timer can notice.
  Run(std::chrono::milliseconds(4990));
  EXPECT_FALSE(*c_granted);
  Run(std::chrono::milliseconds(20));
  EXPECT_TRUE(*c_granted);
  EXPECT_EQ(service_->CountersSnapshot().expiries, 1u);
}

TEST_F(EmbeddedLockServiceTest, AShorterLeaseAfterALongerOneIsHandedOverWithoutWaitingForTheOldTimer) {
  std::string first = Grant("a", seconds(30));
  service_->Release(first, [](Status) {});
  ASSERT_FALSE(Grant("b", seconds(1)).empty());
  const bool* c_granted = Wait("c");
  // The timer was armed for 30 s; the 1 s lease must re-arm it earlier.
  Run(std::chrono::milliseconds(1010));
  EXPECT_TRUE(*c_granted);
}

TEST_F(EmbeddedLockServiceTest, ExpiriesAreToldToTheObserverButReleasesAreNot) {
  std::vector<lock::ExpiredLease> seen;
  service_->OnLeaseExpired([&](const lock::ExpiredLease& e) { seen.push_back(e); });
  service_->Release(Grant("a", seconds(1)), [](Status) {});
  uint64_t token = 0;
  service_->Acquire({"b", seconds(2), seconds(0)}, [&](StatusOr<lock::Grant> g) {
    if (g.ok()) token = g->token;
  });
  Run(std::chrono::milliseconds(1990));
  EXPECT_TRUE(seen.empty());
  Run(std::chrono::milliseconds(20));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].holder, "b");
  EXPECT_EQ(seen[0].token, token);
  EXPECT_EQ(seen[0].ttl, seconds(2));
}

TEST_F(EmbeddedLockServiceTest, ALeaseIsNotEndedBeforeItIsDue) {
  std::string first = Grant("a", seconds(1));
  service_->Release(first, [](Status) {});
  ASSERT_FALSE(Grant("b", seconds(5)).empty());
  const bool* c_granted = Wait("c");
  // The early timer (1 s) fires; b's lease has 4 s left then.
  Run(std::chrono::milliseconds(1200));
  EXPECT_FALSE(*c_granted);
  EXPECT_EQ(service_->CountersSnapshot().expiries, 0u);
}

// Releases are written to the state file in batches, by a flush timer 50 ms later (on the
// TimeSystem, so this runs on simulated time).
TEST(EmbeddedLockServiceFlush, AReleaseReachesTheStateFileWhenTheFlushTimerFires) {
  char tmpl[] = "/tmp/embedded_flush.XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string file = dir + "/tokenmgr.state";
  boost::asio::io_context io;
  SimulatedTimeSystem time;
  auto s = EmbeddedLockService::Open(io, time, {}, file);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::string id;
  (*s)->Acquire({"h", seconds(10), seconds(0)}, [&](StatusOr<lock::Grant> g) {
    if (g.ok()) id = g->id;
  });
  ASSERT_FALSE(id.empty());
  EXPECT_TRUE(StateFile(file).Load()->lease);  // a grant is written before it is answered
  (*s)->Release(id, [](Status) {});
  time.AdvanceAndRun(std::chrono::milliseconds(49), io);
  EXPECT_TRUE(StateFile(file).Load()->lease);  // not yet: batched
  time.AdvanceAndRun(std::chrono::milliseconds(1), io);
  EXPECT_FALSE(StateFile(file).Load()->lease);
  (*s)->Shutdown();
  std::filesystem::remove_all(dir);
}

// The documented recovery from a corrupt state file is "move it aside and restart": the next
// token must still be above every token handed out before, or a paused former holder's late
// write (with its higher token) would win over the new holder's.
class EmbeddedLockServiceFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/embedded_test.XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  uint64_t GrantToken(const std::string& file) {
    auto s = EmbeddedLockService::Open(io_, time_, {}, file);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (!s.ok()) return 0;
    uint64_t token = 0;
    std::string id;
    (*s)->Acquire({"h", seconds(10), seconds(0)}, [&](StatusOr<lock::Grant> g) {
      if (g.ok()) token = g->token, id = g->id;
    });
    (*s)->Release(id, [](Status) {});
    (*s)->Shutdown();
    return token;
  }
  std::string dir_;
  boost::asio::io_context io_;
  SimulatedTimeSystem time_;
};

TEST_F(EmbeddedLockServiceFileTest, ADeletedStateFileStartsAboveEveryEarlierToken) {
  const std::string file = dir_ + "/tokenmgr.state";
  uint64_t before = 0;
  for (int i = 0; i < 5; ++i) before = GrantToken(file);
  time_.Advance(seconds(1));  // a restart takes at least this long
  std::filesystem::remove(file);
  EXPECT_GT(GrantToken(file), before);
}

TEST_F(EmbeddedLockServiceFileTest, AnOldBackupOfTheStateFileStartsAboveEveryEarlierToken) {
  const std::string file = dir_ + "/tokenmgr.state";
  GrantToken(file);
  std::filesystem::copy_file(file, dir_ + "/backup");
  uint64_t before = 0;
  for (int i = 0; i < 5; ++i) before = GrantToken(file);
  time_.Advance(seconds(1));
  std::filesystem::copy_file(dir_ + "/backup", file,
                             std::filesystem::copy_options::overwrite_existing);
  EXPECT_GT(GrantToken(file), before);
}

TEST_F(EmbeddedLockServiceFileTest, MemoryOnlyStartsAboveTheLastRunsTokens) {
  uint64_t before = GrantToken("");
  time_.Advance(std::chrono::milliseconds(1));
  EXPECT_GT(GrantToken(""), before);
}

TEST_F(EmbeddedLockServiceFileTest, TheOldDefaultFileIsReadWhenTheNewOneDoesNotExist) {
  const std::string legacy = dir_ + "/state.json";
  const std::string file = dir_ + "/tokenmgr.state";
  EXPECT_EQ(LegacyStatePath(file), legacy);
  EXPECT_EQ(LegacyStatePath(legacy), "");
  lock::LockState old;
  old.last_token = lock::ClockTokenFloor(time_.WallNow()) + 1000;  // written by a later clock
  ASSERT_TRUE(StateFile(legacy).Save(old).ok());
  EXPECT_EQ(GrantToken(file), old.last_token + 1);
  EXPECT_TRUE(std::filesystem::exists(file));
  EXPECT_FALSE(std::filesystem::exists(legacy));
  EXPECT_TRUE(std::filesystem::exists(legacy + ".migrated"));
}

}  // namespace
}  // namespace lm::store
