#include "store/etcd_lock_service.h"

#include <array>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "common/metrics_text.h"
#include "common/random.h"
#include "common/strings.h"
#include "store/etcd_open.h"

namespace lm::store {

using std::chrono::duration_cast;

struct EtcdLockService::Waiter {
  uint64_t local_id = 0;
  std::string holder;
  lock::Seconds ttl{0};
  SteadyTime enqueued_at;
  std::string key;  // <prefix>waiters/\x02r/<replica>/<uuid>, once queued
  int64_t rev = 0;  // its create revision, once queued
  bool trying = false;
  bool finished = false;
  GrantDone done;
  TimerPtr deadline;
};

StatusOr<std::unique_ptr<EtcdLockService>> EtcdLockService::Open(boost::asio::io_context& io,
                                                                 TimeSystem& time,
                                                                 lock::Options options,
                                                                 EtcdStoreOptions store) {
  if (store.prefix.empty()) return InvalidArgument("etcd key prefix must not be empty");
  auto etcd = OpenEtcdApi(io, {.endpoints = store.endpoints,
                               .timeout = store.timeout,
                               .tls = store.tls,
                               .protocol = store.protocol});
  if (!etcd.ok()) return etcd.status();
  return Create(io, time, options, std::move(store), std::move(*etcd));
}

StatusOr<std::unique_ptr<EtcdLockService>> EtcdLockService::Create(
    boost::asio::io_context& io, TimeSystem& time, lock::Options options, EtcdStoreOptions store,
    std::unique_ptr<EtcdApi> etcd) {
  if (store.prefix.empty()) return InvalidArgument("etcd key prefix must not be empty");
  std::unique_ptr<EtcdLockService> s(
      new EtcdLockService(io, time, options, std::move(store), std::move(etcd)));
  s->Start();
  return s;
}

EtcdLockService::EtcdLockService(boost::asio::io_context& io, TimeSystem& time,
                                 lock::Options options, EtcdStoreOptions store,
                                 std::unique_ptr<EtcdApi> etcd)
    : io_(io),
      time_(time),
      options_(options),
      store_(std::move(store)),
      keys_(store_.prefix),
      own_waiters_prefix_(keys_.waiters_begin + "r/" + NewUuidV4() + "/"),
      etcd_(std::move(etcd)) {
  auto ex = io_.get_executor();
  leases_ = std::make_unique<EtcdLeasePool>(time_, *etcd_, store_.timeout);
  session_ = std::make_unique<EtcdSession>(
      time_, ex, *etcd_, store_.session_ttl,
      EtcdSession::Hooks{
          .error = [this](const std::string& why) { health_->Set(false, why); },
          .lost = [this] { FailAllWaiters(Unavailable("lost the etcd session; retry")); }});
  mirror_ = std::make_unique<EtcdMirror>(
      time_, ex, *etcd_, keys_,
      EtcdMirror::Hooks{.synced =
                            [this] {
                              requeue_scan_ = true;  // a full read: no delete events for it
                              health_->Set(true, "");
                            },
                        .error = [this](const std::string& why) { health_->Set(false, why); },
                        .changed = [this] { Pump(); },
                        .expired = [this](const EtcdRecord& rec) { OnGrantExpired(rec); },
                        .waiter_deleted =
                            [this](const std::string& key) {
                              auto it = queued_keys_.find(key);
                              if (it != queued_keys_.end()) removed_.push_back(it->second);
                            }});
  health_ = std::make_unique<EtcdHealth>(
      time_, ex, *etcd_, keys_.lock_key, store_.probe_interval, store_.timeout,
      EtcdHealth::Hooks{.up = [this] { OnEtcdUp(); },
                        .down = [this](const std::string& why) { OnEtcdDown(why); },
                        .probed = [this] { mirror_->FollowMember(); }});
  maintenance_ = std::make_unique<EtcdMaintenance>(time_, *etcd_, store_.maintenance);
  chase_ = std::make_unique<EtcdReleaseChase>(time_, ex, *etcd_, kReleaseHedge, kReleaseRetry);
  recheck_timer_ = time_.CreateTimer(ex, [this] { Pump(); });
  stall_timer_ = time_.CreateTimer(ex, [this] { RemoveStalledHead(); });
  release_retry_timer_ = time_.CreateTimer(ex, [this] { RetryReleases(); });
  enqueue_timer_ = time_.CreateTimer(ex, [this] {
    enqueue_armed_ = false;
    // A release txn of this replica is on its way: the next one (the new holder's release, as
    // a rule) will carry the puts; ArmEnqueueFlush() gives it kEnqueueBatch once it is answered.
    if (releases_in_flight_ == 0) FlushEnqueues();
  });
}

void EtcdLockService::Start() {
  mirror_->Resync();
  health_->Start();
  // Waiters cannot be granted now, and a release that hands the lock to one would be refused.
  maintenance_->OnNoSpace(
      [this] { FailAllWaiters(Unavailable(EtcdMaintenance::kNoSpaceMessage)); });
  maintenance_->Start(io_);
}

EtcdLockService::~EtcdLockService() {
  *alive_ = false;
  alive_.reset();
  stopped_ = true;
  etcd_->Shutdown();
}

lock::Counters EtcdLockService::CountersSnapshot() const {
  lock::Counters c = counters_;
  c.foreign_records = mirror_->foreign_count();
  return c;
}

std::string EtcdLockService::StoreMetrics() const {
  MetricsText m;
  m.Family("tokenmgr_store_stalled_waiters_removed_total", "counter",
           "waiter keys of other replicas this replica removed from the head of the queue after "
           "they stayed there while the lock was free (their replica cut off from etcd)");
  m.CountSample("tokenmgr_store_stalled_waiters_removed_total", {}, stalled_removed_);
  m.Family("tokenmgr_store_releases_chased_total", "counter",
           "lock releases whose own request did not come back (a cut, an election) and that a "
           "later copy applied");
  m.CountSample("tokenmgr_store_releases_chased_total", {}, chase_->released_count());
  return maintenance_->RenderMetrics() + m.Take();
}

// ---- health -------------------------------------------------------------------------------

void EtcdLockService::OnEtcdUp() {
  session_->RevokeStale();
  if (!mirror_->synced()) mirror_->Resync();
}

void EtcdLockService::OnEtcdDown(const std::string& why) {
  FailAllWaiters(Unavailable("lock store (etcd) unavailable: " + why));
  session_->Lost();
  mirror_->Lost();
}

Status EtcdLockService::CallFailed(const Status& s) {
  health_->Set(false, s.message());
  return Unavailable("lock store (etcd) unavailable: " + s.message());
}

std::string EtcdLockService::LockValue(const std::string& id, const std::string& holder,
                                       lock::Seconds ttl, int64_t acquired_ms,
                                       uint64_t epoch) const {
  int64_t now = UnixMillis(time_.WallNow());
  return SerializeGrantValue({.id = id,
                              .holder = holder,
                              .ttl_s = ttl.count(),
                              .acquired_ms = acquired_ms ? acquired_ms : now,
                              .expires_ms = now + duration_cast<Millis>(ttl).count(),
                              .epoch = epoch});
}

// ---- waiters ------------------------------------------------------------------------------

lock::LockService::CancelFn EtcdLockService::Acquire(lock::AcquireRequest request,
                                                     GrantDone done) {
  if (stopped_) {
    done(Unavailable("tokenmgr is shutting down"));
    return [] {};
  }
  if (maintenance_->nospace()) {  // etcd refuses every write: fail fast, say what to do
    done(Unavailable(EtcdMaintenance::kNoSpaceMessage));
    return [] {};
  }
  if (!Ready()) {
    done(Unavailable("lock store (etcd) unavailable: " + health_->why()));
    return [] {};
  }
  if (request.wait.count() > 0 &&
      mirror_->waiters().size() + local_.size() >= options_.max_waiters) {
    ++counters_.rejected_busy;
    done(ResourceExhausted("too many waiters (" + std::to_string(options_.max_waiters) +
                           "); try again later"));
    return [] {};
  }
  auto w = std::make_shared<Waiter>();
  w->local_id = next_local_++;
  w->holder = std::move(request.holder);
  w->ttl = request.ttl;
  w->enqueued_at = time_.Now();
  w->done = std::move(done);
  if (request.wait.count() > 0) {
    // The waiter owns its timer: the callback holds it weakly (no cycle). A waiter kept by a
    // call in flight may outlive this object: hence the alive check.
    w->deadline = time_.CreateTimer(io_.get_executor(), [this, weak = std::weak_ptr<Waiter>(w),
                                                         a = std::weak_ptr<bool>(alive_)] {
      WaiterPtr w = weak.lock();
      if (!Alive(a) || !w || w->finished) return;
      ++counters_.wait_timeouts;
      Finish(w, BusyError("lock unavailable yet timeout reached", mirror_->lock()));
    });
    w->deadline->Arm(request.wait);
  }
  local_[w->local_id] = w;
  if (!to_enqueue_.empty() || FastPathInFlight()) {
    // Earlier requests of this replica are about to be queued, or one is taking the free lock
    // (its txn in flight): go behind them. When many ask a free lock at once (holders started
    // together), only the first tries the fast path; each other try would cost etcd a lease
    // grant, a txn bound to fail and a lease revoke, all before the first handoff.
    if (w->deadline) {
      Enqueue(w);
    } else {
      ++counters_.rejected_busy;
      Finish(w, BusyError("lock unavailable", std::nullopt));
    }
  } else if (w->deadline && !mirror_->waiters().empty()) {
    // The mirror says others are queued: a fast-path txn would most likely fail (and cost a raft
    // write). Queue at once; if the mirror was behind, the queue grants it just as soon. (Not
    // when it only says "held": the watch can show our own grant after its release.)
    Enqueue(w);
  } else {
    TryGrant(w, /*fast_path=*/true);
  }
  std::weak_ptr<bool> a = alive_;
  return [this, a, w] {
    if (a.expired() || w->finished) return;
    ++counters_.wait_cancels;
    w->done = nullptr;
    Finish(w, Unavailable("cancelled"));
  };
}

void EtcdLockService::Finish(const WaiterPtr& w, StatusOr<lock::Grant> result) {
  if (w->finished) return;
  w->finished = true;
  if (w->deadline) w->deadline->Disarm();
  local_.erase(w->local_id);
  Unqueue(*w);
  std::erase(to_enqueue_, w);
  if (!w->key.empty() && !result.ok()) {
    // Leave the queue now; if this fails the session lease removes the key later.
    mirror_->EraseWaiter(w->rev, w->key);
    etcd_->DeleteKey(w->key, [](Status) {});
  }
  GrantDone done = std::move(w->done);
  if (done) done(std::move(result));
  Pump();
}

void EtcdLockService::FailAllWaiters(const Status& why) {
  std::vector<WaiterPtr> all;
  for (auto& [id, w] : local_) all.push_back(w);
  for (auto& w : all) Finish(w, why);
}

std::string EtcdLockService::GrantKeyAfter(const std::string& current) const {
  const std::string a = keys_.grants_prefix + "a";
  return current == a ? keys_.grants_prefix + "b" : a;
}

std::vector<Op> EtcdLockService::GrantOps(const std::string& key, const std::string& value,
                                          int64_t lease, const std::string& waiter_key) const {
  std::vector<Op> ops = {Op::Put(key, value, lease)};
  if (!waiter_key.empty()) ops.push_back(Op::Delete(waiter_key));
  // The fence: a tokenmgr from before grant keys sees it as a waiter older than any of its own,
  // so it can never grant the old `lock` key while replicas of this version run.
  Txn fence;
  fence.compare = {Compare::Create(keys_.waiters_prefix, CompareResult::kEqual, 0)};
  fence.success = {Op::Put(keys_.waiters_prefix, "")};
  ops.push_back(Op::Nested(std::move(fence)));
  return ops;
}

void EtcdLockService::Granted(const WaiterPtr& w, const std::string& key, const std::string& id,
                              int64_t lease, int64_t revision, bool queued) {
  const uint64_t token = mirror_->epoch() + static_cast<uint64_t>(std::max<int64_t>(0, revision));
  if (w->finished) {
    // The client went away while the txn was in flight: nobody may hold this grant.
    spdlog::info("grant to a waiter that went away undone (token {})", token);
    return leases_->Revoke(lease);
  }
  ++counters_.grants;
  if (queued) {  // like the embedded store: only grants that waited in the queue
    counters_.wait_seconds.Observe(
        std::chrono::duration<double>(time_.Now() - w->enqueued_at).count());
  }
  mirror_->NoteToken(token);
  Unqueue(*w);
  if (w->rev) mirror_->EraseWaiter(w->rev, w->key);
  // Read-your-writes on this replica; the watch confirms it.
  EtcdRecord rec;
  rec.key = key;
  rec.id = id;
  rec.holder = w->holder;
  rec.token = token;
  rec.ttl_s = w->ttl.count();
  rec.acquired_ms = UnixMillis(time_.WallNow());
  rec.expires_ms = rec.acquired_ms + duration_cast<Millis>(w->ttl).count();
  rec.lease = lease;
  rec.mod_revision = revision;
  rec.epoch = mirror_->epoch();
  mirror_->PutGrant(rec);
  granted_here_ = id;
  lock::Grant g{id, token, w->ttl, duration_cast<Millis>(w->ttl)};
  w->key.clear();
  Finish(w, std::move(g));
}

void EtcdLockService::OnLeaseExpired(std::function<void(const lock::ExpiredLease&)> observer) {
  expiry_observer_ =
      observer ? std::make_shared<std::function<void(const lock::ExpiredLease&)>>(
                     std::move(observer))
               : nullptr;
}

void EtcdLockService::OnGrantExpired(const EtcdRecord& rec) {
  if (rec.id.empty() || rec.id != granted_here_ || !expiry_observer_) return;
  granted_here_.clear();
  // Posted: the mirror calls while it applies a watch answer.
  boost::asio::post(io_, [a = std::weak_ptr<bool>(alive_), observer = expiry_observer_,
                          e = lock::ExpiredLease{rec.holder, rec.token, lock::Seconds(rec.ttl_s)}] {
    if (!a.expired()) (*observer)(e);
  });
}

// Grants the lock to `w` if the txn's conditions hold. fast_path: a new request, which may
// only take a free lock when nobody is queued; otherwise `w` must be the oldest waiter.
void EtcdLockService::TryGrant(WaiterPtr w, bool fast_path, bool retried) {
  w->trying = true;
  if (fast_path) fast_path_ = w;
  leases_->Take(w->ttl, [this, w, fast_path, retried,
                         a = std::weak_ptr<bool>(alive_)](StatusOr<Taken> lease) {
    if (!Alive(a)) return;
    if (!lease.ok()) {
      w->trying = false;
      return Finish(w, CallFailed(lease.status()));
    }
    if (w->finished) {
      w->trying = false;
      return leases_->Spare(w->ttl, lease->id);
    }
    GrantTxn(w, fast_path, retried, *lease);
  });
}

void EtcdLockService::GrantTxn(WaiterPtr w, bool fast_path, bool retried, Taken lease) {
  GrantAttempt g{w, NewUuidV4(), GrantKeyAfter(""), lease};
  const std::string lock_end = PrefixEnd(keys_.grants_prefix);
  const std::string waiters_end = PrefixEnd(keys_.waiters_prefix);
  Txn txn;
  // Free: no key in the lock range (no grant key, no old-layout lock key).
  txn.compare = {Compare::Create(keys_.lock_key, CompareResult::kEqual, 0, lock_end),
                 Compare::Value(keys_.epoch_key, mirror_->epoch_raw())};
  if (fast_path) {
    // Nobody queued. When this replica queues nobody else, its own key range holds only keys
    // of waiters it is done with (deleted, or being deleted), which etcd would still read
    // until the next compaction: after a busy spell, thousands. So only the other replicas'
    // ranges are compared then; else the whole range (this replica's queue comes first).
    bool own_queue = std::any_of(local_.begin(), local_.end(), [&](const auto& entry) {
      return entry.second != w && !entry.second->finished;
    });
    if (own_queue) {
      txn.compare.push_back(
          Compare::Create(keys_.waiters_begin, CompareResult::kEqual, 0, waiters_end));
    } else {
      for (const auto& [begin, end] : OtherReplicasWaiterRanges()) {
        txn.compare.push_back(Compare::Create(begin, CompareResult::kEqual, 0, end));
      }
    }
  } else {
    std::vector<Compare> older = NoOlderWaiterElsewhere(w->rev);
    txn.compare.insert(txn.compare.end(), older.begin(), older.end());
  }
  txn.success =
      GrantOps(g.key, LockValue(g.id, w->holder, w->ttl, 0, mirror_->epoch()), lease.id, w->key);
  txn.failure = {Op::Range(keys_.lock_key, lock_end)};
  leases_->TxnOnLease(std::move(txn), lease, w->ttl,
                      [this, g, fast_path, retried, a = std::weak_ptr<bool>(alive_)](
                          StatusOr<TxnResponse> r, bool lease_ok) {
                        if (Alive(a)) OnGrantTxn(g, fast_path, retried, std::move(r), lease_ok);
                      });
}

void EtcdLockService::OnGrantTxn(const GrantAttempt& g, bool fast_path, bool retried,
                                 StatusOr<TxnResponse> r, bool lease_ok) {
  const WaiterPtr& w = g.w;
  const int64_t lease_id = g.lease.id;
  w->trying = false;
  if (!r.ok() && r.status().code() == StatusCode::kNotFound && !retried) {
    leases_->Forget(lease_id);  // gone: the retry takes a new one
    if (w->finished) return;
    return TryGrant(w, fast_path, /*retried=*/true);
  }
  if (!r.ok()) {
    // Outcome unknown: revoking the lease undoes a grant that may have happened.
    leases_->Revoke(lease_id);
    return Finish(w, CallFailed(r.status()));
  }
  if (!r->succeeded) {
    // The txn did not apply: the lease is still unused.
    if (lease_ok) leases_->Spare(w->ttl, lease_id);
    if (!lease_ok) leases_->Revoke(lease_id);
    if (w->finished) return;
    std::optional<EtcdRecord> current;
    for (const OpResponse& resp : r->responses) {
      for (const KeyValue& kv : resp.kvs) {
        if (kv.undecodable.empty()) current = mirror_->ParseRecord(kv);
      }
    }
    if (fast_path) {
      if (!w->deadline) {
        ++counters_.rejected_busy;
        return Finish(w, BusyError("lock unavailable", current));
      }
      return Enqueue(w);
    }
    // Our mirror was behind; the watch will call Pump() again. Re-check later in case it was
    // something the watch cannot show us.
    recheck_timer_->Arm(std::chrono::seconds(1));
    return;
  }
  if (!lease_ok) {  // it may end before the TTL runs out: undo the grant
    leases_->Revoke(lease_id);
    return Finish(w, Unavailable("lock store (etcd): could not refresh the lock's lease"));
  }
  Granted(w, g.key, g.id, lease_id, r->revision, !fast_path);
}

void EtcdLockService::Enqueue(WaiterPtr w) {
  session_->Ensure([this, w, a = std::weak_ptr<bool>(alive_)](Status s) {
    if (!Alive(a) || w->finished) return;
    if (!s.ok()) return Finish(w, Unavailable("lock store (etcd) unavailable: " + s.message()));
    // In arrival order: a fast-path request whose txn failed came before the requests queued
    // while it was in flight (FlushEnqueues waits for its answer).
    auto later = std::upper_bound(to_enqueue_.begin(), to_enqueue_.end(), w->local_id,
                                  [](uint64_t id, const WaiterPtr& q) { return id < q->local_id; });
    to_enqueue_.insert(later, w);
    ArmEnqueueFlush();
  });
}

bool EtcdLockService::FastPathInFlight() const {
  WaiterPtr w = fast_path_.lock();
  return w && w->trying && !w->finished;
}

void EtcdLockService::ArmEnqueueFlush() {
  if (enqueue_armed_ || to_enqueue_.empty()) return;
  enqueue_armed_ = true;
  enqueue_timer_->Arm(kEnqueueBatch);
}

std::vector<Op> EtcdLockService::TakeEnqueues(Enqueues& taken) {
  std::vector<Op> ops;
  enqueue_timer_->Disarm();
  enqueue_armed_ = false;
  std::vector<WaiterPtr> waiting = std::exchange(to_enqueue_, {});
  for (auto& w : waiting) {
    if (w->finished) continue;
    if (taken.size() == kMaxEnqueuesPerTxn) {
      to_enqueue_.push_back(std::move(w));
      continue;
    }
    if (!session_->lease()) {  // lost since Enqueue(); answered outside the caller's txn building
      boost::asio::post(io_, [this, w, a = std::weak_ptr<bool>(alive_)] {
        if (Alive(a)) Finish(w, Unavailable("lost the etcd session; retry"));
      });
      continue;
    }
    std::string key = own_waiters_prefix_ + NewUuidV4();
    ops.push_back(Op::Put(key, nlohmann::json{{"holder", w->holder}}.dump(), session_->lease()));
    taken.emplace_back(std::move(w), std::move(key));
  }
  if (!to_enqueue_.empty()) {
    boost::asio::post(io_, [this, a = std::weak_ptr<bool>(alive_)] {
      if (Alive(a)) FlushEnqueues();
    });
  }
  return ops;
}

void EtcdLockService::Enqueued(const Enqueues& taken, int64_t revision) {
  for (const auto& [w, key] : taken) {
    if (w->finished) {
      etcd_->DeleteKey(key, [](Status) {});
      continue;
    }
    w->key = key;
    w->rev = revision;
    Queued(*w);
    mirror_->AddWaiter(revision, key);
  }
}

void EtcdLockService::FlushEnqueues() {
  if (FastPathInFlight()) {
    // Its request came first: if its txn fails, it queues ahead of these (Enqueue). Looked at
    // again a batch later (a fast-path txn takes about one etcd write).
    return ArmEnqueueFlush();
  }
  auto taken = std::make_shared<Enqueues>();
  Txn txn;
  txn.success = TakeEnqueues(*taken);
  if (taken->empty()) return;
  etcd_->DoTxn(std::move(txn), [this, taken, a = std::weak_ptr<bool>(alive_)](
                                   StatusOr<TxnResponse> r) {
    if (!Alive(a)) return;
    if (!r.ok() && r.status().code() == StatusCode::kNotFound) {
      // Refused, not applied: the session lease is gone (e.g. it ended while this replica was
      // cut off). The next waiters get a new session; etcd itself works.
      session_->Lost();
      for (const auto& [w, key] : *taken) Finish(w, Unavailable("lost the etcd session; retry"));
      return;
    }
    if (!r.ok()) {
      Status why = CallFailed(r.status());
      for (const auto& [w, key] : *taken) Finish(w, why);
      return;
    }
    Enqueued(*taken, r->revision);
    Pump();
  });
}

std::array<std::pair<std::string, std::string>, 2> EtcdLockService::OtherReplicasWaiterRanges()
    const {
  return {{{keys_.waiters_begin, own_waiters_prefix_},
           {PrefixEnd(own_waiters_prefix_), PrefixEnd(keys_.waiters_prefix)}}};
}

std::vector<Compare> EtcdLockService::NoOlderWaiterElsewhere(int64_t rev) const {
  // The waiter range minus this replica's own keys: [begin, own) and [own end, end). Own waiters
  // are served in local order (OldestWaiter), so etcd need not read them for each grant. etcd
  // compares an empty range as one key with revision 0: "no key" is EQUAL 0, "every key newer"
  // is GREATER rev - 1 and needs a key. Which one holds, the mirror says; if it was behind, the
  // compare fails (no grant) and the watch brings the next try.
  std::vector<Compare> out;
  for (const auto& range : OtherReplicasWaiterRanges()) {
    const std::string& begin = range.first;  // not a structured binding: clang 14 cannot
    const std::string& end = range.second;   // capture one in the lambda (the fuzz build)
    bool any = mirror_->AnyWaiterIn(begin, end);
    out.push_back(any ? Compare::Create(begin, CompareResult::kGreater, rev - 1, end)
                      : Compare::Create(begin, CompareResult::kEqual, 0, end));
  }
  return out;
}

EtcdLockService::WaiterPtr EtcdLockService::OldestWaiter() const {
  WaiterPtr best;
  if (!queued_.empty()) {
    auto it = local_.find(queued_.begin()->second);  // always there (Finish unqueues)
    if (it != local_.end()) best = it->second;
  }
  const auto& waiters = mirror_->waiters();
  if (!best || (!waiters.empty() && waiters.begin()->first < best->rev)) return nullptr;
  return best;
}

// Lets this replica's oldest waiter try the grant when the mirror says it may succeed.
void EtcdLockService::Pump() {
  if (!stopped_ && Ready()) RequeueRemoved();
  const bool free = !stopped_ && Ready() && !mirror_->lock();
  WatchQueueHead(free);
  if (!free) return;
  if (!to_enqueue_.empty()) FlushEnqueues();  // the lock is free: no batching
  WaiterPtr best = OldestWaiter();
  if (!best || best->trying) return;
  TryGrant(best, /*fast_path=*/false);
}

void EtcdLockService::RequeueRemoved() {
  // Only the waiters whose key the watch showed deleted (every one after a full read): looking
  // at every queued waiter on each Pump() made 5,000 of them cost O(N^2).
  std::vector<WaiterPtr> candidates;
  if (requeue_scan_) {
    requeue_scan_ = false;
    removed_.clear();
    for (auto& [id, w] : local_) candidates.push_back(w);
  } else {
    for (uint64_t id : std::exchange(removed_, {})) {
      auto it = local_.find(id);
      if (it != local_.end()) candidates.push_back(it->second);
    }
  }
  for (WaiterPtr& w : candidates) {
    if (!w->rev || w->finished || mirror_->waiters().contains({w->rev, w->key})) continue;
    if (w->trying) {  // its grant txn may be what deleted the key: look again once answered
      removed_.push_back(w->local_id);
      continue;
    }
    spdlog::info("waiter '{}' lost its place in the etcd queue (removed by another replica as "
                 "stalled): queued again",
                 w->holder);
    Unqueue(*w);
    w->key.clear();
    w->rev = 0;
    Enqueue(std::move(w));
  }
}

void EtcdLockService::Queued(const Waiter& w) {
  queued_.insert({w.rev, w.local_id});
  queued_keys_[w.key] = w.local_id;
}

void EtcdLockService::Unqueue(const Waiter& w) {
  if (w.rev) queued_.erase({w.rev, w.local_id});
  if (!w.key.empty()) queued_keys_.erase(w.key);
}

void EtcdLockService::WatchQueueHead(bool lock_free) {
  // This replica's oldest queued waiter, and the keys ahead of it (not foreign ones).
  std::vector<std::pair<int64_t, std::string>> head;
  const int64_t oldest = queued_.empty() ? 0 : queued_.begin()->first;
  if (lock_free && oldest) {
    for (const auto& [rev, key] : mirror_->waiters()) {
      if (rev >= oldest) break;
      if (!mirror_->IsForeign(key)) head.emplace_back(rev, key);
    }
  }
  if (head.empty()) {
    stall_timer_->Disarm();
    stalled_head_.clear();
    return;
  }
  if (head == stalled_head_ && stall_timer_->armed()) return;  // still the same: keep counting
  stalled_head_ = std::move(head);
  stall_timer_->Arm(store_.queue_stall);
}

void EtcdLockService::RemoveStalledHead() {
  std::vector<std::pair<int64_t, std::string>> head = std::move(stalled_head_);
  if (stopped_ || head.empty() || !Ready() || mirror_->lock()) return;
  Txn txn;
  txn.compare = {Compare::Create(keys_.lock_key, CompareResult::kEqual, 0,
                                 PrefixEnd(keys_.grants_prefix))};
  for (const auto& [rev, key] : head) {
    txn.compare.push_back(Compare::Create(key, CompareResult::kEqual, rev));
    txn.success.push_back(Op::Delete(key));
  }
  spdlog::warn(
      "etcd store: {} waiter(s) of other replicas stayed ahead of ours for {} ms while the lock "
      "was free (their replica is cut off from etcd?): removing them from the queue",
      head.size(), store_.queue_stall.count());
  stalled_removed_ += head.size();
  etcd_->DoTxn(std::move(txn), [this, a = std::weak_ptr<bool>(alive_)](StatusOr<TxnResponse> r) {
    if (!Alive(a)) return;
    if (!r.ok()) return (void)CallFailed(r.status());
    Pump();  // the watch shows the deletes too; this re-arms the timer if the head is new
  });
}

// ---- release ------------------------------------------------------------------------------

void EtcdLockService::ReadLock(std::function<void(StatusOr<std::optional<EtcdRecord>>)> done) {
  etcd_->Range(
      {.key = keys_.lock_key, .range_end = PrefixEnd(keys_.grants_prefix)},
      [this, done = std::move(done), a = std::weak_ptr<bool>(alive_)](StatusOr<RangeResponse> r) {
        if (!Alive(a)) return;
        if (!r.ok()) return done(CallFailed(r.status()));
        // One key at most (grants need an empty range); else the newest.
        std::optional<EtcdRecord> rec;
        for (const KeyValue& kv : r->kvs) {
          if (!kv.undecodable.empty()) continue;
          EtcdRecord k = mirror_->ParseRecord(kv);
          if (!rec || (rec->foreign && !k.foreign) || k.token > rec->token) rec = std::move(k);
        }
        done(std::move(rec));
      });
}

Status EtcdLockService::NotHeld(const std::string& id) const {
  return NotFound("lock id " + Redact(id) +
                  " does not hold the lock (wrong, expired or already released)");
}

void EtcdLockService::Release(std::string_view id_view, StatusDone done) {
  if (stopped_) return done(Unavailable("tokenmgr is shutting down"));
  // Tried even while a probe or call says etcd is down: the txn's compare decides, and a
  // release refused here would keep the lock held until its lease ends (the next member may
  // well answer).
  ReleaseCall call{std::string(id_view), 3, std::make_shared<StatusDone>(std::move(done)),
                   time_.Now() + store_.timeout * 2};
  const std::optional<EtcdRecord>& lock = mirror_->lock();
  if (lock && !lock->foreign && lock->mod_revision > 0 && ConstantTimeEquals(lock->id, call.id)) {
    // This replica granted it or watched it: try that version at once (no read first). If the
    // key changed meanwhile, the txn's compare fails and the attempts below read etcd.
    return ReleaseTxn(*lock, std::move(call));
  }
  ReleaseAttempt(std::move(call));
}

void EtcdLockService::ReleaseAttempt(ReleaseCall call) {
  ReadLock([this, call = std::move(call)](StatusOr<std::optional<EtcdRecord>> cur) mutable {
    if (!cur.ok()) return RetryRelease(std::move(call), cur.status());
    if (!*cur || (*cur)->foreign || !ConstantTimeEquals((*cur)->id, call.id)) {
      return Reply(call, NotHeld(call.id));
    }
    ReleaseTxn(**cur, std::move(call));
  });
}

void EtcdLockService::RetryRelease(ReleaseCall call, Status error) {
  // "no leader" is a refusal before the request was processed (etcd_client.h): nothing
  // applied, so the release can be sent again once etcd has elected a leader. A release that
  // fails holds the lock until its lease ends, which a new leader restarts.
  const bool refused = error.message().find("no leader") != std::string::npos;
  if (stopped_ || !refused || time_.Now() >= call.retry_until) return Reply(call, error);
  release_retries_.push_back(std::move(call));
  if (!release_retry_timer_->armed()) release_retry_timer_->Arm(kReleaseRetry);
}

void EtcdLockService::RetryReleases() {
  for (ReleaseCall& call : std::exchange(release_retries_, {})) {
    if (stopped_) {
      Reply(call, Unavailable("tokenmgr is shutting down"));
      continue;
    }
    ReleaseAttempt(std::move(call));
  }
}

void EtcdLockService::Reply(const ReleaseCall& call, Status s) {
  if (StatusDone done = std::exchange(*call.done, nullptr)) done(std::move(s));
}

void EtcdLockService::ChaseRelease(const EtcdRecord& rec, const ReleaseCall& call) {
  // Until the lock's lease has surely ended: TTL + 1 s from its last grant or renewal (at most
  // from now), restarted once by an election.
  SteadyTime until = time_.Now() + std::chrono::seconds(rec.ttl_s + 1) + store_.timeout * 2;
  chase_->Sent(rec.key, rec.mod_revision, until,
               [this, call, rec, a = std::weak_ptr<bool>(alive_)] {
                 if (!Alive(a)) return;
                 ++counters_.releases;
                 mirror_->EraseGrant(rec.key, rec.mod_revision);
                 Reply(call, Status::Ok());
                 Pump();
               });
}

// Deletes the lock's key if it is still the version `rec` (read from etcd or the mirror). When
// this replica has the oldest waiter, the same txn hands the lock to it.
void EtcdLockService::ReleaseTxn(EtcdRecord rec, ReleaseCall call) {
  ChaseRelease(rec, call);  // from now: taking the handoff's lease may be a call that sticks
  WaiterPtr next = OldestWaiter();
  if (!next || next->trying) return ReleaseCommit(std::move(rec), std::move(call), nullptr, {});
  next->trying = true;  // Pump() leaves it alone until this txn is answered
  leases_->Take(next->ttl, [this, rec = std::move(rec), call = std::move(call), next,
                            a = std::weak_ptr<bool>(alive_)](StatusOr<Taken> lease) mutable {
    if (!Alive(a)) return;
    if (!lease.ok() || next->finished) {
      next->trying = false;
      if (lease.ok()) leases_->Spare(next->ttl, lease->id);
      next = nullptr;  // release alone; the queue grants as before
      Pump();
    }
    ReleaseCommit(std::move(rec), std::move(call), std::move(next),
                  lease.ok() ? *lease : Taken{});
  });
}

void EtcdLockService::ReleaseCommit(EtcdRecord rec, ReleaseCall call, WaiterPtr next,
                                    Taken lease, bool retried) {
  GrantAttempt handoff{next, "", "", next ? lease : Taken{}};
  Txn txn;
  txn.compare = {Compare::Mod(rec.key, CompareResult::kEqual, rec.mod_revision)};
  txn.success = {Op::Delete(rec.key)};
  if (next) {
    // Granted only if `next` is still queued and nobody anywhere queued before it. Every compare
    // of a txn, nested ones included, sees the store as it was before the txn.
    handoff.key = GrantKeyAfter(rec.key);
    handoff.id = NewUuidV4();
    Txn grant;
    // The new grant key must not exist: a put would keep an existing key's create revision (the
    // token) and overwrite whatever is there (e.g. a foreign record, which blocks grants).
    grant.compare = {Compare::Create(next->key, CompareResult::kEqual, next->rev),
                     Compare::Value(keys_.epoch_key, mirror_->epoch_raw()),
                     Compare::Create(handoff.key, CompareResult::kEqual, 0)};
    std::vector<Compare> older = NoOlderWaiterElsewhere(next->rev);
    grant.compare.insert(grant.compare.end(), older.begin(), older.end());
    grant.success = GrantOps(handoff.key,
                             LockValue(handoff.id, next->holder, next->ttl, 0, mirror_->epoch()),
                             lease.id, next->key);
    txn.success.push_back(Op::Nested(std::move(grant)));
  }
  // Waiters queued meanwhile get their keys from this txn, whatever its compare says.
  auto taken = std::make_shared<Enqueues>();
  std::vector<Op> puts = TakeEnqueues(*taken);
  txn.success.insert(txn.success.end(), puts.begin(), puts.end());
  txn.failure = std::move(puts);
  lock::Seconds ttl = next ? next->ttl : lock::Seconds(0);
  ++releases_in_flight_;
  if (retried) ChaseRelease(rec, call);  // ReleaseTxn chased the first try
  leases_->TxnOnLease(std::move(txn), handoff.lease, ttl,
                      [this, rec, call = std::move(call), handoff, taken, retried,
                       a = std::weak_ptr<bool>(alive_)](StatusOr<TxnResponse> r,
                                                        bool lease_ok) mutable {
                        if (!Alive(a)) return;
                        --releases_in_flight_;
                        ArmEnqueueFlush();  // for the waiters that came meanwhile
                        OnReleaseTxn(std::move(rec), std::move(call), handoff, taken, retried,
                                     std::move(r), lease_ok);
                      });
}

void EtcdLockService::OnReleaseTxn(EtcdRecord rec, ReleaseCall call, const GrantAttempt& handoff,
                                   std::shared_ptr<Enqueues> taken, bool retried,
                                   StatusOr<TxnResponse> r, bool lease_ok) {
  const WaiterPtr& next = handoff.w;
  const lock::Seconds ttl = next ? next->ttl : lock::Seconds(0);
  if (next) next->trying = false;
  if (!r.ok() && r.status().code() == StatusCode::kNotFound && !retried) {
    // Refused, not applied: a lease it names is gone. Again, without the handoff.
    if (next) leases_->Forget(handoff.lease.id);
    std::vector<WaiterPtr> again;
    for (const auto& [w, k] : *taken) {
      if (!w->finished) again.push_back(w);
    }
    to_enqueue_.insert(to_enqueue_.begin(), again.begin(), again.end());
    return ReleaseCommit(std::move(rec), std::move(call), nullptr, {}, /*retried=*/true);
  }
  if (r.ok() && !taken->empty()) Enqueued(*taken, r->revision);
  if (r.ok() && r->succeeded) chase_->Settled(rec.key);
  if (!r.ok()) chase_->Failed(rec.key);  // outcome unknown: the chase goes on
  if (!r.ok()) {  // CallFailed marks etcd down, which fails every waiter, `taken` included
    if (next) leases_->Revoke(handoff.lease.id);  // outcome unknown: undo a possible handoff
    return RetryRelease(std::move(call), CallFailed(r.status()));
  }
  if (!r->succeeded) {
    if (next && lease_ok) leases_->Spare(ttl, handoff.lease.id);  // unused by the txn
    if (next && !lease_ok) leases_->Revoke(handoff.lease.id);
    Pump();  // a handoff attempt (`trying`) may have hidden the lock's end from Pump()
    // A chase of this release may have deleted the key first (its answer may still be on its
    // way): the chase says, then this looks again.
    return chase_->NotApplied(rec.key, [this, call, a = std::weak_ptr<bool>(alive_)](
                                           bool unknown) mutable {
      if (!Alive(a) || Replied(call)) return;
      if (unknown) {
        return Reply(call, Unavailable("lock store (etcd): the release's outcome is unknown"));
      }
      // Changed under us (expired, or renewed concurrently), or the mirror was behind.
      if (call.attempts_left <= 1) return Reply(call, NotHeld(call.id));
      --call.attempts_left;
      ReleaseAttempt(std::move(call));
    });
  }
  ++counters_.releases;
  leases_->Spare(lock::Seconds(rec.ttl_s), rec.lease);  // no key is bound to it any more
  mirror_->EraseGrant(rec.key, rec.mod_revision);
  if (next) {
    bool handed = r->responses.size() > 1 && r->responses[1].succeeded;
    if (!handed) {
      leases_->Spare(ttl, handoff.lease.id);  // `next` was not the oldest after all
    } else if (!lease_ok) {
      leases_->Revoke(handoff.lease.id);  // its lease may end early: undo the grant
      Finish(next, Unavailable("lock store (etcd): could not refresh the lock's lease"));
    } else {
      Granted(next, handoff.key, handoff.id, handoff.lease.id, r->revision, true);
    }
  }
  Reply(call, Status::Ok());
  Pump();
}

// ---- renew --------------------------------------------------------------------------------

void EtcdLockService::Renew(std::string id, lock::Seconds ttl, GrantDone done) {
  if (stopped_) return done(Unavailable("tokenmgr is shutting down"));
  // Tried even while etcd looks down, like a release: it reads the lock from etcd first.
  if (maintenance_->nospace()) return done(Unavailable(EtcdMaintenance::kNoSpaceMessage));
  RenewAttempt({std::move(id), ttl, 3, std::move(done)});
}

void EtcdLockService::RenewAttempt(RenewCall call) {
  ReadLock([this, call = std::move(call), a = std::weak_ptr<bool>(alive_)](
               StatusOr<std::optional<EtcdRecord>> cur) mutable {
    if (!cur.ok()) return call.done(cur.status());
    if (!*cur || (*cur)->foreign || !ConstantTimeEquals((*cur)->id, call.id)) {
      return call.done(NotHeld(call.id));
    }
    EtcdRecord rec = **cur;
    lock::Seconds ttl = call.ttl;
    leases_->Grant(ttl, [this, rec = std::move(rec), call = std::move(call),
                         a](StatusOr<Taken> lease) mutable {
      if (Alive(a)) RenewOnLease(std::move(rec), std::move(call), std::move(lease));
    });
  });
}

void EtcdLockService::RenewOnLease(EtcdRecord rec, RenewCall call, StatusOr<Taken> lease) {
  if (!lease.ok()) return call.done(CallFailed(lease.status()));
  const int64_t lease_id = lease->id;
  Txn txn;
  txn.compare = {Compare::Mod(rec.key, CompareResult::kEqual, rec.mod_revision)};
  txn.success = {
      Op::Put(rec.key, LockValue(call.id, rec.holder, call.ttl, rec.acquired_ms, rec.epoch),
              lease_id)};
  etcd_->DoTxn(std::move(txn), [this, rec = std::move(rec), call = std::move(call), lease_id,
                                a = std::weak_ptr<bool>(alive_)](StatusOr<TxnResponse> r) mutable {
    if (Alive(a)) OnRenewTxn(std::move(rec), std::move(call), lease_id, std::move(r));
  });
}

void EtcdLockService::OnRenewTxn(EtcdRecord rec, RenewCall call, int64_t lease_id,
                                 StatusOr<TxnResponse> r) {
  if (!r.ok()) {
    // Unknown outcome; the old lease still bounds the lock if the txn did not apply.
    leases_->Revoke(lease_id);
    return call.done(CallFailed(r.status()));
  }
  if (!r->succeeded) {
    leases_->Revoke(lease_id);
    if (call.attempts_left <= 1) return call.done(NotHeld(call.id));
    --call.attempts_left;
    return RenewAttempt(std::move(call));
  }
  ++counters_.renewals;
  leases_->Revoke(rec.lease);  // the key is bound to the new lease now
  const std::optional<EtcdRecord>& lock = mirror_->lock();
  if (lock && lock->key == rec.key && lock->mod_revision == rec.mod_revision) {
    // Read-your-writes; the watch confirms it.
    EtcdRecord now = *lock;
    now.ttl_s = call.ttl.count();
    now.expires_ms = UnixMillis(time_.WallNow()) + duration_cast<Millis>(call.ttl).count();
    now.lease = lease_id;
    now.mod_revision = r->revision;
    mirror_->PutGrant(now);
  }
  call.done(lock::Grant{call.id, rec.token, call.ttl, duration_cast<Millis>(call.ttl)});
}

// ---- views --------------------------------------------------------------------------------

Status EtcdLockService::BusyError(const std::string& prefix,
                                  const std::optional<EtcdRecord>& lock) const {
  std::string msg = prefix;
  if (lock && lock->foreign) {
    msg += ": held by a foreign record tokenmgr did not write, etcd key " + Printable(lock->key) +
           " (it ends when deleted or when its etcd lease expires)";
  } else if (lock) {
    int64_t left = std::max<int64_t>(0, lock->expires_ms - UnixMillis(time_.WallNow()));
    msg += ": held by '" + lock->holder + "', lease ends in " + std::to_string(left) + " ms";
  } else {
    msg += ": earlier waiters are queued";
  }
  return FailedPrecondition(msg);
}

void EtcdLockService::GetView(ViewDone done) {
  // Synchronous by contract with the metrics page, which reads the view in place.
  // Reads still work under NOSPACE: the status page shows the holder.
  if (!Synced()) return done(Unavailable("lock store (etcd) unavailable: " + health_->why()));
  lock::View v;
  v.waiters = mirror_->waiters().size();
  v.last_token = mirror_->last_token();
  if (const std::optional<EtcdRecord>& lock = mirror_->lock()) {
    int64_t now = UnixMillis(time_.WallNow());
    v.held = true;
    v.holder = lock->holder;
    v.token = lock->token;
    v.ttl = lock::Seconds(lock->ttl_s);
    v.acquired_at = WallTime(std::chrono::milliseconds(lock->acquired_ms));
    v.expires_in = Millis(std::max<int64_t>(0, lock->expires_ms - now));
    v.held_for = Millis(std::max<int64_t>(0, now - lock->acquired_ms));
  }
  done(std::move(v));
}

std::string EtcdLockService::NotReadyReason() const {
  if (stopped_) return "tokenmgr is shutting down";
  if (maintenance_->nospace()) return EtcdMaintenance::kNoSpaceMessage;
  if (!health_->healthy()) return "lock store (etcd) unavailable: " + health_->why();
  if (!mirror_->synced()) return "lock store (etcd): reading its state";
  return mirror_->epoch() == 0 ? "lock store (etcd): reading the token epoch" : "";
}

void EtcdLockService::Shutdown() {
  if (stopped_) return;
  FailAllWaiters(Unavailable("tokenmgr is shutting down"));
  stopped_ = true;
  health_->Stop();
  mirror_->Stop();
  recheck_timer_->Disarm();
  enqueue_timer_->Disarm();
  stall_timer_->Disarm();
  release_retry_timer_->Disarm();
  RetryReleases();  // answered: shutting down
  chase_->Stop();
  maintenance_->Stop();
  leases_->Stop();
  session_->Stop(/*revoke=*/health_->healthy());
}

}  // namespace lm::store
