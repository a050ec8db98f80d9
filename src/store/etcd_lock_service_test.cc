// The etcd lock algorithm on FakeEtcd with simulated time: no etcd binary, no real waiting.
// Several replicas share one FakeEtcd, as tokenmgr replicas share one etcd.
#include "store/etcd_lock_service.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "common/time_system.h"
#include "lock/lock_state.h"
#include "store/etcd_client.h"
#include "store/testing/fake_etcd.h"

namespace lm::store {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// The answer of one call, once it came.
template <typename T>
struct Answer {
  bool done = false;
  T value = Internal("not answered");
};
using GrantAnswer = std::shared_ptr<Answer<StatusOr<lock::Grant>>>;

class EtcdLockServiceTest : public ::testing::Test {
 protected:
  struct Replica {
    FakeEtcdClient* client = nullptr;  // owned by `service`
    std::unique_ptr<EtcdLockService> service;
    EtcdLockService* operator->() { return service.get(); }
  };

  void TearDown() override {
    for (Replica& r : replicas_) r->Shutdown();
    Run(milliseconds(0));
    cancels_.clear();
    replicas_.clear();
  }

  // A replica on the shared fake etcd, in sync (Ready) when it returns. Owned by the fixture.
  Replica& Open(const std::string& name = "replica") {
    auto client = etcd_.NewClient(name);
    Replica& r = replicas_.emplace_back();
    r.client = client.get();
    auto s = EtcdLockService::Create(io_, time_, {}, Options(), std::move(client));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    r.service = std::move(*s);
    Run(milliseconds(0));
    EXPECT_TRUE(r->Ready()) << r->NotReadyReason();
    return r;
  }
  static EtcdStoreOptions Options() {
    EtcdStoreOptions o;
    o.prefix = "/t/";
    o.maintenance.compact = false;
    return o;
  }
  // Moves simulated time forward, running every callback and timer that falls due.
  void Run(milliseconds d) { time_.AdvanceAndRun(d, io_); }

  // `n` requests on `r` that wait (holders w0, w1, ...), queued once this returns.
  std::vector<GrantAnswer> QueueWaiters(Replica& r, int n) {
    std::vector<GrantAnswer> waiting;
    for (int i = 0; i < n; ++i) {
      waiting.push_back(Acquire(r, "w" + std::to_string(i), seconds(10), seconds(30)));
    }
    Run(milliseconds(10));
    return waiting;
  }
  GrantAnswer Acquire(Replica& r, const std::string& holder, seconds ttl = seconds(10),
                      seconds wait = seconds(0)) {
    auto a = std::make_shared<Answer<StatusOr<lock::Grant>>>();
    cancels_.push_back(r->Acquire({holder, ttl, wait}, [a](StatusOr<lock::Grant> g) {
      a->done = true;
      a->value = std::move(g);
    }));
    Run(milliseconds(0));
    return a;
  }
  lock::Grant MustGrant(Replica& r, const std::string& holder, seconds ttl = seconds(10)) {
    GrantAnswer a = Acquire(r, holder, ttl);
    EXPECT_TRUE(a->done && a->value.ok()) << a->value.status().ToString();
    return a->value.ok() ? *a->value : lock::Grant{};
  }
  Status Release(Replica& r, const std::string& id) {
    Status out = Internal("not answered");
    r->Release(id, [&](Status s) { out = s; });
    Run(milliseconds(0));
    return out;
  }
  StatusOr<lock::Grant> Renew(Replica& r, const std::string& id, seconds ttl) {
    StatusOr<lock::Grant> out = Internal("not answered");
    r->Renew(id, ttl, [&](StatusOr<lock::Grant> g) { out = std::move(g); });
    Run(milliseconds(0));
    return out;
  }
  lock::View View(Replica& r) {
    lock::View v;
    r->GetView([&](StatusOr<lock::View> got) {
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      v = *got;
    });
    return v;
  }
  // b holds the lock; a waiter on a, then one on b, are queued behind it.
  std::tuple<lock::Grant, GrantAnswer, GrantAnswer> HeldWithWaitersOnAThenB(Replica& a,
                                                                            Replica& b) {
    lock::Grant g = MustGrant(b, "node-1", seconds(30));
    GrantAnswer first = Acquire(a, "node-2", seconds(10), seconds(60));
    Run(milliseconds(10));
    GrantAnswer second = Acquire(b, "node-3", seconds(10), seconds(60));
    Run(milliseconds(10));
    EXPECT_EQ(WaiterKeys().size(), 2u);
    return {g, first, second};
  }
  // b's waiter queues before a's; a holds the lock and releases it: b's waiter gets it first.
  // With `a_blind`, a's watch is silent meanwhile, so a's mirror does not show b's waiter and
  // only etcd's compare keeps a from handing the lock to its own, younger, waiter.
  void ServedInArrivalOrder(Replica& a, Replica& b, bool a_blind) {
    lock::Grant held = MustGrant(a, "holder");
    a.client->SilenceWatch(a_blind);
    GrantAnswer first = Acquire(b, "first", seconds(10), seconds(60));
    Run(milliseconds(10));
    GrantAnswer second = Acquire(a, "second", seconds(10), seconds(60));
    Run(milliseconds(10));
    ASSERT_EQ(WaiterKeys().size(), 2u);
    ASSERT_TRUE(Release(a, held.id).ok());
    Run(milliseconds(10));
    ASSERT_TRUE(first->done);
    EXPECT_TRUE(first->value.ok()) << first->value.status().ToString();
    EXPECT_FALSE(second->done);
    a.client->SilenceWatch(false);
    ASSERT_TRUE(Release(b, first->value->id).ok());
    Run(milliseconds(10));
    ASSERT_TRUE(second->done);
    ASSERT_TRUE(second->value.ok()) << second->value.status().ToString();
    EXPECT_GT(second->value->token, first->value->token);
  }
  std::vector<KeyValue> Grants() { return etcd_.List("/t/lock/", PrefixEnd("/t/lock/")); }
  std::vector<KeyValue> WaiterKeys() {
    return etcd_.List(std::string("/t/waiters/") + '\x02', PrefixEnd("/t/waiters/"));
  }
  uint64_t Epoch() {
    auto kv = etcd_.Get("/t/epoch");
    return kv ? std::stoull(kv->value) : 0;
  }

  SimulatedTimeSystem time_;
  boost::asio::io_context io_;
  FakeEtcd etcd_{time_, io_.get_executor()};
  std::deque<Replica> replicas_;  // references stay valid as replicas are added
  std::vector<lock::LockService::CancelFn> cancels_;
};

// ---- grants -------------------------------------------------------------------------------

TEST_F(EtcdLockServiceTest, AFreeLockIsGrantedWithTheEpochPlusTheGrantKeysCreateRevision) {
  Replica& a = Open();
  lock::Grant g = MustGrant(a, "node-1");
  std::vector<KeyValue> grants = Grants();
  ASSERT_EQ(grants.size(), 1u);
  EXPECT_EQ(g.token, Epoch() + static_cast<uint64_t>(grants[0].create_revision));
  EXPECT_NE(grants[0].lease, 0);
  EXPECT_TRUE(etcd_.Get("/t/waiters/"));  // the fence for tokenmgr before grant keys
  lock::View v = View(a);
  EXPECT_TRUE(v.held);
  EXPECT_EQ(v.holder, "node-1");
  EXPECT_EQ(v.token, g.token);
}

TEST_F(EtcdLockServiceTest, AHeldLockAnswersBusyToARequestThatDoesNotWait) {
  Replica& a = Open();
  MustGrant(a, "node-1");
  GrantAnswer b = Acquire(a, "node-2");
  ASSERT_TRUE(b->done);
  EXPECT_EQ(b->value.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(b->value.status().message().find("held by 'node-1'"), std::string::npos);
  EXPECT_EQ(a->CountersSnapshot().rejected_busy, 1u);
}

TEST_F(EtcdLockServiceTest, AReleaseHandsTheLockToALocalWaiterInOneTxn) {
  Replica& a = Open();
  lock::Grant first = MustGrant(a, "node-1");
  GrantAnswer next = Acquire(a, "node-2", seconds(10), seconds(30));
  Run(milliseconds(10));  // the waiter key is written (batched)
  ASSERT_FALSE(next->done);
  ASSERT_EQ(WaiterKeys().size(), 1u);
  const int txns = etcd_.txns();
  ASSERT_TRUE(Release(a, first.id).ok());
  EXPECT_EQ(etcd_.txns() - txns, 1);  // release + grant to the waiter: one raft write
  ASSERT_TRUE(next->done);
  ASSERT_TRUE(next->value.ok()) << next->value.status().ToString();
  EXPECT_GT(next->value->token, first.token);
  EXPECT_TRUE(WaiterKeys().empty());
  EXPECT_EQ(Grants().size(), 1u);
}

TEST_F(EtcdLockServiceTest, GrantsMoveBetweenTwoKeyNamesAndTokensStillGrow) {
  // etcd's index keeps deleted keys until compaction, and every grant's range compare walks
  // them: a grant key per grant would make each grant slower until the next compaction.
  Replica& a = Open();
  lock::Grant first = MustGrant(a, "node-1");
  ASSERT_EQ(Grants().size(), 1u);
  EXPECT_EQ(Grants()[0].key, "/t/lock/a");
  GrantAnswer next = Acquire(a, "node-2", seconds(10), seconds(30));
  Run(milliseconds(10));
  ASSERT_TRUE(Release(a, first.id).ok());  // handed off in the same txn
  ASSERT_TRUE(next->done && next->value.ok()) << next->value.status().ToString();
  ASSERT_EQ(Grants().size(), 1u);
  EXPECT_EQ(Grants()[0].key, "/t/lock/b");
  EXPECT_GT(next->value->token, first.token);
  ASSERT_TRUE(Release(a, next->value->id).ok());
  lock::Grant third = MustGrant(a, "node-3");
  ASSERT_EQ(Grants().size(), 1u);
  EXPECT_EQ(Grants()[0].key, "/t/lock/a");
  EXPECT_GT(third.token, next->value->token);
}

TEST_F(EtcdLockServiceTest, AHandoffNeverOverwritesAKeyAtTheNextGrantsName) {
  Replica& a = Open();
  lock::Grant first = MustGrant(a, "node-1");
  GrantAnswer next = Acquire(a, "node-2", seconds(10), seconds(30));
  Run(milliseconds(10));
  etcd_.Put("/t/lock/b", "not ours");  // e.g. written by hand: it blocks grants
  Run(milliseconds(10));
  ASSERT_TRUE(Release(a, first.id).ok());
  Run(milliseconds(10));
  ASSERT_TRUE(etcd_.Get("/t/lock/b"));
  EXPECT_EQ(etcd_.Get("/t/lock/b")->value, "not ours");
  EXPECT_FALSE(next->done);  // blocked by the foreign record until it is deleted
  etcd_.Delete("/t/lock/b");
  Run(milliseconds(10));
  ASSERT_TRUE(next->done && next->value.ok()) << next->value.status().ToString();
  EXPECT_GT(next->value->token, first.token);
}

TEST_F(EtcdLockServiceTest, AWaiterQueuedWhileAReleaseIsInFlightIsWrittenByTheNextRelease) {
  // Under contention every handoff is one raft write: the waiter that comes back while a
  // release txn is in flight (as a client does after its release) rides on the next release.
  Replica& a = Open();
  lock::Grant first = MustGrant(a, "node-1");
  GrantAnswer second = Acquire(a, "node-2", seconds(10), seconds(30));
  GrantAnswer third = Acquire(a, "node-3", seconds(10), seconds(30));
  Run(milliseconds(10));
  ASSERT_EQ(WaiterKeys().size(), 2u);
  // etcd answers slowly (a loaded member): the release txn stays in flight for 20 ms.
  a.client->SetAnswerDelay(milliseconds(20));
  const int txns = etcd_.txns();
  Status released = Internal("not answered");
  a->Release(first.id, [&](Status s) { released = s; });
  GrantAnswer fourth = Acquire(a, "node-4", seconds(10), seconds(30));
  Run(milliseconds(10));  // past kEnqueueBatch: node-4's key waits for the next release
  EXPECT_EQ(etcd_.txns() - txns, 1);
  a.client->SetAnswerDelay(milliseconds(0));
  Run(milliseconds(10));  // the release is answered (20 ms after it was sent)
  ASSERT_TRUE(released.ok()) << released.ToString();
  ASSERT_TRUE(second->done && second->value.ok()) << second->value.status().ToString();
  // The new holder releases at once: one txn hands the lock to node-3 and writes node-4's key.
  ASSERT_TRUE(Release(a, second->value->id).ok());
  EXPECT_EQ(etcd_.txns() - txns, 2);
  ASSERT_TRUE(third->done && third->value.ok()) << third->value.status().ToString();
  EXPECT_EQ(WaiterKeys().size(), 1u);
  ASSERT_TRUE(Release(a, third->value->id).ok());
  ASSERT_TRUE(fourth->done && fourth->value.ok()) << fourth->value.status().ToString();
  EXPECT_EQ(etcd_.txns() - txns, 3);
}

TEST_F(EtcdLockServiceTest, AWaiterQueuedWhileAReleaseIsInFlightIsWrittenSoonAfterItsAnswer) {
  Replica& a = Open();
  lock::Grant first = MustGrant(a, "node-1");
  GrantAnswer second = Acquire(a, "node-2", seconds(10), seconds(30));
  Run(milliseconds(10));
  a.client->SetAnswerDelay(milliseconds(20));
  a->Release(first.id, [](Status) {});
  GrantAnswer third = Acquire(a, "node-3", seconds(10), seconds(30));
  Run(milliseconds(10));
  a.client->SetAnswerDelay(milliseconds(0));
  Run(milliseconds(10));  // answered; node-2 holds and does not release
  ASSERT_TRUE(second->done && second->value.ok());
  Run(milliseconds(10));  // kEnqueueBatch after the answer: one txn writes node-3's key
  EXPECT_EQ(WaiterKeys().size(), 1u);
  EXPECT_FALSE(third->done);
}

TEST_F(EtcdLockServiceTest, AHandoffDoesNotMakeEtcdReadThisReplicasOwnQueue) {
  // etcd reads every key of a range compare; under contention the queue is this replica's own
  // waiters, which it serves in local order: the handoff's compares leave them out.
  Replica& a = Open();
  lock::Grant first = MustGrant(a, "node-1");
  std::vector<GrantAnswer> waiting = QueueWaiters(a, 20);
  ASSERT_EQ(WaiterKeys().size(), 20u);
  const int64_t compared = etcd_.kvs_compared();
  ASSERT_TRUE(Release(a, first.id).ok());
  ASSERT_TRUE(waiting[0]->done && waiting[0]->value.ok());
  // The grant key, the waiter's key, the epoch: not the 20 waiter keys.
  EXPECT_LE(etcd_.kvs_compared() - compared, 4);
}

TEST_F(EtcdLockServiceTest, AFastPathGrantDoesNotMakeEtcdReadThisReplicasServedQueue) {
  // After a busy spell, etcd's index still holds the deleted waiter keys of this replica until
  // the next compaction; "nobody queued" need not read them when this replica queues nobody.
  Replica& a = Open();
  lock::Grant first = MustGrant(a, "node-1");
  std::vector<GrantAnswer> waiting = QueueWaiters(a, 20);
  ASSERT_EQ(WaiterKeys().size(), 20u);
  lock::Grant held = first;
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(Release(a, held.id).ok());
    ASSERT_TRUE(waiting[i]->done && waiting[i]->value.ok()) << i;
    held = *waiting[i]->value;
  }
  ASSERT_TRUE(Release(a, held.id).ok());
  Run(milliseconds(10));
  ASSERT_TRUE(WaiterKeys().empty());
  const int64_t compared = etcd_.kvs_compared();
  lock::Grant next = MustGrant(a, "node-2");
  // The lock range, the epoch: not the 20 deleted waiter keys.
  EXPECT_LE(etcd_.kvs_compared() - compared, 4);
  ASSERT_TRUE(Release(a, next.id).ok());
}

TEST_F(EtcdLockServiceTest, AFastPathRequestDoesNotJumpThisReplicasOwnQueue) {
  // The lock's lease ends while a's watch is silent: etcd has a free lock and a's own waiter
  // queued. A request that does not wait must not take the lock past that waiter.
  Replica& a = Open();
  MustGrant(a, "node-1", seconds(1));
  GrantAnswer queued = Acquire(a, "w", seconds(10), seconds(30));
  Run(milliseconds(10));
  ASSERT_EQ(WaiterKeys().size(), 1u);
  etcd_.SilenceWatches(true);
  Run(seconds(3));  // the lease (1 s + 1 s slack) ended
  ASSERT_TRUE(Grants().empty());
  GrantAnswer now = Acquire(a, "impatient", seconds(10), seconds(0));
  Run(milliseconds(10));
  ASSERT_TRUE(now->done);
  EXPECT_FALSE(now->value.ok());
  etcd_.SilenceWatches(false);
  Run(milliseconds(100));
  ASSERT_TRUE(queued->done);
  EXPECT_TRUE(queued->value.ok()) << queued->value.status().ToString();
}

TEST_F(EtcdLockServiceTest, ManyRequestsForAFreeLockAtOnceCostOneGrantTxnAndQueueInOrder) {
  // Holders started together ask a free lock at once. While the first request's fast-path txn
  // is in flight the others queue behind it: before, each tried the fast path too, and each try
  // cost etcd a lease grant, a txn bound to fail and a lease revoke (measured: 5 raft writes per
  // holder for 500 holders started together, 1 in the steady state).
  Replica& a = Open();
  const int txns = etcd_.txns(), leases = etcd_.lease_grants();
  a.client->SetAnswerDelay(milliseconds(2));  // every answer takes 2 ms: all 30 ask meanwhile
  std::vector<GrantAnswer> all;
  for (int i = 0; i < 30; ++i) {
    all.push_back(Acquire(a, "w" + std::to_string(i), seconds(10), seconds(30)));
  }
  Run(milliseconds(20));
  a.client->SetAnswerDelay(milliseconds(0));
  Run(milliseconds(20));
  ASSERT_TRUE(all[0]->done && all[0]->value.ok()) << all[0]->value.status().ToString();
  EXPECT_EQ(WaiterKeys().size(), 29u);
  EXPECT_LE(etcd_.txns() - txns, 2);  // the grant; one txn writes the 29 waiter keys
  EXPECT_LE(etcd_.lease_grants() - leases, 2);  // the lock's, the session's (waiter keys)
  lock::Grant held = *all[0]->value;
  for (int i = 1; i < 30; ++i) {
    ASSERT_FALSE(all[i]->done) << i;
    ASSERT_TRUE(Release(a, held.id).ok());
    ASSERT_TRUE(all[i]->done && all[i]->value.ok()) << i << ": " << all[i]->value.status().ToString();
    held = *all[i]->value;
  }
  ASSERT_TRUE(Release(a, held.id).ok());
}

TEST_F(EtcdLockServiceTest, AFastPathRequestThatFindsTheLockTakenStaysAheadOfLaterOnes) {
  // a's mirror does not show b's grant yet, so a's first request tries the fast path and
  // fails; the 59 requests that came while it tried must not get ahead of it, though their
  // keys take two txns (50 a txn).
  Replica& a = Open();
  Replica& b = Open("b");
  a.client->SilenceWatch(true);
  lock::Grant held = MustGrant(b, "holder");
  a.client->SilenceWatch(false);
  a.client->SetAnswerDelay(milliseconds(2));
  const int n = 60;
  std::vector<GrantAnswer> all;
  for (int i = 0; i < n; ++i) {
    all.push_back(Acquire(a, "w" + std::to_string(i), seconds(10), seconds(30)));
  }
  Run(milliseconds(20));
  a.client->SetAnswerDelay(milliseconds(0));
  Run(milliseconds(20));
  ASSERT_EQ(WaiterKeys().size(), size_t{n});
  ASSERT_TRUE(Release(b, held.id).ok());
  Run(milliseconds(10));
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(all[i]->done && all[i]->value.ok()) << i << ": " << all[i]->value.status().ToString();
    for (int j = i + 1; j < n; ++j) ASSERT_FALSE(all[j]->done) << j << " before " << i;
    ASSERT_TRUE(Release(a, all[i]->value->id).ok());
    Run(milliseconds(10));
  }
}

TEST_F(EtcdLockServiceTest, ARequestThatDoesNotWaitIsBusyWhileAFastPathTxnIsInFlight) {
  // The request before it is taking the lock: it would fail, at the cost of a raft write.
  Replica& a = Open();
  const int txns = etcd_.txns();
  a.client->SetAnswerDelay(milliseconds(2));
  GrantAnswer first = Acquire(a, "first", seconds(10), seconds(30));
  GrantAnswer now = Acquire(a, "impatient", seconds(10), seconds(0));
  ASSERT_TRUE(now->done);
  EXPECT_EQ(now->value.status().code(), StatusCode::kFailedPrecondition)
      << now->value.status().ToString();
  a.client->SetAnswerDelay(milliseconds(0));
  Run(milliseconds(20));
  ASSERT_TRUE(first->done && first->value.ok()) << first->value.status().ToString();
  EXPECT_EQ(etcd_.txns() - txns, 1);
}

TEST_F(EtcdLockServiceTest, WaitersOnTwoReplicasAreServedInArrivalOrder) {
  Replica &a = Open("a"), &b = Open("b");
  ServedInArrivalOrder(a, b, /*a_blind=*/false);
}

TEST_F(EtcdLockServiceTest, AnOlderWaiterOfAnotherReplicaComesFirstEvenIfTheMirrorMissedIt) {
  // The grant compares leave out only a's own waiter keys, not b's.
  Replica &a = Open("a"), &b = Open("b");
  ServedInArrivalOrder(a, b, /*a_blind=*/true);
}

TEST_F(EtcdLockServiceTest, RenewKeepsTheTokenAndMovesTheLeasesEnd) {
  Replica& a = Open();
  lock::Grant g = MustGrant(a, "node-1", seconds(3));
  Run(seconds(2));
  StatusOr<lock::Grant> r = Renew(a, g.id, seconds(10));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->token, g.token);
  Run(seconds(5));  // past the first lease's end (3 s + 1 s slack)
  EXPECT_EQ(Grants().size(), 1u);
  EXPECT_TRUE(View(a).held);
  EXPECT_EQ(a->CountersSnapshot().renewals, 1u);
}

TEST_F(EtcdLockServiceTest, ReleaseByAnotherIdIsNotFoundAndKeepsTheLock) {
  Replica& a = Open();
  MustGrant(a, "node-1");
  Status s = Release(a, "not-the-id");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(Grants().size(), 1u);
  EXPECT_EQ(Renew(a, "not-the-id", seconds(10)).status().code(), StatusCode::kNotFound);
}

TEST_F(EtcdLockServiceTest, AReleaseOnAnotherReplicaWorksByReadingEtcd) {
  Replica &a = Open("a"), &b = Open("b");
  lock::Grant g = MustGrant(a, "node-1");
  EXPECT_TRUE(Release(b, g.id).ok());
  EXPECT_TRUE(Grants().empty());
  EXPECT_EQ(Release(b, g.id).code(), StatusCode::kNotFound);  // released already
}

TEST_F(EtcdLockServiceTest, AWaiterThatTimesOutIsBusyAndLeavesTheQueue) {
  Replica& a = Open();
  MustGrant(a, "node-1", seconds(30));
  GrantAnswer w = Acquire(a, "node-2", seconds(10), seconds(2));
  Run(milliseconds(1990));
  EXPECT_FALSE(w->done);
  EXPECT_EQ(WaiterKeys().size(), 1u);
  Run(milliseconds(20));
  ASSERT_TRUE(w->done);
  EXPECT_EQ(w->value.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(w->value.status().message().find("timeout reached"), std::string::npos);
  EXPECT_TRUE(WaiterKeys().empty());
  EXPECT_EQ(a->CountersSnapshot().wait_timeouts, 1u);
}

TEST_F(EtcdLockServiceTest, ALockThatIsNotRenewedEndsWithItsLeaseAndTheWaiterGetsIt) {
  Replica &a = Open("a"), &b = Open("b");
  MustGrant(a, "node-1", seconds(3));
  GrantAnswer w = Acquire(b, "node-2", seconds(10), seconds(30));
  Run(milliseconds(3500));
  EXPECT_FALSE(w->done);  // the lock lasts between its TTL and TTL + 1 s
  Run(seconds(1));
  ASSERT_TRUE(w->done);
  EXPECT_TRUE(w->value.ok()) << w->value.status().ToString();
}

TEST_F(EtcdLockServiceTest, AnExpiryIsToldOnceByTheReplicaThatGranted) {
  Replica &a = Open("a"), &b = Open("b");
  std::vector<std::pair<std::string, lock::ExpiredLease>> seen;
  a->OnLeaseExpired([&](const lock::ExpiredLease& e) { seen.emplace_back("a", e); });
  b->OnLeaseExpired([&](const lock::ExpiredLease& e) { seen.emplace_back("b", e); });
  lock::Grant g = MustGrant(a, "node-1", seconds(3));
  Run(seconds(2));
  ASSERT_TRUE(Renew(b, g.id, seconds(4)).ok());  // renewed through the other replica
  Run(seconds(4));
  EXPECT_TRUE(seen.empty());  // past the first TTL, not the renewed one
  Run(seconds(2));
  ASSERT_TRUE(Grants().empty());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].first, "a");
  EXPECT_EQ(seen[0].second.holder, "node-1");
  EXPECT_EQ(seen[0].second.token, g.token);
  EXPECT_EQ(seen[0].second.ttl, seconds(4));
}

TEST_F(EtcdLockServiceTest, ReleasesOnEitherReplicaAreNoExpiry) {
  Replica &a = Open("a"), &b = Open("b");
  int seen = 0;
  a->OnLeaseExpired([&](const lock::ExpiredLease&) { ++seen; });
  b->OnLeaseExpired([&](const lock::ExpiredLease&) { ++seen; });
  lock::Grant g = MustGrant(a, "node-1", seconds(3));
  ASSERT_TRUE(Release(a, g.id).ok());
  g = MustGrant(b, "node-2", seconds(3));
  Run(seconds(2));
  ASSERT_TRUE(Release(a, g.id).ok());  // made on b, released through a
  Run(seconds(10));                    // past every lease
  EXPECT_EQ(seen, 0);
}

TEST_F(EtcdLockServiceTest, ACancelledWaiterLeavesTheQueue) {
  Replica& a = Open();
  MustGrant(a, "node-1");
  GrantAnswer w = Acquire(a, "node-2", seconds(10), seconds(30));
  Run(milliseconds(10));
  ASSERT_EQ(WaiterKeys().size(), 1u);
  cancels_.back()();
  Run(milliseconds(0));
  EXPECT_TRUE(WaiterKeys().empty());
  EXPECT_EQ(a->CountersSnapshot().wait_cancels, 1u);
}

// ---- leases and sessions ------------------------------------------------------------------

TEST_F(EtcdLockServiceTest, AReplicaCutOffLongerThanItsSessionLeavesNoGrantAndNoWaiterBehind) {
  Replica &a = Open("a"), &b = Open("b");
  MustGrant(a, "node-1", seconds(3));
  GrantAnswer queued = Acquire(a, "node-2", seconds(10), seconds(60));
  Run(milliseconds(10));
  ASSERT_EQ(WaiterKeys().size(), 1u);
  a.client->SetUnavailable(true);
  Run(seconds(2));
  ASSERT_TRUE(queued->done);  // failed at once, not left waiting
  EXPECT_EQ(queued->value.status().code(), StatusCode::kUnavailable);
  EXPECT_FALSE(a->Ready());
  Run(seconds(4));  // the lock's lease (3 s + 1 s) and a's session (5 s) end in etcd
  EXPECT_TRUE(Grants().empty());
  EXPECT_TRUE(WaiterKeys().empty());
  lock::Grant g = MustGrant(b, "node-3");
  EXPECT_GT(g.token, 0u);
  a.client->SetUnavailable(false);
  Run(seconds(2));
  EXPECT_TRUE(a->Ready()) << a->NotReadyReason();
  EXPECT_EQ(View(a).holder, "node-3");
}

TEST_F(EtcdLockServiceTest, ALostSessionLeaseFailsTheWaitersItHeld) {
  Replica& a = Open();
  MustGrant(a, "node-1", seconds(30));
  GrantAnswer w = Acquire(a, "node-2", seconds(10), seconds(60));
  Run(milliseconds(10));
  std::vector<KeyValue> waiting = WaiterKeys();
  ASSERT_EQ(waiting.size(), 1u);
  etcd_.RevokeLease(waiting[0].lease);  // e.g. expired while the replica was paused
  Run(seconds(2));                      // the next keepalive finds it gone
  ASSERT_TRUE(w->done);
  EXPECT_EQ(w->value.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(w->value.status().message().find("lost the etcd session"), std::string::npos);
}

TEST_F(EtcdLockServiceTest, AGrantWhoseOutcomeIsUnknownIsUndone) {
  Replica& a = Open();
  etcd_.FailAfterApply(2);  // the lease grant and the grant txn apply, the answers are lost
  GrantAnswer g = Acquire(a, "node-1");
  ASSERT_TRUE(g->done);
  EXPECT_EQ(g->value.status().code(), StatusCode::kUnavailable);
  Run(seconds(2));
  EXPECT_TRUE(Grants().empty());  // its lease was revoked, or ran out
}

TEST_F(EtcdLockServiceTest, ASpareLeaseRevokedFromOutsideIsReplacedOnce) {
  Replica& a = Open();
  lock::Grant g = MustGrant(a, "node-1");
  const int64_t lease = Grants()[0].lease;
  ASSERT_TRUE(Release(a, g.id).ok());
  etcd_.RevokeLease(lease);  // the freed lease is kept as a spare; someone revokes it
  lock::Grant again = MustGrant(a, "node-2");
  ASSERT_EQ(Grants().size(), 1u);
  EXPECT_NE(Grants()[0].lease, lease);
  EXPECT_GT(again.token, g.token);
}

// ---- the watch mirror ---------------------------------------------------------------------

TEST_F(EtcdLockServiceTest, AWatchWhoseStartWasCompactedReadsTheStoreAgain) {
  Replica &a = Open("a"), &b = Open("b");
  etcd_.SilenceWatches(true);
  lock::Grant g = MustGrant(b, "node-1");
  ASSERT_TRUE(etcd_.Compact(etcd_.revision()).ok());
  etcd_.SilenceWatches(false);  // a's watch lags behind the compaction: canceled
  Run(milliseconds(600));
  EXPECT_TRUE(a->Ready()) << a->NotReadyReason();
  lock::View v = View(a);
  EXPECT_TRUE(v.held);
  EXPECT_EQ(v.token, g.token);
}

TEST_F(EtcdLockServiceTest, AClosedWatchIsOpenedAgainAndCatchesUp) {
  Replica &a = Open("a"), &b = Open("b");
  a.client->SetUnavailable(true);
  Run(milliseconds(1100));  // a's probe fails
  EXPECT_FALSE(a->Ready());
  lock::Grant g = MustGrant(b, "node-1");
  a.client->SetUnavailable(false);
  Run(milliseconds(1600));
  EXPECT_TRUE(a->Ready()) << a->NotReadyReason();
  EXPECT_EQ(View(a).token, g.token);
  EXPECT_EQ(etcd_.open_watches(), 2);
}

// ---- foreign data -------------------------------------------------------------------------

TEST_F(EtcdLockServiceTest, AForeignRecordInTheLockRangeBlocksGrantsUntilDeleted) {
  Replica& a = Open();
  etcd_.Put("/t/lock/by-hand", "not json");
  Run(milliseconds(0));
  GrantAnswer g = Acquire(a, "node-1");
  ASSERT_TRUE(g->done);
  EXPECT_EQ(g->value.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(g->value.status().message().find("foreign record"), std::string::npos);
  EXPECT_NE(a->StoreWarning().find("/t/lock/by-hand"), std::string::npos);
  EXPECT_EQ(a->CountersSnapshot().foreign_records, 1u);
  EXPECT_EQ(Release(a, "").code(), StatusCode::kNotFound);  // never released through tokenmgr
  etcd_.Delete("/t/lock/by-hand");
  Run(milliseconds(0));
  EXPECT_EQ(a->StoreWarning(), "");
  MustGrant(a, "node-1");
}

TEST_F(EtcdLockServiceTest, AForeignWaiterKeyHoldsUpTheWaitersQueuedAfterIt) {
  Replica& a = Open();
  lock::Grant held = MustGrant(a, "node-1");
  etcd_.Put(std::string("/t/waiters/") + '\x02' + "by-hand", "junk");
  GrantAnswer w = Acquire(a, "node-2", seconds(10), seconds(60));
  Run(milliseconds(10));
  ASSERT_TRUE(Release(a, held.id).ok());
  Run(seconds(2));
  EXPECT_FALSE(w->done);  // the foreign key is older: it is first in etcd's order
  EXPECT_EQ(a->CountersSnapshot().foreign_records, 1u);
  etcd_.Delete(std::string("/t/waiters/") + '\x02' + "by-hand");
  Run(milliseconds(0));
  ASSERT_TRUE(w->done);
  EXPECT_TRUE(w->value.ok()) << w->value.status().ToString();
}

TEST_F(EtcdLockServiceTest, AForeignKeyOutsideTheRangesIsCountedAndIgnored) {
  Replica& a = Open();
  etcd_.Put("/t/something-else", "x");
  Run(milliseconds(0));
  EXPECT_EQ(a->CountersSnapshot().foreign_records, 1u);
  MustGrant(a, "node-1");
}

// ---- the token epoch ----------------------------------------------------------------------

TEST_F(EtcdLockServiceTest, AStoreWithoutEpochGetsOneFromTheClockAndTheUpgradeFence) {
  const uint64_t floor = lock::ClockTokenFloor(time_.WallNow());
  Open();
  EXPECT_EQ(Epoch(), floor);
  EXPECT_TRUE(etcd_.Get(std::string("/t/waiters/") + '\x01' + "epoch"));
  time_.StepWall(seconds(5));  // a replica that wrote an epoch of its own would write a later one
  Open("b");                   // finds it: the same epoch
  EXPECT_EQ(Epoch(), floor);
}

TEST_F(EtcdLockServiceTest, ADeletedEpochIsReplacedAndTokensStillGrow) {
  Replica& a = Open();
  lock::Grant before = MustGrant(a, "node-1");
  ASSERT_TRUE(Release(a, before.id).ok());
  time_.StepWall(seconds(1));
  etcd_.Delete("/t/epoch");  // etcd wiped by hand
  Run(milliseconds(600));
  ASSERT_TRUE(a->Ready()) << a->NotReadyReason();
  EXPECT_GT(MustGrant(a, "node-1").token, before.token);
}

TEST_F(EtcdLockServiceTest, AnOverwrittenEpochIsReplacedAndNoGrantUsesTheOldOne) {
  Replica& a = Open();
  lock::Grant before = MustGrant(a, "node-1");
  ASSERT_TRUE(Release(a, before.id).ok());
  time_.StepWall(seconds(1));
  etcd_.Put("/t/epoch", "garbage");  // the mirror has not seen it yet
  GrantAnswer during = Acquire(a, "node-2");
  ASSERT_TRUE(during->done);
  EXPECT_FALSE(during->value.ok());  // the grant txn compares the epoch: refused
  EXPECT_TRUE(Grants().empty());
  Run(milliseconds(600));
  ASSERT_TRUE(a->Ready()) << a->NotReadyReason();
  EXPECT_NE(etcd_.Get("/t/epoch")->value, "garbage");
  EXPECT_GT(MustGrant(a, "node-3").token, before.token);
}

TEST_F(EtcdLockServiceTest, TokensNeverGoBackwardsAcrossReplicasAndHandoffs) {
  Replica &a = Open("a"), &b = Open("b");
  uint64_t last = 0;
  for (int i = 0; i < 6; ++i) {
    Replica& r = i % 2 ? a : b;
    lock::Grant g = MustGrant(r, "node-" + std::to_string(i));
    GrantAnswer w = Acquire(i % 2 ? b : a, "waiter", seconds(10), seconds(30));
    Run(milliseconds(10));
    EXPECT_GT(g.token, last);
    ASSERT_TRUE(Release(r, g.id).ok());
    Run(milliseconds(10));
    ASSERT_TRUE(w->done && w->value.ok()) << w->value.status().ToString();
    EXPECT_GT(w->value->token, g.token);
    last = w->value->token;
    ASSERT_TRUE(Release(i % 2 ? b : a, w->value->id).ok());
  }
}

// ---- failures and shutdown ----------------------------------------------------------------

TEST_F(EtcdLockServiceTest, ShutdownFailsWaitersAndRefusesNewRequests) {
  Replica& a = Open();
  MustGrant(a, "node-1");
  GrantAnswer w = Acquire(a, "node-2", seconds(10), seconds(60));
  Run(milliseconds(10));
  a->Shutdown();
  Run(milliseconds(0));
  ASSERT_TRUE(w->done);
  EXPECT_EQ(w->value.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(w->value.status().message().find("shutting down"), std::string::npos);
  EXPECT_EQ(Acquire(a, "node-3")->value.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(WaiterKeys().empty());  // the session lease was revoked with its keys
  EXPECT_FALSE(a->Ready());
}

TEST_F(EtcdLockServiceTest, TheNoSpaceAlarmFailsWaitersAndRefusesWritesUntilCleared) {
  Replica& a = Open();
  MustGrant(a, "node-1", seconds(30));
  GrantAnswer w = Acquire(a, "node-2", seconds(10), seconds(60));
  Run(milliseconds(10));
  etcd_.SetAlarm("NOSPACE", true);
  Run(seconds(1));  // the maintenance poll sees it
  ASSERT_TRUE(w->done);
  EXPECT_EQ(w->value.status().message(), EtcdMaintenance::kNoSpaceMessage);
  EXPECT_FALSE(a->Ready());
  EXPECT_EQ(a->NotReadyReason(), EtcdMaintenance::kNoSpaceMessage);
  EXPECT_EQ(Acquire(a, "node-3")->value.status().message(), EtcdMaintenance::kNoSpaceMessage);
  EXPECT_NE(a->StoreMetrics().find("tokenmgr_store_alarm{alarm=\"nospace\"} 1\n"),
            std::string::npos);
  etcd_.SetAlarm("NOSPACE", false);
  Run(seconds(1));
  EXPECT_TRUE(a->Ready()) << a->NotReadyReason();
}

TEST_F(EtcdLockServiceTest, AMemberWithoutLeaderMakesTheStoreNotReadyUntilItHasOne) {
  Replica& a = Open();
  etcd_.SetNoLeader(true);
  Run(milliseconds(1100));
  EXPECT_FALSE(a->Ready());
  EXPECT_NE(a->NotReadyReason().find("no leader"), std::string::npos);
  EXPECT_EQ(Acquire(a, "node-1")->value.status().code(), StatusCode::kUnavailable);
  etcd_.SetNoLeader(false);
  Run(milliseconds(1600));
  EXPECT_TRUE(a->Ready()) << a->NotReadyReason();
  MustGrant(a, "node-1");
}

// ---- partitions (issue 19) ----------------------------------------------------------------

TEST_F(EtcdLockServiceTest, AStoreThatLostEtcdIsReadyWithinAQuarterProbeIntervalOfItsReturn) {
  Replica& a = Open("a");
  etcd_.SetNoLeader(true);  // an election
  Run(milliseconds(1100));
  ASSERT_FALSE(a->Ready());
  etcd_.SetNoLeader(false);  // a new leader: the next probe, 250 ms at most, finds it
  Run(milliseconds(300));
  EXPECT_TRUE(a->Ready()) << a->NotReadyReason();
}

TEST_F(EtcdLockServiceTest, AWatchLeftSilentOnAnIsolatedMemberMovesWithTheClient) {
  Replica &a = Open("a"), &b = Open("b");
  lock::Grant g = MustGrant(b, "node-1", seconds(30));
  GrantAnswer queued = Acquire(a, "node-2", seconds(10), seconds(60));
  Run(milliseconds(10));
  ASSERT_EQ(WaiterKeys().size(), 1u);
  // a's member is cut off from the others: a's watch stays open and silent; a's next probe
  // gets "no leader" there and the client moves on (the read works on the next member).
  a.client->IsolateMember();
  Run(milliseconds(1100));
  EXPECT_TRUE(a->Ready()) << a->NotReadyReason();
  ASSERT_TRUE(Release(b, g.id).ok());
  Run(milliseconds(100));  // a hears of the release only through a watch on a working member
  ASSERT_TRUE(queued->done);
  EXPECT_TRUE(queued->value.ok()) << queued->value.status().ToString();
  EXPECT_EQ(View(a).holder, "node-2");
}

TEST_F(EtcdLockServiceTest, AReplicaWhoseMembersStopAnsweringIsNotReadyWithinItsTimeout) {
  Replica &a = Open("a"), &b = Open("b");
  lock::Grant g = MustGrant(b, "node-1", seconds(30));
  GrantAnswer queued = Acquire(a, "node-2", seconds(10), seconds(60));
  Run(milliseconds(10));
  // Each call is answered only after the client tried three members for 2 s each.
  a.client->SetAnswerDelay(seconds(6));
  Run(milliseconds(1000 + 2000 + 100));  // the next probe, then its deadline (the timeout)
  EXPECT_FALSE(a->Ready());
  EXPECT_NE(a->NotReadyReason().find("did not answer"), std::string::npos) << a->NotReadyReason();
  ASSERT_TRUE(queued->done);  // failed, not left waiting on a replica that cannot grant
  EXPECT_EQ(queued->value.status().code(), StatusCode::kUnavailable);
  a.client->SetAnswerDelay(milliseconds(0));
  Run(seconds(8));
  EXPECT_TRUE(a->Ready()) << a->NotReadyReason();
  ASSERT_TRUE(Release(a, g.id).ok());
}

TEST_F(EtcdLockServiceTest, AReleaseIsTriedWhileAFailedProbeSaysEtcdIsDown) {
  Replica& a = Open("a");
  lock::Grant g = MustGrant(a, "node-1", seconds(30));
  a.client->SetUnavailable(true);
  Run(milliseconds(1100));  // a's probe fails
  ASSERT_FALSE(a->Ready());
  a.client->SetUnavailable(false);  // back before the next probe: the release must not wait
  EXPECT_TRUE(Release(a, g.id).ok());
  EXPECT_TRUE(Grants().empty());
}

TEST_F(EtcdLockServiceTest, WaitersOfACutOffReplicaHoldTheQueueNoLongerThanTheStallBound) {
  Replica &a = Open("a"), &b = Open("b");
  auto [g, first, second] = HeldWithWaitersOnAThenB(a, b);
  a.client->SetUnavailable(true);  // a is cut off: its waiter key stays until its session ends
  ASSERT_TRUE(Release(b, g.id).ok());
  Run(milliseconds(250));
  EXPECT_FALSE(second->done);  // a's key is still the head of the queue
  Run(milliseconds(100));      // queue_stall (300 ms) after the lock became free
  ASSERT_TRUE(second->done);
  EXPECT_TRUE(second->value.ok()) << second->value.status().ToString();
  EXPECT_NE(b->StoreMetrics().find("tokenmgr_store_stalled_waiters_removed_total 1"),
            std::string::npos)
      << b->StoreMetrics();
}

TEST_F(EtcdLockServiceTest, AWaiterWhoseKeyWasRemovedAsStalledQueuesAgainAndIsServed) {
  Replica &a = Open("a"), &b = Open("b");
  auto [g, first, second] = HeldWithWaitersOnAThenB(a, b);
  a.client->SilenceWatch(true);  // a does not hear of the release for a while
  ASSERT_TRUE(Release(b, g.id).ok());
  Run(milliseconds(1100));
  ASSERT_TRUE(second->done);  // b removed a's key and granted its own waiter
  ASSERT_TRUE(second->value.ok());
  ASSERT_TRUE(WaiterKeys().empty());
  a.client->SilenceWatch(false);  // a's watch shows the deletion: a queues its waiter again
  Run(milliseconds(20));
  EXPECT_EQ(WaiterKeys().size(), 1u);  // visible to every replica's compares again
  ASSERT_TRUE(Release(b, second->value->id).ok());
  Run(milliseconds(100));
  ASSERT_TRUE(first->done);  // a's waiter was not lost
  EXPECT_TRUE(first->value.ok()) << first->value.status().ToString();
}

TEST_F(EtcdLockServiceTest, AReleaseRefusedDuringAnElectionIsSentAgainOnceThereIsALeader) {
  Replica& a = Open("a");
  lock::Grant g = MustGrant(a, "node-1", seconds(30));
  etcd_.SetNoLeader(true);
  Status out = Internal("not answered");
  a->Release(g.id, [&](Status s) { out = s; });
  Run(milliseconds(600));
  EXPECT_EQ(out.code(), StatusCode::kInternal);  // not answered yet: waiting for a leader
  etcd_.SetNoLeader(false);
  Run(milliseconds(300));
  EXPECT_TRUE(out.ok()) << out.ToString();
  EXPECT_TRUE(Grants().empty());
}

TEST_F(EtcdLockServiceTest, AReleaseWhoseOutcomeIsUnknownIsSentAgainOnceEtcdAnswers) {
  Replica &a = Open("a"), &b = Open("b");
  lock::Grant g = MustGrant(a, "node-1", seconds(30));
  GrantAnswer queued = Acquire(b, "node-2", seconds(10), seconds(60));
  Run(milliseconds(10));
  a.client->SetUnavailable(true);  // the release fails: for all a knows, it may have applied
  EXPECT_EQ(Release(a, g.id).code(), StatusCode::kUnavailable);
  Run(seconds(2));
  EXPECT_FALSE(queued->done);  // it did not: the lock is still held
  a.client->SetUnavailable(false);
  Run(milliseconds(300));  // a sends it again: the lock ends now, not with its lease (31 s)
  ASSERT_TRUE(queued->done);
  EXPECT_TRUE(queued->value.ok()) << queued->value.status().ToString();
  EXPECT_EQ(Grants().size(), 1u);
  EXPECT_NE(a->StoreMetrics().find("tokenmgr_store_releases_chased_total 1"), std::string::npos)
      << a->StoreMetrics();
}

TEST_F(EtcdLockServiceTest, AReleaseStuckInTheNetworkIsSentAgainAndEndsTheLockAfterTheHeal) {
  Replica &a = Open("a"), &b = Open("b");
  lock::Grant g = MustGrant(a, "node-1", seconds(30));
  GrantAnswer queued = Acquire(b, "node-2", seconds(10), seconds(60));
  Run(milliseconds(10));
  a.client->HoldTxns(true);  // a cut: a's release txn is lost in the network
  Status out = Internal("not answered");
  a->Release(g.id, [&](Status s) { out = s; });
  Run(milliseconds(1000));
  EXPECT_FALSE(queued->done);
  // Healed, but the first request waits for a TCP retransmission: a later one ends the lock.
  a.client->HoldTxns(false);
  Run(milliseconds(300));
  ASSERT_TRUE(queued->done);
  EXPECT_TRUE(queued->value.ok()) << queued->value.status().ToString();
  EXPECT_TRUE(out.ok()) << out.ToString();
  // The first request (and the earlier resends) reach etcd at last: they delete nothing.
  a.client->DeliverHeldTxns();
  Run(milliseconds(100));
  ASSERT_EQ(Grants().size(), 1u);
  EXPECT_EQ(View(a).holder, "node-2");
  EXPECT_EQ(View(b).holder, "node-2");
}

TEST_F(EtcdLockServiceTest, AReleaseWhoseChaseDeletedTheKeyFirstIsAnsweredReleased) {
  Replica& a = Open("a");
  lock::Grant g = MustGrant(a, "node-1", seconds(30));
  a.client->HoldTxns(true);  // the release's own txn is stuck in the network
  Status out = Internal("not answered");
  a->Release(g.id, [&](Status s) { out = s; });
  Run(milliseconds(400));
  a.client->HoldTxns(false);
  a.client->SetAnswerDelay(milliseconds(200));
  Run(milliseconds(200));  // the chase deletes the key; its answer is on its way
  ASSERT_TRUE(Grants().empty());
  a.client->SetAnswerDelay(milliseconds(0));
  a.client->DeliverHeldTxns();  // the own txn arrives: not applied, answered before the chase
  Run(milliseconds(0));
  EXPECT_EQ(out.code(), StatusCode::kInternal) << out.ToString();  // waits for the chase
  Run(milliseconds(300));
  EXPECT_TRUE(out.ok()) << out.ToString();  // released, not "not held"
}

TEST_F(EtcdLockServiceTest, AChasedReleaseAnsweredLateKeepsTheNextGrantOnTheSameKey) {
  Replica &a = Open("a"), &b = Open("b");
  lock::Grant g = MustGrant(a, "node-1", seconds(30));  // on lock/a
  GrantAnswer next = Acquire(b, "node-2", seconds(10), seconds(60));
  Run(milliseconds(10));
  a.client->HoldTxns(true);  // the release's own txn is stuck in the network
  Status out = Internal("not answered");
  a->Release(g.id, [&](Status s) { out = s; });
  Run(milliseconds(400));
  a.client->HoldTxns(false);
  a.client->SetAnswerDelay(milliseconds(200));  // the chase's answer comes late
  Run(milliseconds(150));  // the chase deleted lock/a; b granted node-2 on lock/a again
  ASSERT_TRUE(next->done);
  ASSERT_TRUE(next->value.ok()) << next->value.status().ToString();
  a.client->SetAnswerDelay(milliseconds(0));  // a's watch shows the new grant first
  Run(milliseconds(0));
  ASSERT_EQ(View(a).holder, "node-2");
  Run(milliseconds(200));  // then the chase's answer, about the version it deleted
  EXPECT_TRUE(out.ok()) << out.ToString();
  EXPECT_EQ(View(a).holder, "node-2");  // not the key's newer version
  a.client->DeliverHeldTxns();
  Run(milliseconds(100));
  EXPECT_EQ(View(a).holder, "node-2");
  EXPECT_EQ(View(b).holder, "node-2");
}

TEST_F(EtcdLockServiceTest, AReleaseIsChasedAlsoWhileItsHandoffWaitsForALease) {
  Replica& a = Open("a");
  lock::Grant g = MustGrant(a, "node-1", seconds(30));
  GrantAnswer next = Acquire(a, "node-2", seconds(7), seconds(60));  // the handoff's target
  Run(seconds(5));  // the lease its first try left as the spare needs a keepalive by now
  ASSERT_EQ(WaiterKeys().size(), 1u);
  a.client->SetAnswerDelay(seconds(2));  // a's member answers late: the lease call too
  Status out = Internal("not answered");
  a->Release(g.id, [&](Status s) { out = s; });
  Run(milliseconds(700));
  EXPECT_TRUE(Grants().empty());  // a chase deleted the grant key meanwhile
  a.client->SetAnswerDelay(milliseconds(0));
  Run(seconds(3));
  EXPECT_TRUE(out.ok()) << out.ToString();
}

}  // namespace
}  // namespace lm::store
