// EtcdLockService: the lock kept in etcd, so several tokenmgr replicas share one mutex
// (STORE=etcd). Not thread-safe: runs on one io_context thread, like the embedded store.
//
//   auto s = EtcdLockService::Open(io, RealTimeSystem::Get(), options,
//                                  {.endpoints = {"http://etcd:2379"}, .prefix = "/tokenmgr/"});
//   s.value()->Acquire({"node-1", 10s, 5s}, [](StatusOr<lock::Grant> g) { ... });
//
// Keys under `prefix`:
//   lock/<uuid>     the grant: {"id","holder","ttl","acquired_unix_ms","expires_unix_ms"}, bound
//                   to an etcd lease whose expiry is the lock's expiry. At most one key exists in
//                   the lock range [lock, lock0) (the grant, or an old-layout `lock` key).
//   waiters/<uuid>  one per waiting client, bound to this replica's session lease (kept alive
//                   while the replica lives; a crashed replica's waiters vanish with it).
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
// - Grant is a txn: lock range empty AND (no waiter at all | every waiter key was created no
//   earlier than ours), so waiters across all replicas are served in create-revision (arrival)
//   order. Waiters of one replica queued in one txn share a create revision; that replica
//   serves them in its local arrival order.
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
//   waiter's key still exists and no waiter key is older, deletes it and creates the next grant
//   key. Nested compares see the store before the txn. So a handoff to a local waiter is one
//   raft write; to a waiter on another replica it is two (release, then that replica's grant).
// - Waiter keys are not written one by one: the replica's next release txn carries the puts of
//   every waiter queued since (in both branches, so whatever its compare says), or, within
//   kEnqueueBatch, one txn writes them. Until then a new request queues behind them.
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
// - When etcd does not answer (down, no quorum), lock/renew/release fail UNAVAILABLE, Ready()
//   is false, waiters fail UNAVAILABLE; probes every second bring it back by itself. A write
//   whose outcome is unknown has its lease revoked: a grant is never made on a guess.
// - GetView answers at once from a mirror kept by the watch: on another replica it can lag a
//   write by the watch's delivery delay (milliseconds). Lock decisions are etcd compares; the
//   mirror only picks which txn to try.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "lock/lock_service.h"
#include "store/etcd_client.h"
#include "store/etcd_maintenance.h"
#include "store/etcd_record.h"

namespace lm::store {

struct EtcdStoreOptions {
  std::vector<std::string> endpoints;  // http(s)://host:port
  EtcdTlsFiles tls;                    // for https:// endpoints
  std::string prefix = "/tokenmgr/";
  std::chrono::milliseconds timeout{2000};
  lock::Seconds session_ttl{5};       // how long a dead replica's waiters block the queue
  std::chrono::milliseconds probe_interval{1000};
  EtcdMaintenanceOptions maintenance;  // alarms and compaction (etcd_maintenance.h)
};

class EtcdLockService final : public lock::LockService {
 public:
  // Fails only on bad options; etcd being down at start is not an error (Ready() is false).
  static StatusOr<std::unique_ptr<EtcdLockService>> Open(boost::asio::io_context& io,
                                                         const Clock& clock, lock::Options options,
                                                         EtcdStoreOptions store);
  ~EtcdLockService() override;

  CancelFn Acquire(lock::AcquireRequest request, GrantDone done) override;
  void Release(std::string_view id, StatusDone done) override;
  void Renew(std::string id, lock::Seconds ttl, GrantDone done) override;
  void GetView(ViewDone done) override;
  lock::Counters CountersSnapshot() const override { return counters_; }
  // Not ready under etcd's NOSPACE alarm either (writes are refused), nor before the token
  // epoch is known; NotReadyReason says why.
  bool Ready() const override { return Synced() && epoch_ != 0 && !maintenance_->nospace(); }
  std::string StoreWarning() const override;
  std::string NotReadyReason() const override;
  // Prometheus text of the etcd upkeep: tokenmgr_store_alarm, database size, compactions.
  std::string StoreMetrics() const { return maintenance_->RenderMetrics(); }
  void Shutdown() override;
  const lock::Options& options() const override { return options_; }

 private:
  struct Record {  // a grant key (or the old layout's lock key) as read from etcd
    std::string key;
    std::string id, holder;
    uint64_t token = 0;  // create revision
    int64_t ttl_s = 0, acquired_ms = 0, expires_ms = 0;
    int64_t lease = 0, mod_revision = 0;
    uint64_t epoch = 0;    // token epoch it was granted under (0: before epochs)
    bool foreign = false;  // not a grant tokenmgr wrote: blocks grants, never released by us
  };
  struct Waiter;

  EtcdLockService(boost::asio::io_context& io, const Clock& clock, lock::Options options,
                  EtcdStoreOptions store, std::unique_ptr<EtcdClient> etcd);
  bool Synced() const { return healthy_ && synced_ && !stopped_; }
  void Resync();
  void ScheduleResync();
  void OnWatch(const nlohmann::json& result);
  void ApplyKv(const nlohmann::json& kv, bool deleted);
  void StartWatch();
  // Writes a new token epoch from the clock when etcd holds none (or an unusable one).
  void CreateEpoch();
  // lock_ = the record of lock_range_ that decides: the newest grant, else a foreign record.
  void SetLockFromRange();
  // Foreign data: counted while present, logged once per key and revision.
  void NoteForeign(const std::string& key, int64_t mod_revision, const std::string& why);
  void ForgetForeign(const std::string& key);
  void Probe();
  void SetHealthy(bool healthy, const std::string& why);
  void Pump();
  // A txn refused because a lease it names is gone (revoked from outside, e.g. a spare lease)
  // did not apply: TryGrant and ReleaseCommit retry once with a fresh lease.
  void TryGrant(std::shared_ptr<Waiter> w, bool fast_path, bool retried = false);
  // This replica's oldest queued waiter if the mirror knows no older one anywhere, else null.
  std::shared_ptr<Waiter> OldestWaiter() const;
  // The ops of a txn that grants the lock: create grant key `key` on `lease`, delete the
  // waiter's key (if queued), create the fence if absent.
  nlohmann::json GrantOps(const std::string& key, const std::string& value, int64_t lease,
                          const std::string& waiter_key) const;
  // Records a grant to `w` made by a txn that applied at revision `token` (its grant key's
  // create revision) and answers `w`; undoes it (revokes `lease`) if `w` went away.
  void Granted(const std::shared_ptr<Waiter>& w, const std::string& key, const std::string& id,
               int64_t lease, int64_t revision, bool queued);
  // Queues `w`: its waiter key is written by the next release txn of this replica or, at the
  // latest kEnqueueBatch later, by one txn for every waiter queued meanwhile.
  void Enqueue(std::shared_ptr<Waiter> w);
  void FlushEnqueues();
  using Enqueues = std::vector<std::pair<std::shared_ptr<Waiter>, std::string>>;  // waiter, key
  // The puts of the waiter keys still to be written, for a txn; moves their waiters to `taken`.
  nlohmann::json TakeEnqueues(Enqueues& taken);
  // The txn that wrote the keys of `taken` applied at `revision`.
  void Enqueued(const Enqueues& taken, int64_t revision);
  void Finish(const std::shared_ptr<Waiter>& w, StatusOr<lock::Grant> result);
  void FailAllWaiters(const Status& why);
  void EnsureSession(std::function<void(Status)> done);
  void KeepSessionAlive();
  void ReadLock(std::function<void(StatusOr<std::optional<Record>>)> done);
  void ReleaseAttempt(std::string id, int attempts_left, StatusDone done);
  void ReleaseTxn(Record rec, std::string id, int attempts_left, StatusDone done);
  struct TakenLease;
  // The release txn; with `next`, it also hands the lock to `next` on `lease` in the same txn.
  void ReleaseCommit(Record rec, std::string id, int attempts_left, std::shared_ptr<Waiter> next,
                     TakenLease lease, StatusDone done, bool retried = false);
  // A lease with `ttl` whose full TTL starts now: the spare one after a keepalive, or a new one;
  // or (refresh = true) a spare known to outlive the grant txn, which the caller must keep
  // alive in parallel with the txn.
  struct TakenLease {
    int64_t id = 0;
    bool refresh = false;
    SteadyTime until;  // the lease lives at least until then (without refresh)
  };
  void TakeLease(lock::Seconds ttl, std::function<void(StatusOr<TakenLease>)> done);
  // Sends `txn`, which binds a key to `lease`; with lease.refresh, keeps the lease alive in
  // parallel. done(result, lease_ok): lease_ok is false when that refresh failed (the lease may
  // end sooner than `ttl`), and then a grant made by the txn must be undone.
  void TxnOnLease(nlohmann::json txn, TakenLease lease, lock::Seconds ttl,
                  std::function<void(StatusOr<nlohmann::json>, bool lease_ok)> done);
  // Notes that `lease` lives at least until `until` (its grant/keepalive's send time + TTL).
  void MarkFresh(int64_t lease, SteadyTime until);
  // Keeps an unused lease for the next grant with this TTL (revokes what it displaces).
  void SpareLease(lock::Seconds ttl, int64_t lease);
  void RenewAttempt(std::string id, lock::Seconds ttl, int attempts_left, GrantDone done);
  void Revoke(int64_t lease);
  Status BusyError(const std::string& prefix, const std::optional<Record>& lock) const;
  // Never fails: a value that is not a grant is a foreign record (logged once).
  Record ParseRecord(const EtcdKv& kv);
  std::string LockValue(const std::string& id, const std::string& holder, lock::Seconds ttl,
                        int64_t acquired_ms, uint64_t epoch) const;
  Status NotHeld(const std::string& id) const;
  // False once this object is gone. Callbacks still run after Shutdown(), so that every `done`
  // runs exactly once; nothing new is started then.
  bool Alive(const std::weak_ptr<bool>& a) const { return !a.expired(); }

  boost::asio::io_context& io_;
  const Clock& clock_;
  lock::Options options_;
  EtcdStoreOptions store_;
  std::unique_ptr<EtcdClient> etcd_;
  std::string lock_key_;        // <prefix>lock: the old layout's lock key; start of the lock range
  std::string grants_prefix_;   // <prefix>lock/: grant keys; the lock range ends at its PrefixEnd
  std::string waiters_prefix_;  // <prefix>waiters/: itself the fence key
  std::string waiters_begin_;   // <prefix>waiters/\x02: the waiter keys' range, fences excluded

  std::string epoch_key_;      // <prefix>epoch: the token epoch (decimal microseconds)
  std::string upgrade_fence_;  // <prefix>waiters/\x01epoch: older replicas see a waiter forever

  // Mirror of etcd, fed by Resync() and the watch.
  std::optional<Record> lock_;
  std::map<std::string, Record> lock_range_;    // every key in the lock range, foreign ones too
  uint64_t epoch_ = 0;                          // 0: none usable yet (not Ready)
  std::string epoch_raw_;                       // its value as stored (grant txns compare it)
  int64_t epoch_mod_ = 0;                       // the epoch key's mod revision (0: absent)
  std::map<std::string, std::string> foreign_;  // key -> why, present now
  std::set<std::pair<std::string, int64_t>> foreign_logged_;  // (key, mod revision) logged
  // (create revision, key); one txn may create several keys of one replica (same revision).
  std::set<std::pair<int64_t, std::string>> waiters_;
  uint64_t last_token_ = 0;
  int64_t revision_ = 0;
  bool synced_ = false;
  bool resyncing_ = false;
  bool healthy_ = false;
  std::string unhealthy_why_ = "etcd not reached yet";

  static constexpr size_t kMaxSpareLeases = 8;
  // A lock's lease is granted for its TTL + kLeaseSlack, so a spare lease refreshed less than
  // kLeaseSlack - kLeaseMargin ago still outlives a new lock's TTL without a keepalive.
  static constexpr std::chrono::seconds kLeaseSlack{1};
  static constexpr std::chrono::milliseconds kLeaseMargin{250};
  std::map<int64_t, int64_t> spare_leases_;            // lock TTL in seconds -> unused lease id
  std::map<int64_t, SteadyTime> lease_fresh_;          // lease -> it lives at least until then
  std::map<uint64_t, std::shared_ptr<Waiter>> local_;  // this replica's waiters by local id
  std::vector<std::shared_ptr<Waiter>> to_enqueue_;    // their waiter key not written yet
  bool enqueue_armed_ = false;                         // enqueue_timer_ will flush them
  static constexpr std::chrono::milliseconds kEnqueueBatch{5};
  static constexpr size_t kMaxEnqueuesPerTxn = 50;  // etcd --max-txn-ops: 128 by default
  uint64_t next_local_ = 1;
  int64_t session_lease_ = 0;
  int64_t stale_session_ = 0;  // revoked once etcd is back
  bool session_pending_ = false;
  std::vector<std::function<void(Status)>> session_waiters_;

  boost::asio::steady_timer probe_timer_, resync_timer_, keepalive_timer_, recheck_timer_,
      enqueue_timer_;
  bool probing_ = false;
  bool stopped_ = false;
  lock::Counters counters_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unique_ptr<EtcdMaintenance> maintenance_;  // set by Open()
};

}  // namespace lm::store
