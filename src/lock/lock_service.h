// LockService: the seam between the HTTP API and where the lock lives (embedded table + state
// file, or etcd). Asynchronous: every call completes through its callback on the caller's
// event-loop thread. Not thread-safe; call from that thread only.
//
//   auto cancel = service.Acquire({"node-1", 10s, 5s}, [](StatusOr<Grant> g) { ... });
//   cancel();  // the client went away: never granted, callback never runs
//   service.Release(id, [](Status s) { ... });
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "lock/lock_table.h"

namespace lm::lock {

struct AcquireRequest {
  std::string holder;
  Seconds ttl{10};
  Seconds wait{0};
};

class LockService {
 public:
  using GrantDone = std::function<void(StatusOr<Grant>)>;
  using StatusDone = std::function<void(Status)>;
  using ViewDone = std::function<void(StatusOr<View>)>;
  using CancelFn = std::function<void()>;

  virtual ~LockService() = default;

  // `done` runs exactly once, unless the returned function is called first.
  virtual CancelFn Acquire(AcquireRequest request, GrantDone done) = 0;
  // `id` is only valid during the call: an implementation that answers later copies it.
  virtual void Release(std::string_view id, StatusDone done) = 0;
  virtual void Renew(std::string id, Seconds ttl, GrantDone done) = 0;
  virtual void GetView(ViewDone done) = 0;

  // For /metrics. A copy, taken now.
  virtual Counters CountersSnapshot() const = 0;
  // For /readyz: state loaded and the store reachable.
  virtual bool Ready() const = 0;
  // For /readyz: non-empty when the store holds data tokenmgr cannot use (e.g. a foreign value
  // under the etcd prefix), naming one such key. Ready() may still be true.
  virtual std::string StoreWarning() const { return ""; }
  // For /readyz's 503 body when Ready() is false.
  virtual std::string NotReadyReason() const { return "lock store unavailable"; }
  // Tells `observer` of each lease this replica sees end by expiry, later on the event-loop
  // thread (never inside another call of this service). Replaces an earlier observer. The
  // default tells nobody (a store that does not support it yet).
  virtual void OnLeaseExpired(std::function<void(const ExpiredLease&)> observer) { (void)observer; }
  // Answers every waiter with UNAVAILABLE and stops timers. Idempotent.
  virtual void Shutdown() = 0;
  virtual const Options& options() const = 0;
};

}  // namespace lm::lock
