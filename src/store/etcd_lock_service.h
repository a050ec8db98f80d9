// EtcdLockService: the lock kept in etcd, so several tokenmgr replicas share one mutex
// (STORE=etcd). Not thread-safe: runs on one io_context thread, like the embedded store.
// This file is the lock algorithm; its parts: EtcdApi (etcd_api.h, the typed calls; a fake for
// tests in store/testing/), EtcdMirror (etcd_mirror.h, the watch mirror), EtcdLeasePool and
// EtcdSession (etcd_leases.h), EtcdHealth (etcd_health.h), EtcdMaintenance (alarms, compaction).
//
//   auto s = EtcdLockService::Open(io, RealTimeSystem::Get(), options,
//                                  {.endpoints = {"http://etcd:2379"}, .prefix = "/tokenmgr/"});
//   s.value()->Acquire({"node-1", 10s, 5s}, [](StatusOr<lock::Grant> g) { ... });
//
// Keys under `prefix`:
//   lock/a, lock/b  the grant: {"id","holder","ttl","acquired_unix_ms","expires_unix_ms"}, bound
//                   to an etcd lease whose expiry is the lock's expiry; a handoff moves it from
//                   one name to the other (versions before wrote lock/<uuid>). At most one key
//                   exists in the lock range [lock, lock0) (the grant, or an old-layout `lock`
//                   key).
//   waiters/\x02r/<replica>/<uuid>  one per waiting client, bound to this replica's session
//                   lease (kept alive while the replica lives; a crashed replica's waiters vanish
//                   with it). <replica>: a uuid per process. Versions before it wrote
//                   waiters/<uuid> (sorted after these); both are waiters to every version.
//   waiters/        the fence (empty, no lease), created by the first grant: tokenmgr versions
//                   before grant keys count it as a waiter older than their own, so they can
//                   never grant while it exists.
//   waiters/\x01epoch  the upgrade fence (empty, no lease), written with the epoch: versions
//                   before epochs (waiter range from waiters/\0) see a waiter older than theirs
//                   and never grant. Our own waiter compares start at waiters/\x02.
//   epoch           the token epoch: decimal wall-clock microseconds when it was created (by the
//                   first replica that found none: new or wiped etcd). Grant values carry it.
//   lock            old layout (one key, create revision = token): honoured until released (by
//                   its id) or expired; grants wait for it like for any grant.
// Contract:
// - Grant is a txn: lock range empty AND (no waiter at all | every waiter key of other
//   replicas, and foreign ones, was created no earlier than ours), so waiters across all
//   replicas are served in create-revision (arrival) order. "No waiter at all" leaves out this
//   replica's own key range when it queues nobody (only keys of waiters it is done with are
//   there, which etcd would read until the next compaction). A replica serves its own waiters in
//   its local arrival order (waiters queued in one txn share a create revision), so its compares
//   leave its own key range out: etcd reads every key of a range compare, and under contention
//   this replica's own queue is most of them.
// - The fencing token is the epoch + the grant key's create revision (grants from before epochs:
//   the bare revision). Every grant txn compares the epoch's value, so no replica grants under
//   an epoch etcd no longer holds. Tokens increase across replicas and restarts, and a wiped
//   etcd starts a new epoch from the clock, above every earlier token (docs/architecture.md).
// - Foreign data (a value under the prefix tokenmgr did not write, of any shape or encoding) is
//   never an exception: it is logged once per key and revision, counted (foreign_records,
//   StoreWarning()). A foreign record in the lock range blocks grants (it may be another
//   version's grant) until deleted or its etcd lease ends; a foreign waiter key holds up the
//   waiters queued after it the same way. An unusable epoch is replaced by a new clock epoch.
// - Release is a txn conditioned on the grant key's mod revision (from the mirror when it shows
//   the caller's id, else read from etcd). When this replica has the oldest waiter (its mirror
//   knows no older one), the same txn grants the lock to it: a nested txn, applied only if that
//   waiter's key still exists, no waiter key is older and the next grant key does not exist,
//   deletes it and creates the next grant key. Nested compares see the store before the txn. So
//   a handoff to a local waiter is one raft write; to a waiter on another replica it is two
//   (release, then that replica's grant).
// - Waiter keys are not written one by one: the replica's next release txn carries the puts of
//   every waiter queued since (in both branches, so whatever its compare says), or, within
//   kEnqueueBatch, one txn writes them; while a release txn of this replica is in flight, the
//   kEnqueueBatch starts at its answer (under contention the new holder's release, which comes
//   right after it, carries them: one raft write per handoff, not two). Until then a new
//   request queues behind them.
// - Renew is a txn on the grant key's mod revision that rebinds it to a fresh lease with the new
//   TTL (token unchanged).
// - Leases: a lock's lease is granted for TTL + 1 s. A lease freed by a release (no key bound to
//   it any more) or by a grant txn that did not apply is kept as the spare for its TTL and reused
//   by the next grant: as it is when it still lives at least TTL + 250 ms (no etcd call), else
//   with a keepalive in parallel with the grant txn (or before it, when it may not outlive the
//   txn). A grant is answered only if its lease lives at least the TTL from the answer, else it
//   is undone (lease revoked, 503). So a lock lasts between its TTL and TTL + 1 s. A write whose
//   outcome is unknown never frees its lease for reuse (it is revoked). A txn etcd refuses
//   because a lease it names is gone (e.g. a spare revoked from outside) is retried once.
// - Waiters are woken by a watch on the prefix (never by polling the lock).
// - A stalled head of the queue is removed: when the lock is free (in the mirror) and waiter
//   keys older than this replica's oldest waiter stay unchanged for queue_stall, this replica
//   deletes them in a txn that applies only if the lock range is still empty and each is still
//   the key it saw (create revision). Foreign waiter keys are never removed this way. A
//   replica whose waiter's key was removed queues that waiter again, at the back, when its
//   mirror shows the key gone. Fairness, not safety, depends on queue_stall: a grant still
//   needs an empty lock range.
// - A grant key deleted at or after its expires_unix_ms (by this replica's clock) expired; the
//   replica that made the grant tells OnLeaseExpired's observer.
// - When etcd does not answer (down, no quorum), lock fails UNAVAILABLE at once, Ready() is
//   false, waiters fail UNAVAILABLE; probes every second bring it back by itself. Release and
//   renew are still tried (they are compares on etcd's state, and a release refused on a
//   guess would keep the lock held until its lease ends); they fail UNAVAILABLE when etcd does
//   not answer them. A release refused for "no leader" (not applied: an election, e.g. when a
//   partition heals) is sent again every 250 ms for up to twice the timeout. A release txn not
//   answered within 500 ms, or whose outcome is unknown, is chased (EtcdReleaseChase): a txn
//   deleting that version of the grant key (mod revision compare, no handoff) is sent every
//   250 ms until one is answered or the lock's lease has surely ended, so a release stuck in a
//   cut (TCP retransmission) or lost in an election ends the lock as soon as etcd answers.
// - Partitions (docs/architecture.md, "Network partitions"): a probe unanswered within the
//   timeout makes the store not ready (EtcdHealth); the watch follows the client to another
//   member (EtcdMirror::FollowMember); this replica's waiter keys hold the FIFO of the other
//   replicas at most session_ttl after its last keepalive reached etcd (plus an etcd election
//   when the cut took the leader, whose successor restarts every lease). A write
//   whose outcome is unknown has its lease revoked: a grant is never made on a guess.
// - GetView answers at once from a mirror kept by the watch: on another replica it can lag a
//   write by the watch's delivery delay (milliseconds). Lock decisions are etcd compares; the
//   mirror only picks which txn to try.
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/time_system.h"
#include "lock/lock_service.h"
#include "store/etcd_api.h"
#include "store/etcd_client.h"
#include "store/etcd_health.h"
#include "store/etcd_leases.h"
#include "store/etcd_maintenance.h"
#include "store/etcd_mirror.h"
#include "store/etcd_release_chase.h"

namespace lm::store {

struct EtcdStoreOptions {
  std::vector<std::string> endpoints;  // http(s)://host:port
  EtcdTlsFiles tls;                    // for https:// endpoints
  EtcdProtocol protocol = EtcdProtocol::kGrpc;
  std::string prefix = "/tokenmgr/";
  std::chrono::milliseconds timeout{2000};
  lock::Seconds session_ttl{5};       // how long a dead replica's waiters block the queue
  // How long the oldest waiter keys of other replicas may stay at the head of the queue while
  // the lock is free and this replica has a waiter behind them, before this replica removes
  // them (their replica is cut off, or they outlived their waiter). A replica that works
  // grants its waiter within milliseconds of the lock becoming free. 300 ms (ETCD_QUEUE_STALL_MS):
  // 1 s left the majority side of a partition that flaps every second with about a third of its
  // rate (tests/partition, docs/operations.md "Network partitions").
  std::chrono::milliseconds queue_stall{300};
  std::chrono::milliseconds probe_interval{1000};
  EtcdMaintenanceOptions maintenance;  // alarms and compaction (etcd_maintenance.h)
};

class EtcdLockService final : public lock::LockService {
 public:
  // Fails only on bad options; etcd being down at start is not an error (Ready() is false).
  static StatusOr<std::unique_ptr<EtcdLockService>> Open(boost::asio::io_context& io,
                                                         TimeSystem& time, lock::Options options,
                                                         EtcdStoreOptions store);
  // The same on a given EtcdApi (a FakeEtcd client in tests); store.endpoints and store.tls are
  // not used.
  static StatusOr<std::unique_ptr<EtcdLockService>> Create(boost::asio::io_context& io,
                                                           TimeSystem& time,
                                                           lock::Options options,
                                                           EtcdStoreOptions store,
                                                           std::unique_ptr<EtcdApi> etcd);
  ~EtcdLockService() override;

  CancelFn Acquire(lock::AcquireRequest request, GrantDone done) override;
  void Release(std::string_view id, StatusDone done) override;
  void Renew(std::string id, lock::Seconds ttl, GrantDone done) override;
  void GetView(ViewDone done) override;
  lock::Counters CountersSnapshot() const override;
  // Not ready under etcd's NOSPACE alarm either (writes are refused), nor before the token
  // epoch is known; NotReadyReason says why.
  bool Ready() const override {
    return Synced() && mirror_->epoch() != 0 && !maintenance_->nospace();
  }
  std::string StoreWarning() const override { return mirror_->ForeignWarning(); }
  std::string NotReadyReason() const override;
  // Only the replica that made the grant tells of its expiry (each replica's watch sees it), so
  // that the history has it once. A replica restarted since the grant does not tell of it.
  void OnLeaseExpired(std::function<void(const lock::ExpiredLease&)> observer) override;
  // Prometheus text of the etcd upkeep (tokenmgr_store_alarm, database size, compactions) and
  // of partitions: tokenmgr_store_stalled_waiters_removed_total (waiter keys of other replicas
  // removed from the head of the queue, see queue_stall) and tokenmgr_store_releases_chased_total
  // (releases that only a later copy got to etcd, see EtcdReleaseChase).
  std::string StoreMetrics() const;
  void Shutdown() override;
  const lock::Options& options() const override { return options_; }

 private:
  struct Waiter;
  using WaiterPtr = std::shared_ptr<Waiter>;
  using Taken = EtcdLeasePool::Taken;
  // One release or renew in progress: its arguments, kept across its etcd calls.
  struct ReleaseCall {
    std::string id;
    int attempts_left = 3;
    // Shared with the chase of its txn (EtcdReleaseChase), which may answer it first; Reply()
    // runs it once.
    std::shared_ptr<StatusDone> done;
    SteadyTime retry_until;  // sent again after "no leader" until then
  };
  struct RenewCall {
    std::string id;
    lock::Seconds ttl{0};
    int attempts_left = 3;
    GrantDone done;
  };
  // A grant txn in flight (TryGrant or the handoff of a release).
  struct GrantAttempt {
    WaiterPtr w;
    std::string id, key;  // the new grant's id and key
    Taken lease;
  };
  using Enqueues = std::vector<std::pair<WaiterPtr, std::string>>;  // waiter, key

  EtcdLockService(boost::asio::io_context& io, TimeSystem& time, lock::Options options,
                  EtcdStoreOptions store, std::unique_ptr<EtcdApi> etcd);
  void Start();
  bool Synced() const { return health_->healthy() && mirror_->synced() && !stopped_; }
  void OnEtcdUp();
  void OnEtcdDown(const std::string& why);
  // The unavailable answer after a failed etcd call (also marks etcd unhealthy).
  Status CallFailed(const Status& s);
  void Pump();
  // Arms the stall timer while the head of the queue is other replicas' keys and the lock is
  // free; RemoveStalledHead() deletes them when they have not moved for queue_stall.
  void WatchQueueHead(bool lock_free);
  // Queues again (at the back) this replica's waiters whose keys are gone from etcd while they
  // wait (another replica removed them as stalled): a grant compare needs the waiter's key.
  void RequeueRemoved();
  // queued_ and queued_keys_: `w` is queued (its key written at w.rev) / no longer is.
  void Queued(const Waiter& w);
  void Unqueue(const Waiter& w);
  void RemoveStalledHead();

  // ---- grants ----
  // A txn refused because a lease it names is gone (revoked from outside, e.g. a spare lease)
  // did not apply: TryGrant and the release retry once with a fresh lease.
  void TryGrant(WaiterPtr w, bool fast_path, bool retried = false);
  void GrantTxn(WaiterPtr w, bool fast_path, bool retried, Taken lease);
  void OnGrantTxn(const GrantAttempt& g, bool fast_path, bool retried, StatusOr<TxnResponse> r,
                  bool lease_ok);
  // The compares of a grant to this replica's waiter created at `rev`: no waiter key of another
  // replica (or foreign) is older. This replica's own keys are left out (served in local order).
  // The waiter range without this replica's own keys: [begin, own) and [own end, end).
  std::array<std::pair<std::string, std::string>, 2> OtherReplicasWaiterRanges() const;
  std::vector<Compare> NoOlderWaiterElsewhere(int64_t rev) const;
  // The key of the next grant: lock/a, or lock/b after lock/a (a handoff deletes one and creates
  // the other in one txn). Deleted keys stay in etcd's index until compaction and every grant's
  // range compare walks them: two names keep the lock range two keys long. A re-created key
  // has a new create revision, so tokens still grow.
  std::string GrantKeyAfter(const std::string& current) const;
  // This replica's oldest queued waiter if the mirror knows no older one anywhere, else null.
  WaiterPtr OldestWaiter() const;
  // The ops of a txn that grants the lock: create grant key `key` on `lease`, delete the
  // waiter's key (if queued), create the fence if absent.
  std::vector<Op> GrantOps(const std::string& key, const std::string& value, int64_t lease,
                           const std::string& waiter_key) const;
  // Records a grant to `w` made by a txn that applied at revision `token` (its grant key's
  // create revision) and answers `w`; undoes it (revokes `lease`) if `w` went away.
  void Granted(const WaiterPtr& w, const std::string& key, const std::string& id, int64_t lease,
               int64_t revision, bool queued);

  // ---- the queue ----
  // Queues `w`: its waiter key is written by the next release txn of this replica or, at the
  // latest kEnqueueBatch later, by one txn for every waiter queued meanwhile.
  void Enqueue(WaiterPtr w);
  // Arms enqueue_timer_ (kEnqueueBatch) if waiter keys wait to be written. The timer writes
  // them only while no release txn of this replica is in flight; else the answer re-arms it.
  void ArmEnqueueFlush();
  // Writes the waiter keys still to be written, in one txn; waits (re-arms) while this
  // replica's fast-path grant txn is in flight.
  void FlushEnqueues();
  // A request of this replica is trying to take the free lock (its grant txn in flight).
  bool FastPathInFlight() const;
  // The puts of the waiter keys still to be written, for a txn; moves their waiters to `taken`.
  std::vector<Op> TakeEnqueues(Enqueues& taken);
  // The txn that wrote the keys of `taken` applied at `revision`.
  void Enqueued(const Enqueues& taken, int64_t revision);
  void Finish(const WaiterPtr& w, StatusOr<lock::Grant> result);
  void FailAllWaiters(const Status& why);

  // ---- release / renew ----
  void ReadLock(std::function<void(StatusOr<std::optional<EtcdRecord>>)> done);
  void ReleaseAttempt(ReleaseCall call);
  // Answers `call` with `error`, or, when etcd refused it for want of a leader (not applied)
  // and retry_until is not reached, sends it again kReleaseRetry later.
  void RetryRelease(ReleaseCall call, Status error);
  void RetryReleases();
  static void Reply(const ReleaseCall& call, Status s);
  static bool Replied(const ReleaseCall& call) { return !*call.done; }
  // The release txn for `rec` is being sent: chase it (EtcdReleaseChase) until it is answered.
  void ChaseRelease(const EtcdRecord& rec, const ReleaseCall& call);
  void ReleaseTxn(EtcdRecord rec, ReleaseCall call);
  // The release txn; with `next`, it also hands the lock to `next` on `lease` in the same txn.
  void ReleaseCommit(EtcdRecord rec, ReleaseCall call, WaiterPtr next, Taken lease,
                     bool retried = false);
  void OnReleaseTxn(EtcdRecord rec, ReleaseCall call, const GrantAttempt& handoff,
                    std::shared_ptr<Enqueues> taken, bool retried, StatusOr<TxnResponse> r,
                    bool lease_ok);
  void RenewAttempt(RenewCall call);
  void RenewOnLease(EtcdRecord rec, RenewCall call, StatusOr<Taken> lease);
  void OnRenewTxn(EtcdRecord rec, RenewCall call, int64_t lease, StatusOr<TxnResponse> r);

  // The mirror saw a grant's key go at or after its expiry.
  void OnGrantExpired(const EtcdRecord& rec);
  Status BusyError(const std::string& prefix, const std::optional<EtcdRecord>& lock) const;
  std::string LockValue(const std::string& id, const std::string& holder, lock::Seconds ttl,
                        int64_t acquired_ms, uint64_t epoch) const;
  Status NotHeld(const std::string& id) const;
  // False once this object is gone. Callbacks still run after Shutdown(), so that every `done`
  // runs exactly once; nothing new is started then.
  bool Alive(const std::weak_ptr<bool>& a) const { return !a.expired(); }

  boost::asio::io_context& io_;
  TimeSystem& time_;
  lock::Options options_;
  EtcdStoreOptions store_;
  EtcdKeys keys_;
  // waiters/\x02r/<uuid>/: this replica's waiter keys (a uuid per process); older versions wrote
  // waiters/<uuid>, outside it.
  std::string own_waiters_prefix_;
  std::unique_ptr<EtcdApi> etcd_;  // before the parts below, which use it
  std::unique_ptr<EtcdLeasePool> leases_;
  std::unique_ptr<EtcdSession> session_;
  std::unique_ptr<EtcdMirror> mirror_;
  std::unique_ptr<EtcdHealth> health_;
  std::unique_ptr<EtcdMaintenance> maintenance_;
  std::unique_ptr<EtcdReleaseChase> chase_;

  std::map<uint64_t, WaiterPtr> local_;  // this replica's waiters by local id
  // Those of local_ whose key is written, neither granted nor finished: (rev, local id) and
  // key -> local id. No per-event scan of local_ (thousands of waiters).
  std::set<std::pair<int64_t, uint64_t>> queued_;
  std::map<std::string, uint64_t> queued_keys_;
  std::vector<uint64_t> removed_;  // of queued_: the watch showed their key deleted
  bool requeue_scan_ = false;      // the mirror read everything again: look at every waiter
  std::vector<WaiterPtr> to_enqueue_;    // their waiter key not written yet, by local id
  std::weak_ptr<Waiter> fast_path_;      // the last request that tried the fast path
  bool enqueue_armed_ = false;           // enqueue_timer_ will flush them
  int releases_in_flight_ = 0;           // release txns sent, not answered yet
  static constexpr std::chrono::milliseconds kEnqueueBatch{5};
  static constexpr size_t kMaxEnqueuesPerTxn = 50;  // etcd --max-txn-ops: 128 by default
  uint64_t next_local_ = 1;
  // The id of the last grant this replica made: grants come one at a time, so a grant that
  // expires was made here if and only if it is this one.
  std::string granted_here_;
  std::shared_ptr<std::function<void(const lock::ExpiredLease&)>> expiry_observer_;

  TimerPtr recheck_timer_, enqueue_timer_, stall_timer_, release_retry_timer_;
  std::vector<ReleaseCall> release_retries_;
  static constexpr std::chrono::milliseconds kReleaseRetry{250};
  static constexpr std::chrono::milliseconds kReleaseHedge{500};  // the first chase
  // The waiter keys (create revision, key) ahead of this replica's oldest waiter when
  // stall_timer_ was armed.
  std::vector<std::pair<int64_t, std::string>> stalled_head_;
  uint64_t stalled_removed_ = 0;  // waiter keys removed by RemoveStalledHead
  bool stopped_ = false;
  lock::Counters counters_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lm::store
