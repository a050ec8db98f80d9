// The etcd leases of the etcd store: EtcdLeasePool (the leases locks are bound to, reused while
// they are fresh) and EtcdSession (this replica's session lease, which its waiter keys are bound
// to). Not thread-safe: one io_context thread.
//
//   EtcdLeasePool pool(time, api, 2s);
//   pool.Take(10s, [&](StatusOr<EtcdLeasePool::Taken> lease) {
//     pool.TxnOnLease(txn, *lease, 10s, [](StatusOr<TxnResponse> r, bool lease_ok) { ... });
//   });
//
// Contract (EtcdLeasePool):
// - A lock's lease is granted for TTL + kLeaseSlack (1 s). A lease freed by a release (no key
//   bound to it any more) or by a grant txn that did not apply is kept as the spare for its TTL
//   (Spare) and reused by the next Take with that TTL: as it is when it still lives at least
//   TTL + kLeaseMargin (no etcd call), with a keepalive in parallel with the txn when it is
//   known to outlive the txn (Taken::refresh), else after a keepalive, else a new grant.
// - TxnOnLease answers lease_ok = false when the lease may end before `ttl` from the answer:
//   the caller must then undo a grant the txn made.
// - At most kMaxSpareLeases spares; what a spare displaces is revoked. After Stop() nothing is
//   kept (Spare revokes).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/time_system.h"
#include "lock/lock_service.h"
#include "store/etcd_api.h"

namespace lm::store {

// Revokes `lease` (0: nothing), logging a failure (the lease then expires by itself).
void RevokeLease(EtcdApi& etcd, int64_t lease, bool retry = true);

class EtcdLeasePool {
 public:
  // A lock's lease is granted for its TTL + kLeaseSlack, so a spare lease refreshed less than
  // kLeaseSlack - kLeaseMargin ago still outlives a new lock's TTL without a keepalive.
  static constexpr std::chrono::seconds kLeaseSlack{1};
  static constexpr std::chrono::milliseconds kLeaseMargin{250};
  static constexpr size_t kMaxSpareLeases = 8;

  // A lease with a TTL whose full TTL starts now: the spare one after a keepalive, or a new
  // one; or (refresh = true) a spare known to outlive the txn, which TxnOnLease keeps alive in
  // parallel with it.
  struct Taken {
    int64_t id = 0;
    bool refresh = false;
    SteadyTime until;  // the lease lives at least until then (without refresh)
  };
  using TxnDone = std::function<void(StatusOr<TxnResponse>, bool lease_ok)>;

  // `timeout`: how long a txn may take (a spare that outlives it by 1 s is refreshed in
  // parallel with the txn).
  EtcdLeasePool(const Clock& clock, EtcdApi& etcd, std::chrono::milliseconds timeout)
      : clock_(clock), etcd_(etcd), timeout_(timeout) {}

  void Take(lock::Seconds ttl, std::function<void(StatusOr<Taken>)> done);
  // A new lease for a lock with `ttl` (TTL + kLeaseSlack), noted fresh.
  void Grant(lock::Seconds ttl, std::function<void(StatusOr<Taken>)> done);
  // Sends `txn`, which binds a key to `lease`; with lease.refresh, keeps the lease alive in
  // parallel; answered when both are.
  void TxnOnLease(Txn txn, Taken lease, lock::Seconds ttl, TxnDone done);
  // Keeps an unused lease for the next lock with this TTL (revokes what it displaces).
  void Spare(lock::Seconds ttl, int64_t lease);
  // The lease is gone (etcd refused a txn naming it): never reuse it as fresh.
  void Forget(int64_t lease) { fresh_.erase(lease); }
  void Revoke(int64_t lease) { RevokeLease(etcd_, lease); }
  // Revokes the spares; from now on Spare revokes too.
  void Stop();

 private:
  // Notes that `lease` lives at least until `until` (its grant/keepalive's send time + TTL).
  void MarkFresh(int64_t lease, SteadyTime until);

  const Clock& clock_;
  EtcdApi& etcd_;
  std::chrono::milliseconds timeout_;
  bool stopped_ = false;
  std::map<int64_t, int64_t> spares_;       // lock TTL in seconds -> unused lease id
  std::map<int64_t, SteadyTime> fresh_;     // lease -> it lives at least until then
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// This replica's session lease: waiter keys are bound to it, so a replica that dies (or is cut
// off longer than the TTL) takes its queued waiters with it. Granted on first use, kept alive
// every TTL/3 on the TimeSystem.
class EtcdSession {
 public:
  struct Hooks {
    std::function<void(const std::string& why)> error;  // the grant failed (etcd unavailable)
    std::function<void()> lost;  // etcd says the lease is gone: the waiter keys are gone too
  };
  EtcdSession(TimeSystem& time, boost::asio::any_io_executor executor, EtcdApi& etcd,
              lock::Seconds ttl, Hooks hooks);

  // done(OK) once a session lease exists (granted now if needed).
  void Ensure(std::function<void(Status)> done);
  int64_t lease() const { return lease_; }
  // etcd is unreachable: the lease is given up (revoked by RevokeStale once etcd is back).
  void Lost();
  void RevokeStale();
  // Stops the keepalive; with `revoke`, revokes the lease (best effort, it expires anyway).
  void Stop(bool revoke);

 private:
  void KeepAlive();

  EtcdApi& etcd_;
  lock::Seconds ttl_;
  Hooks hooks_;
  TimerPtr keepalive_timer_;
  int64_t lease_ = 0;
  int64_t stale_ = 0;  // revoked once etcd is back
  bool pending_ = false;
  bool stopped_ = false;
  std::vector<std::function<void(Status)>> waiting_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lm::store
