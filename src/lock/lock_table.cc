#include "lock/lock_table.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include <spdlog/spdlog.h>

#include "common/strings.h"

namespace lm::lock {

using std::chrono::duration_cast;

LockTable::LockTable(const Clock& clock, Options options, LockState restored, Persist persist,
                     IdSource ids)
    : clock_(clock),
      options_(options),
      persist_(std::move(persist)),
      ids_(std::move(ids)),
      last_token_(restored.last_token),
      token_floor_(restored.token_floor) {
  if (restored.lease) {
    const PersistedLease& p = *restored.lease;
    last_token_ = std::max(last_token_, p.token);
    // Remaining time from the persisted wall-clock expiry, never more than the lease's own ttl
    // (a clock stepped backwards must not lengthen a lease beyond what was granted).
    int64_t remaining_ms = p.expires_unix_ms - UnixMillis(clock_.WallNow());
    remaining_ms = std::clamp<int64_t>(remaining_ms, 0, p.ttl_s * 1000);
    if (remaining_ms > 0) {
      Lease l;
      l.id = p.id;
      l.holder = p.holder;
      l.token = p.token;
      l.ttl = Seconds(p.ttl_s);
      l.acquired_wall = WallTime(Millis(p.acquired_unix_ms));
      l.acquired_at = clock_.Now() - Millis(std::max<int64_t>(0, UnixMillis(clock_.WallNow()) -
                                                                     p.acquired_unix_ms));
      l.expires_at = clock_.Now() + Millis(remaining_ms);
      lease_ = std::move(l);
    } else {
      ++counters_.expiries;
    }
  }
}

uint64_t LockTable::Acquire(std::string holder, Seconds ttl, Seconds wait, Done done) {
  Completions completions;
  ExpireIfDue(completions);
  HandOff(completions);
  uint64_t queued = 0;
  if (!lease_ && waiters_.empty()) {
    completions.emplace_back(std::move(done), GrantTo(holder, ttl));
  } else if (wait.count() <= 0) {
    ++counters_.rejected_busy;
    completions.emplace_back(std::move(done), BusyError("lock unavailable"));
  } else if (waiters_.size() >= options_.max_waiters) {
    ++counters_.rejected_busy;
    completions.emplace_back(std::move(done),
                             ResourceExhausted("too many waiters (" +
                                               std::to_string(options_.max_waiters) +
                                               "); try again later"));
  } else {
    Waiter w;
    w.waiter_id = next_waiter_id_++;
    w.holder = std::move(holder);
    w.ttl = ttl;
    w.enqueued_at = clock_.Now();
    w.deadline = w.enqueued_at + wait;
    w.done = std::move(done);
    queued = w.waiter_id;
    waiters_.push_back(std::move(w));
  }
  Run(completions);
  return queued;
}

void LockTable::Cancel(uint64_t waiter_id) {
  auto it = std::find_if(waiters_.begin(), waiters_.end(),
                         [&](const Waiter& w) { return w.waiter_id == waiter_id; });
  if (it == waiters_.end()) return;
  waiters_.erase(it);
  ++counters_.wait_cancels;
}

Status LockTable::Release(std::string_view id) {
  Completions completions;
  ExpireIfDue(completions);
  Status result = Status::Ok();
  if (!lease_ || !ConstantTimeEquals(lease_->id, id)) {
    result = NotFound("lock id " + Redact(id) + " does not hold the lock (wrong, expired or " +
                      "already released)");
  } else {
    lease_.reset();
    ++counters_.releases;
    dirty_ = true;  // written by Flush() or with the next grant (see the header)
  }
  HandOff(completions);
  Run(completions);
  return result;
}

StatusOr<Grant> LockTable::Renew(std::string_view id, Seconds ttl) {
  Completions completions;
  ExpireIfDue(completions);
  StatusOr<Grant> result = NotFound("lock id " + Redact(id) + " does not hold the lock");
  if (lease_ && ConstantTimeEquals(lease_->id, id)) {
    Lease before = *lease_;
    lease_->ttl = ttl;
    lease_->expires_at = clock_.Now() + ttl;
    if (Status s = PersistNow(); !s.ok()) {
      *lease_ = before;  // the holder must not believe in time the store does not know of
      result = Unavailable("could not persist the renewal: " + s.message());
    } else {
      ++counters_.renewals;
      result = Grant{lease_->id, lease_->token, ttl, duration_cast<Millis>(ttl)};
    }
  }
  HandOff(completions);
  Run(completions);
  return result;
}

void LockTable::Tick() {
  Completions completions;
  ExpireIfDue(completions);
  HandOff(completions);
  Run(completions);
}

std::optional<SteadyTime> LockTable::NextWakeup() const {
  std::optional<SteadyTime> next;
  if (lease_) next = lease_->expires_at;
  for (const Waiter& w : waiters_) {
    if (!next || w.deadline < *next) next = w.deadline;
  }
  return next;
}

void LockTable::FailAllWaiters(const Status& why) {
  Completions completions;
  for (Waiter& w : waiters_) completions.emplace_back(std::move(w.done), why);
  waiters_.clear();
  Run(completions);
}

View LockTable::Snapshot() {
  Completions completions;
  ExpireIfDue(completions);
  HandOff(completions);
  Run(completions);
  View v;
  v.waiters = waiters_.size();
  v.last_token = last_token_;
  if (lease_) {
    SteadyTime now = clock_.Now();
    v.held = true;
    v.holder = lease_->holder;
    v.token = lease_->token;
    v.ttl = lease_->ttl;
    v.acquired_at = lease_->acquired_wall;
    v.expires_in = duration_cast<Millis>(lease_->expires_at - now);
    v.held_for = duration_cast<Millis>(now - lease_->acquired_at);
  }
  return v;
}

void LockTable::ExpireIfDue(Completions& out) {
  SteadyTime now = clock_.Now();
  std::optional<SteadyTime> freed_at;
  if (lease_ && now >= lease_->expires_at) {
    spdlog::info("lease of '{}' (token {}, ttl {} s) expired: not renewed or released in time",
                 lease_->holder, lease_->token, lease_->ttl.count());
    freed_at = lease_->expires_at;
    spdlog::info("lease of '{}' expired (token {}, not renewed or released within {}s)",
                 lease_->holder, lease_->token, lease_->ttl.count());
    ExpiredLease expired{std::move(lease_->holder), lease_->token, lease_->ttl};
    lease_.reset();
    ++counters_.expiries;
    dirty_ = true;
    if (on_expired_) on_expired_(expired);
  }
  // Waiters whose wait ran out before the lock came free leave the queue with the reason.
  // (Events are taken in time order even when the timer fires late.)
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    bool timed_out = now >= it->deadline && (lease_ || (freed_at && *freed_at > it->deadline));
    if (timed_out) {
      ++counters_.wait_timeouts;
      out.emplace_back(std::move(it->done), BusyError("lock unavailable yet timeout reached"));
      it = waiters_.erase(it);
    } else {
      ++it;
    }
  }
}

void LockTable::HandOff(Completions& out) {
  while (!lease_ && !waiters_.empty()) {
    Waiter w = std::move(waiters_.front());
    waiters_.pop_front();
    StatusOr<Grant> g = GrantTo(w.holder, w.ttl);
    if (g.ok()) {
      counters_.wait_seconds.Observe(
          std::chrono::duration<double>(clock_.Now() - w.enqueued_at).count());
    }
    out.emplace_back(std::move(w.done), std::move(g));
  }
}

StatusOr<Grant> LockTable::GrantTo(const std::string& holder, Seconds ttl) {
  // Filled in place: the id and holder are not copied twice. (Not lease_.emplace(): clang
  // decides Lease is not default-constructible while LockTable is still incomplete.)
  lease_ = Lease{};
  Lease& l = *lease_;
  l.id = ids_();
  l.holder = holder;
  l.token = std::max(last_token_ + 1, token_floor_);
  l.ttl = ttl;
  l.acquired_wall = clock_.WallNow();
  l.acquired_at = clock_.Now();
  l.expires_at = l.acquired_at + ttl;
  const uint64_t before = std::exchange(last_token_, l.token);
  if (Status s = PersistNow(); !s.ok()) {
    lease_.reset();
    last_token_ = before;  // never handed out, so reusing it later keeps tokens increasing
    return Unavailable("could not persist the grant: " + s.message());
  }
  ++counters_.grants;
  return Grant{l.id, l.token, ttl, duration_cast<Millis>(ttl)};
}

LockState LockTable::ToState() const {
  LockState s;
  s.last_token = last_token_;
  if (lease_) {
    PersistedLease p;
    p.id = lease_->id;
    p.holder = lease_->holder;
    p.token = lease_->token;
    p.ttl_s = lease_->ttl.count();
    p.acquired_unix_ms = UnixMillis(lease_->acquired_wall);
    p.expires_unix_ms =
        UnixMillis(clock_.WallNow()) + duration_cast<Millis>(lease_->expires_at - clock_.Now()).count();
    s.lease = std::move(p);
  }
  return s;
}

Status LockTable::PersistNow() {
  if (!persist_) {
    dirty_ = false;  // memory only: nothing to write
    return Status::Ok();
  }
  Status s = persist_(ToState());
  if (!s.ok()) {
    ++counters_.persist_failures;
  } else {
    dirty_ = false;
  }
  return s;
}

Status LockTable::Flush() {
  if (!dirty_) return Status::Ok();
  return PersistNow();
}

Status LockTable::BusyError(std::string_view prefix) const {
  std::string msg(prefix);
  if (lease_) {
    auto left = duration_cast<Millis>(lease_->expires_at - clock_.Now());
    msg += ": held by '" + lease_->holder + "', lease ends in " + std::to_string(left.count()) +
           " ms";
  }
  return FailedPrecondition(std::move(msg));
}

void LockTable::Run(Completions& completions) {
  for (auto& [done, result] : completions) {
    if (done) done(std::move(result));
  }
  completions.clear();
}

}  // namespace lm::lock
