#include "store/etcd_leases.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <utility>

namespace lm::store {

void RevokeLease(EtcdApi& etcd, int64_t lease, bool retry) {
  if (!lease) return;
  etcd.LeaseRevoke(
      lease,
      [lease](Status s) {
        if (!s.ok()) {
          spdlog::warn("etcd lease {} not revoked ({}); it expires by itself", lease, s.message());
        }
      },
      retry);
}

// ---- EtcdLeasePool ------------------------------------------------------------------------

void EtcdLeasePool::Grant(lock::Seconds ttl, std::function<void(StatusOr<Taken>)> done) {
  SteadyTime sent = clock_.Now();
  etcd_.LeaseGrant((ttl + kLeaseSlack).count(),
                   [this, sent, done = std::move(done),
                    a = std::weak_ptr<bool>(alive_)](StatusOr<LeaseGrantResponse> r) {
                     if (a.expired()) return;
                     if (!r.ok()) return done(r.status());
                     SteadyTime until = sent + std::chrono::seconds(r->ttl);
                     MarkFresh(r->id, until);
                     done(Taken{r->id, false, until});
                   });
}

void EtcdLeasePool::Take(lock::Seconds ttl, std::function<void(StatusOr<Taken>)> done) {
  SteadyTime sent = clock_.Now();
  // Lives long enough for a lock with `ttl` granted now, with kLeaseMargin for the grant txn.
  auto long_enough = [sent, ttl](SteadyTime until) { return until >= sent + ttl + kLeaseMargin; };
  auto it = spares_.find(ttl.count());
  if (it == spares_.end()) return Grant(ttl, std::move(done));
  int64_t lease = it->second;
  spares_.erase(it);
  auto fresh = fresh_.find(lease);
  if (fresh != fresh_.end() && long_enough(fresh->second)) {
    // Refreshed recently enough: it outlives the new lock's TTL as it is (no etcd call).
    return done(Taken{lease, false, fresh->second});
  }
  if (fresh != fresh_.end() && sent + timeout_ + std::chrono::seconds(1) < fresh->second) {
    // Known to outlive the grant txn: the caller refreshes it in parallel with the txn.
    return done(Taken{lease, true, fresh->second});
  }
  // A keepalive restarts the lease's full TTL now, as a grant would; etcd's leader answers it
  // without a raft write. Expired meanwhile (TTL 0), too short (granted without the slack, e.g.
  // by an older tokenmgr) or no answer: grant a new one.
  etcd_.LeaseKeepAlive(lease, [this, lease, sent, ttl, long_enough, done = std::move(done),
                               a = std::weak_ptr<bool>(alive_)](StatusOr<int64_t> r) mutable {
    if (a.expired()) return;
    SteadyTime until = sent + std::chrono::seconds(r.ok() ? *r : 0);
    if (r.ok() && long_enough(until)) {
      MarkFresh(lease, until);
      return done(Taken{lease, false, until});
    }
    if (r.ok()) Revoke(lease);
    Grant(ttl, std::move(done));
  });
}

void EtcdLeasePool::TxnOnLease(Txn txn, Taken lease, lock::Seconds ttl, TxnDone done) {
  struct Join {
    int pending = 1;
    SteadyTime until;
    std::optional<StatusOr<TxnResponse>> txn;
    TxnDone done;
  };
  auto join = std::make_shared<Join>();
  join->pending = lease.refresh ? 2 : 1;
  join->until = lease.refresh ? SteadyTime() : lease.until;
  join->done = std::move(done);
  // Answered when the txn and (with refresh) the keepalive are: the caller waits for the slower
  // of the two instead of their sum. A grant is kept only if its lease outlives the TTL from now.
  auto step = [this, join, ttl] {
    if (--join->pending == 0) {
      join->done(std::move(*join->txn), join->until >= clock_.Now() + ttl);
    }
  };
  if (lease.refresh) {
    SteadyTime sent = clock_.Now();
    etcd_.LeaseKeepAlive(lease.id, [this, join, step, lease_id = lease.id, sent,
                                    a = std::weak_ptr<bool>(alive_)](StatusOr<int64_t> k) {
      if (a.expired()) return;
      int64_t left = k.ok() ? *k : 0;
      if (left > 0) {
        join->until = sent + std::chrono::seconds(left);
        MarkFresh(lease_id, join->until);
      }
      step();
    });
  }
  etcd_.DoTxn(std::move(txn), [join, step](StatusOr<TxnResponse> r) {
    join->txn = std::move(r);
    step();
  });
}

void EtcdLeasePool::MarkFresh(int64_t lease, SteadyTime until) {
  if (fresh_.size() >= 64) fresh_.clear();  // expired or renewed-away leases
  fresh_[lease] = until;
}

void EtcdLeasePool::Spare(lock::Seconds ttl, int64_t lease) {
  if (!lease) return;
  if (stopped_) return Revoke(lease);
  auto [it, inserted] = spares_.try_emplace(ttl.count(), lease);
  if (!inserted) Revoke(std::exchange(it->second, lease));
  if (spares_.size() > kMaxSpareLeases) {
    auto other = spares_.begin() == it ? std::next(it) : spares_.begin();
    Revoke(other->second);
    spares_.erase(other);
  }
}

void EtcdLeasePool::Stop() {
  stopped_ = true;
  for (const auto& [ttl, lease] : std::exchange(spares_, {})) Revoke(lease);
}

// ---- EtcdSession --------------------------------------------------------------------------

EtcdSession::EtcdSession(TimeSystem& time, boost::asio::any_io_executor executor, EtcdApi& etcd,
                         lock::Seconds ttl, Hooks hooks)
    : etcd_(etcd), ttl_(ttl), hooks_(std::move(hooks)) {
  keepalive_timer_ = time.CreateTimer(executor, [this] { KeepAlive(); });
}

void EtcdSession::Ensure(std::function<void(Status)> done) {
  if (lease_) return done(Status::Ok());
  waiting_.push_back(std::move(done));
  if (pending_) return;
  pending_ = true;
  etcd_.LeaseGrant(ttl_.count(),
                   [this, a = std::weak_ptr<bool>(alive_)](StatusOr<LeaseGrantResponse> r) {
                     if (a.expired()) return;
                     pending_ = false;
                     Status s = r.status();
                     if (r.ok()) {
                       lease_ = r->id;
                       keepalive_timer_->Arm(
                           std::chrono::duration_cast<std::chrono::milliseconds>(ttl_) / 3);
                     } else {
                       hooks_.error(r.status().message());
                     }
                     for (auto& f : std::exchange(waiting_, {})) f(s);
                   });
}

void EtcdSession::KeepAlive() {
  if (stopped_ || !lease_) return;
  int64_t lease = lease_;
  etcd_.LeaseKeepAlive(lease, [this, lease, a = std::weak_ptr<bool>(alive_)](StatusOr<int64_t> r) {
    if (a.expired() || lease != lease_) return;
    if (r.ok() && *r <= 0) {
      // The lease is gone (we were cut off too long): our queued waiters are gone with it.
      lease_ = 0;
      hooks_.lost();
      return;
    }
    keepalive_timer_->Arm(std::chrono::duration_cast<std::chrono::milliseconds>(ttl_) / 3);
  });
}

void EtcdSession::Lost() {
  if (lease_) stale_ = std::exchange(lease_, 0);
  keepalive_timer_->Disarm();
}

void EtcdSession::RevokeStale() {
  if (stale_) RevokeLease(etcd_, std::exchange(stale_, 0));
}

void EtcdSession::Stop(bool revoke) {
  stopped_ = true;
  keepalive_timer_->Disarm();
  // Our waiters' keys go with the session; best effort, the lease expires anyway.
  if (lease_ && revoke) etcd_.LeaseRevoke(lease_, [](Status) {}, /*retry=*/false);
}

}  // namespace lm::store
