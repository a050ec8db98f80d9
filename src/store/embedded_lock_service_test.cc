#include "store/embedded_lock_service.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <deque>

#include "common/clock.h"

namespace lm::store {
namespace {

using std::chrono::seconds;

class EmbeddedLockServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = EmbeddedLockService::Open(io_, clock_, {}, "");
    ASSERT_TRUE(s.ok());
    service_ = std::move(*s);
  }
  void TearDown() override { service_->Shutdown(); }

  std::string Grant(std::string holder, seconds ttl) {
    std::string id;
    service_->Acquire({std::move(holder), ttl, seconds(0), {}}, [&](StatusOr<lock::Grant> g) {
      if (g.ok()) id = g->id;
    });
    return id;
  }
  bool Held() {
    bool held = false;
    service_->GetView([&](StatusOr<lock::View> v) { held = v.ok() && v->held; });
    return held;
  }
  // Runs the event loop (real time) until `done` or `limit` passed; returns how long it took.
  template <typename F>
  std::chrono::milliseconds RunUntil(F done, std::chrono::milliseconds limit) {
    auto start = std::chrono::steady_clock::now();
    while (!done() && std::chrono::steady_clock::now() - start < limit) {
      io_.run_for(std::chrono::milliseconds(10));
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start);
  }

  // Queues a waiter; the flag returned becomes true when it gets the lock. The flag belongs to
  // the fixture: a waiter still queued at the end is answered by Shutdown in TearDown, after
  // the test body's locals are gone.
  const bool* Wait(std::string holder) {
    bool* granted = &flags_.emplace_back(false);
    service_->Acquire({std::move(holder), seconds(10), seconds(30), {}},
                      [granted](StatusOr<lock::Grant> g) { *granted = g.ok(); });
    return granted;
  }

  std::deque<bool> flags_;  // see Wait; a deque keeps their addresses
  boost::asio::io_context io_;
  FakeClock clock_;
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
  clock_.Advance(seconds(5));  // b's lease is due; nothing but the timer can notice
  RunUntil([&] { return *c_granted; }, std::chrono::milliseconds(7000));
  EXPECT_TRUE(*c_granted);
  EXPECT_EQ(service_->CountersSnapshot().expiries, 1u);
}

TEST_F(EmbeddedLockServiceTest, AShorterLeaseAfterALongerOneIsHandedOverWithoutWaitingForTheOldTimer) {
  std::string first = Grant("a", seconds(30));
  service_->Release(first, [](Status) {});
  ASSERT_FALSE(Grant("b", seconds(1)).empty());
  const bool* c_granted = Wait("c");
  clock_.Advance(seconds(1));
  // The timer was armed for 30 s; the 1 s lease must re-arm it earlier.
  RunUntil([&] { return *c_granted; }, std::chrono::milliseconds(5000));
  EXPECT_TRUE(*c_granted);
}

TEST_F(EmbeddedLockServiceTest, ALeaseIsNotEndedBeforeItIsDue) {
  std::string first = Grant("a", seconds(1));
  service_->Release(first, [](Status) {});
  ASSERT_FALSE(Grant("b", seconds(5)).empty());
  const bool* c_granted = Wait("c");
  // The early timer (1 s) fires; b's lease has 5 s left on the fake clock.
  RunUntil([] { return false; }, std::chrono::milliseconds(1200));
  EXPECT_FALSE(*c_granted);
  EXPECT_EQ(service_->CountersSnapshot().expiries, 0u);
}

}  // namespace
}  // namespace lm::store
