#include "lock/lock_table.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace lm::lock {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class LockTableTest : public ::testing::Test {
 protected:
  LockTable Make(LockState restored = {}, LockTable::Persist persist = nullptr) {
    return LockTable(clock_, options_, std::move(restored), std::move(persist),
                     [this] { return "id-" + std::to_string(++ids_); });
  }
  // Acquire and capture the result, if it arrives.
  struct Result {
    std::optional<StatusOr<Grant>> value;
  };
  uint64_t Acquire(LockTable& t, Result& r, std::string holder, int ttl_s, int wait_s) {
    return t.Acquire(std::move(holder), seconds(ttl_s), seconds(wait_s),
                     [&r](StatusOr<Grant> g) { r.value = std::move(g); });
  }
  FakeClock clock_;
  Options options_;
  int ids_ = 0;
};

TEST_F(LockTableTest, GrantsFreeLockImmediately) {
  LockTable t = Make();
  Result r;
  EXPECT_EQ(Acquire(t, r, "a", 10, 0), 0u);
  ASSERT_TRUE(r.value && r.value->ok());
  EXPECT_EQ((*r.value)->id, "id-1");
  EXPECT_EQ((*r.value)->token, 1u);
  EXPECT_EQ((*r.value)->ttl, seconds(10));
  EXPECT_EQ((*r.value)->expires_in, milliseconds(10000));
}

TEST_F(LockTableTest, BusyWithZeroWaitFailsAtOnceNamingHolder) {
  LockTable t = Make();
  Result a, b;
  Acquire(t, a, "node-a", 10, 0);
  clock_.Advance(seconds(3));
  Acquire(t, b, "node-b", 10, 0);
  ASSERT_TRUE(b.value.has_value());
  EXPECT_EQ(b.value->status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(b.value->status().message().find("node-a"), std::string::npos);
  EXPECT_NE(b.value->status().message().find("7000 ms"), std::string::npos);
}

TEST_F(LockTableTest, ReleaseHandsToWaitersInArrivalOrder) {
  LockTable t = Make();
  Result a, b, c, d;
  Acquire(t, a, "a", 10, 0);
  Acquire(t, b, "b", 10, 30);
  Acquire(t, c, "c", 10, 30);
  Acquire(t, d, "d", 10, 30);
  EXPECT_FALSE(b.value || c.value || d.value);
  ASSERT_TRUE(t.Release((*a.value)->id).ok());
  ASSERT_TRUE(b.value && b.value->ok());
  EXPECT_FALSE(c.value.has_value());
  ASSERT_TRUE(t.Release((*b.value)->id).ok());
  ASSERT_TRUE(c.value && c.value->ok());
  EXPECT_FALSE(d.value.has_value());
  EXPECT_LT((*b.value)->token, (*c.value)->token);
}

TEST_F(LockTableTest, WrongIdNeverReleases) {
  LockTable t = Make();
  Result a;
  Acquire(t, a, "a", 10, 0);
  Status s = t.Release("not-the-id");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_TRUE(t.Snapshot().held);
  EXPECT_EQ(t.Release("").code(), StatusCode::kNotFound);
  EXPECT_TRUE(t.Snapshot().held);
}

TEST_F(LockTableTest, DoubleReleaseIsNotFound) {
  LockTable t = Make();
  Result a;
  Acquire(t, a, "a", 10, 0);
  EXPECT_TRUE(t.Release((*a.value)->id).ok());
  EXPECT_EQ(t.Release((*a.value)->id).code(), StatusCode::kNotFound);
}

// The seed's bug: A releases early, B takes the lock, A's old timer fires and frees B's lock.
TEST_F(LockTableTest, ExpiredLeaseIsNotReleasedByOldTimer) {
  LockTable t = Make();
  Result a, b, c;
  Acquire(t, a, "a", 3, 0);
  ASSERT_TRUE(t.Release((*a.value)->id).ok());
  clock_.Advance(seconds(1));
  Acquire(t, b, "b", 3, 0);
  ASSERT_TRUE(b.value->ok());
  clock_.Advance(seconds(2) + milliseconds(500));  // A's 3 s would have ended here
  t.Tick();
  View v = t.Snapshot();
  EXPECT_TRUE(v.held);
  EXPECT_EQ(v.holder, "b");
  Acquire(t, c, "c", 3, 0);
  EXPECT_FALSE(c.value->ok());
  // B's own expiry ends B's lease.
  clock_.Advance(milliseconds(500));
  t.Tick();
  EXPECT_FALSE(t.Snapshot().held);
}

// The seed's bug: a waiter that gave up still swallowed the next grant.
TEST_F(LockTableTest, AbandonedWaiterIsNeverGranted) {
  LockTable t = Make();
  Result a, b, c;
  Acquire(t, a, "a", 10, 0);
  uint64_t wb = Acquire(t, b, "b", 10, 30);
  Acquire(t, c, "c", 10, 30);
  t.Cancel(wb);
  ASSERT_TRUE(t.Release((*a.value)->id).ok());
  EXPECT_FALSE(b.value.has_value());
  ASSERT_TRUE(c.value && c.value->ok());
  EXPECT_EQ(t.Snapshot().holder, "c");
  EXPECT_EQ(t.counters().wait_cancels, 1u);
}

TEST_F(LockTableTest, TimedOutWaiterGetsConflictAndLeavesQueue) {
  LockTable t = Make();
  Result a, b;
  Acquire(t, a, "a", 60, 0);
  Acquire(t, b, "b", 10, 5);
  clock_.Advance(seconds(5));
  t.Tick();
  ASSERT_TRUE(b.value.has_value());
  EXPECT_EQ(b.value->status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(b.value->status().message().find("timeout reached"), std::string::npos);
  EXPECT_EQ(t.Snapshot().waiters, 0u);
  ASSERT_TRUE(t.Release((*a.value)->id).ok());
  EXPECT_FALSE(t.Snapshot().held);
}

TEST_F(LockTableTest, LateTickStillHonoursEventOrder) {
  LockTable t = Make();
  Result a, b, c;
  Acquire(t, a, "a", 10, 0);
  Acquire(t, b, "b", 10, 3);   // gives up at t=3, before the lease ends at t=10
  Acquire(t, c, "c", 10, 20);  // still waiting when the lease ends
  clock_.Advance(seconds(15));  // one late tick covers both events
  t.Tick();
  ASSERT_TRUE(b.value.has_value());
  EXPECT_FALSE(b.value->ok());
  ASSERT_TRUE(c.value && c.value->ok());
}

TEST_F(LockTableTest, LeaseExpiresAndNextWaiterGetsIt) {
  LockTable t = Make();
  Result a, b;
  Acquire(t, a, "a", 2, 0);
  Acquire(t, b, "b", 2, 10);
  EXPECT_EQ(t.NextWakeup(), clock_.Now() + seconds(2));
  clock_.Advance(seconds(2));
  t.Tick();
  ASSERT_TRUE(b.value && b.value->ok());
  EXPECT_EQ(t.counters().expiries, 1u);
  EXPECT_EQ(t.Release((*a.value)->id).code(), StatusCode::kNotFound);
}

TEST_F(LockTableTest, ExpiryIsCheckedEvenWithoutTick) {
  LockTable t = Make();
  Result a, b;
  Acquire(t, a, "a", 2, 0);
  clock_.Advance(seconds(2));
  EXPECT_EQ(t.Release((*a.value)->id).code(), StatusCode::kNotFound);
  Acquire(t, b, "b", 2, 0);
  EXPECT_TRUE(b.value->ok());
}

TEST_F(LockTableTest, RenewExtendsLease) {
  LockTable t = Make();
  Result a;
  Acquire(t, a, "a", 5, 0);
  clock_.Advance(seconds(4));
  auto r = t.Renew((*a.value)->id, seconds(5));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->token, (*a.value)->token);
  clock_.Advance(seconds(4));
  t.Tick();
  EXPECT_TRUE(t.Snapshot().held);
  EXPECT_EQ(t.Snapshot().expires_in, milliseconds(1000));
}

TEST_F(LockTableTest, RenewAfterExpiryIsNotFound) {
  LockTable t = Make();
  Result a;
  Acquire(t, a, "a", 5, 0);
  clock_.Advance(seconds(5));
  EXPECT_EQ(t.Renew((*a.value)->id, seconds(5)).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(t.Renew("other", seconds(5)).status().code(), StatusCode::kNotFound);
}

TEST_F(LockTableTest, TokensStrictlyIncrease) {
  LockTable t = Make();
  uint64_t last = 0;
  for (int i = 0; i < 100; ++i) {
    Result r;
    Acquire(t, r, "a", 1, 0);
    ASSERT_TRUE(r.value->ok());
    EXPECT_GT((*r.value)->token, last);
    last = (*r.value)->token;
    if (i % 2) {
      ASSERT_TRUE(t.Release((*r.value)->id).ok());
    } else {
      clock_.Advance(seconds(1));
    }
  }
}

TEST_F(LockTableTest, RestoredLeaseKeepsHolderTokenAndRemainingTime) {
  LockState s;
  s.last_token = 41;
  s.lease = PersistedLease{"the-id", "node-9", 41, 10, UnixMillis(clock_.WallNow()) - 4000,
                           UnixMillis(clock_.WallNow()) + 6000};
  LockTable t = Make(s);
  View v = t.Snapshot();
  EXPECT_TRUE(v.held);
  EXPECT_EQ(v.holder, "node-9");
  EXPECT_EQ(v.token, 41u);
  EXPECT_EQ(v.expires_in, milliseconds(6000));
  EXPECT_TRUE(t.Release("the-id").ok());
  Result r;
  Acquire(t, r, "b", 10, 0);
  EXPECT_EQ((*r.value)->token, 42u);
}

TEST_F(LockTableTest, RestoredLeaseNeverOutlivesItsTtl) {
  LockState s;
  s.last_token = 5;
  s.lease = PersistedLease{"x", "n", 5, 10, 0, UnixMillis(clock_.WallNow()) + 3600 * 1000};
  LockTable t = Make(s);
  EXPECT_EQ(t.Snapshot().expires_in, milliseconds(10000));
}

TEST_F(LockTableTest, RestoredExpiredLeaseIsDroppedButTokenKept) {
  LockState s;
  s.last_token = 7;
  s.lease = PersistedLease{"x", "n", 7, 10, 0, UnixMillis(clock_.WallNow()) - 1};
  LockTable t = Make(s);
  EXPECT_FALSE(t.Snapshot().held);
  Result r;
  Acquire(t, r, "b", 10, 0);
  EXPECT_EQ((*r.value)->token, 8u);
}

TEST_F(LockTableTest, PersistSeesEveryChange) {
  std::vector<LockState> saved;
  LockTable t = Make({}, [&](const LockState& s) {
    saved.push_back(s);
    return Status::Ok();
  });
  Result a;
  Acquire(t, a, "a", 10, 0);
  ASSERT_EQ(saved.size(), 1u);
  EXPECT_EQ(saved.back().last_token, 1u);
  ASSERT_TRUE(saved.back().lease.has_value());
  EXPECT_EQ(saved.back().lease->id, (*a.value)->id);
  ASSERT_TRUE(t.Renew((*a.value)->id, seconds(20)).ok());
  EXPECT_EQ(saved.size(), 2u);
  EXPECT_EQ(saved.back().lease->ttl_s, 20);
  ASSERT_TRUE(t.Release((*a.value)->id).ok());
  EXPECT_EQ(saved.size(), 2u);  // releases are written lazily
  EXPECT_TRUE(t.dirty());
  ASSERT_TRUE(t.Flush().ok());
  EXPECT_EQ(saved.size(), 3u);
  EXPECT_FALSE(saved.back().lease.has_value());
  EXPECT_EQ(saved.back().last_token, 1u);
  EXPECT_FALSE(t.dirty());
  ASSERT_TRUE(t.Flush().ok());
  EXPECT_EQ(saved.size(), 3u);  // nothing new to write
}

TEST_F(LockTableTest, ExpiryMarksDirtyAndNextGrantWritesEverything) {
  std::vector<LockState> saved;
  LockTable t = Make({}, [&](const LockState& s) {
    saved.push_back(s);
    return Status::Ok();
  });
  Result a, b;
  Acquire(t, a, "a", 2, 0);
  clock_.Advance(seconds(2));
  t.Tick();
  EXPECT_TRUE(t.dirty());
  Acquire(t, b, "b", 2, 0);
  EXPECT_FALSE(t.dirty());
  ASSERT_EQ(saved.size(), 2u);
  EXPECT_EQ(saved.back().lease->holder, "b");
  EXPECT_EQ(saved.back().last_token, 2u);
}

TEST_F(LockTableTest, GrantIsRefusedWhenItCannotBePersisted) {
  bool fail = true;
  LockTable t = Make({}, [&](const LockState&) {
    return fail ? Unavailable("disk full") : Status::Ok();
  });
  Result a, b;
  Acquire(t, a, "a", 10, 0);
  ASSERT_TRUE(a.value.has_value());
  EXPECT_EQ(a.value->status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(t.Snapshot().held);
  fail = false;
  Acquire(t, b, "b", 10, 0);
  ASSERT_TRUE(b.value->ok());
  EXPECT_EQ((*b.value)->token, 1u);
}

TEST_F(LockTableTest, RenewIsRefusedWhenItCannotBePersisted) {
  bool fail = false;
  LockTable t = Make({}, [&](const LockState&) {
    return fail ? Unavailable("disk full") : Status::Ok();
  });
  Result a;
  Acquire(t, a, "a", 10, 0);
  fail = true;
  clock_.Advance(seconds(5));
  EXPECT_EQ(t.Renew((*a.value)->id, seconds(60)).status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(t.Snapshot().expires_in, milliseconds(5000));
}

TEST_F(LockTableTest, QueueIsBounded) {
  options_.max_waiters = 2;
  LockTable t = Make();
  Result a, b, c, d;
  Acquire(t, a, "a", 10, 0);
  Acquire(t, b, "b", 10, 10);
  Acquire(t, c, "c", 10, 10);
  Acquire(t, d, "d", 10, 10);
  ASSERT_TRUE(d.value.has_value());
  EXPECT_EQ(d.value->status().code(), StatusCode::kResourceExhausted);
}

TEST_F(LockTableTest, FailAllWaitersAnswersEveryone) {
  LockTable t = Make();
  Result a, b, c;
  Acquire(t, a, "a", 10, 0);
  Acquire(t, b, "b", 10, 10);
  Acquire(t, c, "c", 10, 10);
  t.FailAllWaiters(Unavailable("shutting down"));
  EXPECT_EQ(b.value->status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(c.value->status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(t.Snapshot().waiters, 0u);
}

TEST_F(LockTableTest, CallbackMayReenterTable) {
  LockTable t = Make();
  Result a;
  std::optional<StatusOr<Grant>> b;
  Acquire(t, a, "a", 10, 0);
  t.Acquire("b", seconds(10), seconds(10), [&](StatusOr<Grant> g) {
    b = g;
    ASSERT_TRUE(g.ok());
    EXPECT_TRUE(t.Release(g->id).ok());  // releases from inside the completion
  });
  ASSERT_TRUE(t.Release((*a.value)->id).ok());
  ASSERT_TRUE(b.has_value());
  EXPECT_FALSE(t.Snapshot().held);
}

TEST_F(LockTableTest, WaitHistogramObservesGrantedWaits) {
  LockTable t = Make();
  Result a, b;
  Acquire(t, a, "a", 10, 0);
  Acquire(t, b, "b", 10, 10);
  clock_.Advance(seconds(3));
  ASSERT_TRUE(t.Release((*a.value)->id).ok());
  EXPECT_EQ(t.counters().wait_seconds.count(), 1u);
  EXPECT_DOUBLE_EQ(t.counters().wait_seconds.sum(), 3.0);
}

TEST_F(LockTableTest, AnExpiryIsLoggedWithTheHolderAndToken) {
  std::ostringstream out;
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "capture", std::make_shared<spdlog::sinks::ostream_sink_st>(out)));
  LockTable t = Make();
  Result r;
  Acquire(t, r, "node-9", 10, 0);
  clock_.Advance(seconds(10));
  t.Tick();
  spdlog::set_default_logger(previous);
  EXPECT_NE(out.str().find("lease of 'node-9' (token 1, ttl 10 s) expired"), std::string::npos)
      << out.str();
}

TEST_F(LockTableTest, TheNextTokenIsAtLeastTheFloorAndAboveTheRestoredOne) {
  LockTable low = Make({.last_token = 5, .token_floor = 1000});
  Result r;
  Acquire(low, r, "a", 10, 0);
  ASSERT_TRUE(r.value && r.value->ok());
  EXPECT_EQ((*r.value)->token, 1000u);
  EXPECT_EQ(low.Snapshot().last_token, 1000u);
  LockTable high = Make({.last_token = 2000, .token_floor = 1000});
  Result r2;
  Acquire(high, r2, "a", 10, 0);
  EXPECT_EQ((*r2.value)->token, 2001u);
}

}  // namespace
}  // namespace lm::lock
