#include "store/etcd_release_chase.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include <vector>

namespace lm::store {

EtcdReleaseChase::EtcdReleaseChase(TimeSystem& time, boost::asio::any_io_executor executor,
                                   EtcdApi& etcd, std::chrono::milliseconds hedge,
                                   std::chrono::milliseconds retry)
    : time_(time), executor_(executor), etcd_(etcd), hedge_(hedge), retry_(retry) {
  timer_ = time_.CreateTimer(executor, [this] { Tick(); });
}

void EtcdReleaseChase::Sent(const std::string& key, int64_t mod_revision, SteadyTime until,
                            std::function<void()> released) {
  if (stopped_) return;
  Entry& e = pending_[key];
  if (e.mod_revision != mod_revision) {
    if (e.then) {
      // The older version's own txn was answered "not applied" and waits for its chases; the key
      // was re-created since, so that version is gone, by a chase or not: unknown. Posted: the
      // caller is building a txn.
      boost::asio::post(executor_, [then = std::move(e.then), a = std::weak_ptr<bool>(alive_)] {
        if (!a.expired()) then(true);
      });
    }
    e = Entry{};
    e.mod_revision = mod_revision;
    e.due = time_.Now() + hedge_;
  }
  e.until = until;
  e.own = Entry::Own::kPending;
  e.released = std::move(released);
  if (!timer_->armed()) timer_->Arm(retry_);
}

void EtcdReleaseChase::Settled(const std::string& key) {
  if (auto it = pending_.find(key); it != pending_.end()) Erase(it);
}

void EtcdReleaseChase::Failed(const std::string& key) {
  auto it = pending_.find(key);
  if (it == pending_.end()) return;
  it->second.own = Entry::Own::kFailed;
  if (it->second.gone && it->second.in_flight == 0) Erase(it);
}

void EtcdReleaseChase::NotApplied(const std::string& key, std::function<void(bool)> then) {
  auto it = pending_.find(key);
  if (it == pending_.end()) return then(false);
  it->second.own = Entry::Own::kNotApplied;
  if (it->second.in_flight > 0) {
    it->second.then = std::move(then);
    return;
  }
  const bool unknown = it->second.unknown;
  Erase(it);
  then(unknown);
}

void EtcdReleaseChase::Erase(std::map<std::string, Entry>::iterator it) {
  pending_.erase(it);
  if (pending_.empty()) timer_->Disarm();
}

void EtcdReleaseChase::Stop() {
  stopped_ = true;
  pending_.clear();
  timer_->Disarm();
}

void EtcdReleaseChase::Tick() {
  if (stopped_) return;
  const SteadyTime now = time_.Now();
  std::vector<std::string> expired;
  for (auto& [key, e] : pending_) {
    if (now >= e.until) {
      expired.push_back(key);
    } else if (!e.gone && e.own != Entry::Own::kNotApplied && now >= e.due &&
               e.in_flight < kMaxInFlight) {
      Chase(key, e);
    }
  }
  for (const std::string& key : expired) {
    spdlog::warn("etcd store: a lock release (key {}) did not reach etcd before the lock's lease "
                 "ended; no longer sent",
                 key);
    auto it = pending_.find(key);
    std::function<void(bool)> then = std::move(it->second.then);
    Erase(it);
    if (then) then(true);
  }
  if (!pending_.empty()) timer_->Arm(retry_);
}

void EtcdReleaseChase::Chase(const std::string& key, Entry& e) {
  e.due = time_.Now() + retry_;
  ++e.in_flight;
  Txn txn;
  txn.compare = {Compare::Mod(key, CompareResult::kEqual, e.mod_revision)};
  txn.success = {Op::Delete(key)};
  // Apart: the release's own txn may be what is stuck on the shared connection.
  etcd_.DoTxnApart(std::move(txn), [this, key, rev = e.mod_revision,
                                    a = std::weak_ptr<bool>(alive_)](StatusOr<TxnResponse> r) {
    if (!a.expired()) OnChase(key, rev, std::move(r));
  });
}

void EtcdReleaseChase::OnChase(const std::string& key, int64_t mod_revision,
                               StatusOr<TxnResponse> r) {
  auto it = pending_.find(key);
  if (it == pending_.end() || it->second.mod_revision != mod_revision) return;  // settled
  Entry& e = it->second;
  --e.in_flight;
  if (!r.ok() || !r->succeeded) {
    // Failed: it may have applied, the next tick sends another. Not applied: that version is
    // gone already (released, expired or renewed; maybe by a chase whose answer is still on
    // its way). Ends once nothing is in flight and the release's own txn will not answer.
    if (r.ok()) {
      e.gone = true;
    } else if (r.status().message().find("no leader") == std::string::npos) {
      e.unknown = true;  // "no leader" is a refusal: not applied
    }
    if (e.in_flight > 0) return;
    if (e.own == Entry::Own::kNotApplied) {
      std::function<void(bool)> then = std::move(e.then);
      const bool unknown = e.unknown;
      Erase(it);
      if (then) then(unknown);
    } else if (e.own == Entry::Own::kFailed && e.gone) {
      Erase(it);
    }
    return;
  }
  std::function<void()> released = std::move(e.released);
  Erase(it);
  ++released_count_;
  spdlog::info("etcd store: a lock release that had not reached etcd was sent again and "
               "applied (key {})",
               key);
  if (released) released();
}

}  // namespace lm::store
