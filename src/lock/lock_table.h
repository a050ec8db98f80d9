// LockTable: the lease-based mutex as a pure state machine (no I/O; time from a Clock).
// Not thread-safe: the server calls it from its single event-loop thread.
//
//   LockTable table(clock, options, restored_state, persist_fn);
//   table.Acquire("node-1", 10s, 5s, [](StatusOr<Grant> g) { ... });  // now or later
//   table.Release(id);
//   table.Tick();  // at NextWakeup(): expires leases and waits, hands the lock on
//
// Guarantees (each has a regression test):
// - Only Release(id) with the current lease's id, or that lease's own expiry, ends a lease.
// - Waiters are granted strictly in arrival order; a cancelled or timed-out waiter never is.
// - Every grant's token is greater than every token before it, including restored state, and
//   at least the restored state's token_floor.
// - A grant or renewal is only handed out after persist() succeeded. Releases and expiries only
//   mark the state dirty (Flush() writes it): losing one in a crash brings a released lease
//   back until its own expiry, which is the safe direction, and halves the fsyncs per cycle.
#pragma once

#include <boost/container/small_vector.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/histogram.h"
#include "common/status.h"
#include "lock/lock_state.h"

namespace lm::lock {

using Seconds = std::chrono::seconds;

struct Grant {
  std::string id;
  uint64_t token = 0;
  Seconds ttl{0};
  Millis expires_in{0};
};

// A lease that ended by expiry (not renewed or released in time): for the operator's history.
struct ExpiredLease {
  std::string holder;
  uint64_t token = 0;
  Seconds ttl{0};
};

struct Options {
  Seconds default_ttl{10};
  Seconds max_ttl{3600};
  Seconds max_wait{300};
  size_t max_waiters = 10000;
};

// What /status shows. Never contains the lease id.
struct View {
  bool held = false;
  std::string holder;
  uint64_t token = 0;
  Seconds ttl{0};
  WallTime acquired_at{};
  Millis expires_in{0};
  Millis held_for{0};
  size_t waiters = 0;
  uint64_t last_token = 0;
};

struct Counters {
  uint64_t grants = 0;
  uint64_t releases = 0;
  uint64_t expiries = 0;
  uint64_t renewals = 0;
  uint64_t wait_timeouts = 0;
  uint64_t wait_cancels = 0;
  uint64_t rejected_busy = 0;   // wait == 0 and held, or queue full
  uint64_t persist_failures = 0;
  uint64_t foreign_records = 0;  // a gauge: store entries tokenmgr cannot use, present now
  Histogram wait_seconds{{0.001, 0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300}};
};

class LockTable {
 public:
  using Done = std::function<void(StatusOr<Grant>)>;
  using Persist = std::function<Status(const LockState&)>;
  using IdSource = std::function<std::string()>;

  // `restored` comes from the store; a lease whose time ran out while we were down is dropped.
  // `persist` is called after every change; it may be empty (memory only).
  LockTable(const Clock& clock, Options options, LockState restored, Persist persist,
            IdSource ids);

  // Asks for the lock for `holder` with lease `ttl`, waiting up to `wait`.
  // Calls `done` exactly once, now or later, unless the waiter is cancelled first.
  // Returns the waiter id when queued (pass to Cancel), or 0 when `done` already ran.
  // Errors: FAILED_PRECONDITION (busy, wait 0), DEADLINE_EXCEEDED (wait ran out),
  // RESOURCE_EXHAUSTED (queue full), UNAVAILABLE (could not persist the grant).
  uint64_t Acquire(std::string holder, Seconds ttl, Seconds wait, Done done);

  // The waiter's client went away: it leaves the queue and is never granted. Idempotent.
  void Cancel(uint64_t waiter_id);

  // NOT_FOUND unless `id` holds the lock right now.
  Status Release(std::string_view id);

  // Extends the lease to now + ttl. NOT_FOUND unless `id` holds the lock.
  StatusOr<Grant> Renew(std::string_view id, Seconds ttl);

  // Expires a due lease and due waiters, and hands the lock on.
  void Tick();

  // When Tick() next has work, if ever.
  std::optional<SteadyTime> NextWakeup() const;

  // Writes the state if a release or expiry left it dirty. Returns the persist status.
  Status Flush();
  bool dirty() const { return dirty_; }

  // Called with each lease that ends by expiry, inside the call that noticed it (Tick, or any
  // operation): it must not call back into this table. Empty: nobody is told.
  void SetExpiryObserver(std::function<void(const ExpiredLease&)> observer) {
    on_expired_ = std::move(observer);
  }

  // Fails every waiter with `why` (used at shutdown).
  void FailAllWaiters(const Status& why);

  View Snapshot();
  const Counters& counters() const { return counters_; }
  const Options& options() const { return options_; }

 private:
  struct Lease {
    std::string id;
    std::string holder;
    uint64_t token = 0;
    Seconds ttl{0};
    WallTime acquired_wall;
    SteadyTime acquired_at;
    SteadyTime expires_at;
  };
  struct Waiter {
    uint64_t waiter_id = 0;
    std::string holder;
    Seconds ttl{0};
    SteadyTime enqueued_at;
    SteadyTime deadline;
    Done done;
  };
  using Completion = std::pair<Done, StatusOr<Grant>>;
  // Room for one inline: an operation completes at most one caller but for hand-offs and
  // time-outs, and a heap block per grant and release showed in the 1-client profile.
  using Completions = boost::container::small_vector<Completion, 1>;

  void ExpireIfDue(Completions& out);
  void HandOff(Completions& out);
  StatusOr<Grant> GrantTo(const std::string& holder, Seconds ttl);
  LockState ToState() const;
  Status PersistNow();
  Status BusyError(std::string_view prefix) const;
  static void Run(Completions& completions);

  const Clock& clock_;
  Options options_;
  Persist persist_;
  IdSource ids_;
  uint64_t last_token_ = 0;
  uint64_t token_floor_ = 0;  // the next token is at least this (LockState::token_floor)
  std::optional<Lease> lease_;
  std::deque<Waiter> waiters_;
  uint64_t next_waiter_id_ = 1;
  bool dirty_ = false;
  Counters counters_;
  std::function<void(const ExpiredLease&)> on_expired_;
};

}  // namespace lm::lock
