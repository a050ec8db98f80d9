#include "store/etcd_mirror.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "lock/lock_state.h"
#include "store/etcd_client.h"

namespace lm::store {

EtcdKeys::EtcdKeys(const std::string& p)
    : prefix(p),
      lock_key(p + "lock"),
      grants_prefix(p + "lock/"),
      waiters_prefix(p + "waiters/"),
      waiters_begin(waiters_prefix + std::string(1, '\x02')),
      epoch_key(p + "epoch"),
      upgrade_fence(waiters_prefix + std::string(1, '\x01') + "epoch"),
      console_prefix(p + "console/") {}

EtcdMirror::EtcdMirror(TimeSystem& time, boost::asio::any_io_executor executor, EtcdApi& etcd,
                       const EtcdKeys& keys, Hooks hooks)
    : time_(time), etcd_(etcd), keys_(keys), hooks_(std::move(hooks)) {
  resync_timer_ = time_.CreateTimer(executor, [this] { Resync(); });
}

// ---- the initial read, the epoch, then the watch -------------------------------------------

void EtcdMirror::Resync() {
  if (stopped_ || resyncing_) return;
  resyncing_ = true;
  synced_ = false;
  etcd_.CancelWatch();
  // Everything under the prefix but the console's keys (etcd_console_journal.h: up to
  // EVENTS_MAX events, which the lock never needs): two ranges read at one revision.
  Txn read;
  read.success = {Op::Range(keys_.prefix, keys_.console_prefix),
                  Op::Range(PrefixEnd(keys_.console_prefix), PrefixEnd(keys_.prefix))};
  etcd_.DoTxn(std::move(read), [this, a = std::weak_ptr<bool>(alive_)](StatusOr<TxnResponse> r) {
    if (a.expired()) return;
    if (!r.ok()) return OnRange(r.status());
    RangeResponse all;
    all.revision = r->revision;
    for (OpResponse& part : r->responses) {
      for (KeyValue& kv : part.kvs) all.kvs.push_back(std::move(kv));
    }
    OnRange(std::move(all));
  });
}

void EtcdMirror::OnRange(StatusOr<RangeResponse> r) {
  if (!r.ok()) return Failed(r.status().message());
  lock_.reset();
  lock_range_.clear();
  waiters_.clear();
  waiter_revs_.clear();
  foreign_.clear();
  epoch_ = 0;
  epoch_mod_ = 0;
  for (const KeyValue& kv : r->kvs) Apply(kv, false);
  revision_ = r->revision;
  if (epoch_ == 0) return CreateEpoch();
  StartWatch();
}

void EtcdMirror::Failed(const std::string& why) {
  resyncing_ = false;
  hooks_.error(why);
  ScheduleResync();
}

void EtcdMirror::CreateEpoch() {
  // No usable epoch: a new store, a wiped one, or one written before epochs. A floor from the
  // clock is above every token handed out before (lock::ClockTokenFloor); the upgrade fence
  // keeps replicas from before epochs (tokens = bare revisions) from granting from now on.
  const uint64_t floor = lock::ClockTokenFloor(time_.WallNow());
  std::string value = std::to_string(floor);
  Txn txn;
  txn.compare = {Compare::Mod(keys_.epoch_key, CompareResult::kEqual, epoch_mod_)};
  txn.success = {Op::Put(keys_.epoch_key, value), Op::Put(keys_.upgrade_fence, "")};
  txn.failure = {Op::Range(keys_.epoch_key)};
  etcd_.DoTxn(std::move(txn), [this, value, a = std::weak_ptr<bool>(alive_)](
                                  StatusOr<TxnResponse> r) mutable {
    if (!a.expired()) OnEpochTxn(std::move(value), std::move(r));
  });
}

void EtcdMirror::OnEpochTxn(std::string value, StatusOr<TxnResponse> r) {
  if (!r.ok()) return Failed(r.status().message());
  if (r->succeeded) {
    spdlog::warn(
        "etcd store: no token epoch under {}; started a new one at {} (tokens are epoch + "
        "etcd revision, above every token before; replicas of tokenmgr before 1.2 no longer "
        "grant)",
        Printable(keys_.prefix), value);
    epoch_mod_ = r->revision;
    epoch_ = *ParseEpochValue(value);
    epoch_raw_ = value;
    ForgetForeign(keys_.epoch_key);
  } else {
    for (const OpResponse& resp : r->responses) {
      for (const KeyValue& kv : resp.kvs) Apply(kv, false);  // another replica made one first
    }
  }
  if (epoch_ == 0) {  // changed under us again: start over
    resyncing_ = false;
    return ScheduleResync();
  }
  StartWatch();
}

void EtcdMirror::StartWatch() {
  std::weak_ptr<bool> a = alive_;
  etcd_.Watch(
      {.key = keys_.prefix, .range_end = PrefixEnd(keys_.prefix), .start_revision = revision_ + 1},
      [this, a](const WatchResponse& w) {
        if (!a.expired()) OnWatch(w);
      },
      [this, a](Status why) {
        if (a.expired()) return;
        spdlog::warn("etcd watch closed: {}", why.ToString());
        synced_ = false;
        resyncing_ = false;
        ScheduleResync();
      });
}

void EtcdMirror::ScheduleResync() {
  if (stopped_) return;
  resync_timer_->Arm(std::chrono::milliseconds(500));
}

void EtcdMirror::Lost() {
  // The watch may be stuck on a member without quorum: read everything again once etcd is back.
  synced_ = false;
  resyncing_ = false;
  etcd_.CancelWatch();
  ScheduleResync();
}

void EtcdMirror::FollowMember() {
  if (stopped_ || !synced_ || watch_member_ == etcd_.current_endpoint()) return;
  spdlog::warn(
      "etcd watch on {} is left for {} (a call there failed or was answered late; a watch "
      "there may be silent or late): reading the store again",
      watch_member_, etcd_.current_endpoint());
  // A full read, not a watch from revision_ + 1: what the silent watch missed may include
  // events below the revision its created answer named.
  Resync();
}

void EtcdMirror::Stop() {
  stopped_ = true;
  resync_timer_->Disarm();
  etcd_.CancelWatch();
}

void EtcdMirror::OnWatch(const WatchResponse& w) {
  if (w.canceled) {
    // e.g. our start revision was compacted: read everything again.
    spdlog::warn("etcd watch canceled: {}", Printable(w.cancel_reason));
    resyncing_ = false;
    synced_ = false;
    Resync();
    return;
  }
  if (w.created) {
    watch_member_ = etcd_.current_endpoint();
    resyncing_ = false;
    synced_ = true;
    hooks_.synced();
    spdlog::info(
        "etcd store in sync at revision {} via {}: {}, {} waiter(s) queued, token epoch {}",
        revision_, etcd_.current_endpoint(),
        lock_ ? "lock held by '" + lock_->holder + "' (token " + std::to_string(lock_->token) + ")"
              : std::string("lock free"),
        waiters_.size(), epoch_);
  }
  for (const WatchEvent& ev : w.events) Apply(ev.kv, ev.deleted);
  // Not from the created answer: it names the store's revision, which may be above events the
  // watch has yet to deliver.
  if (!w.created) revision_ = std::max(revision_, w.revision);
  if (synced_ && epoch_ == 0) {
    // The token epoch was deleted or overwritten (etcd wiped by hand?): read everything again
    // and start a new epoch; no grant until then.
    spdlog::warn("etcd store: the token epoch key {} changed; reading the store again",
                 Printable(keys_.epoch_key));
    synced_ = false;
    resyncing_ = false;
    return Resync();
  }
  hooks_.changed();
}

// ---- applying keys ----------------------------------------------------------------------

void EtcdMirror::Apply(const KeyValue& kv, bool deleted) {
  if (!kv.undecodable.empty()) {
    // Not even its key can be read: nothing can be matched to it later; logged once per text.
    return NoteForeign("(undecodable key)", kv.mod_revision, kv.undecodable);
  }
  const std::string& key = kv.key;
  if (deleted) ForgetForeign(key);
  if (key == keys_.lock_key || key.rfind(keys_.grants_prefix, 0) == 0) {
    ApplyLockRange(kv, deleted);
  } else if (key == keys_.epoch_key) {
    epoch_ = 0;
    epoch_mod_ = deleted ? 0 : kv.mod_revision;
    if (deleted) return;
    StatusOr<uint64_t> epoch = ParseEpochValue(kv.value);
    if (!epoch.ok()) return NoteForeign(key, kv.mod_revision, epoch.status().message());
    epoch_ = *epoch;
    epoch_raw_ = kv.value;
    ForgetForeign(key);
  } else if (key.starts_with(keys_.console_prefix)) {
    // The operator console's keys (etcd_console_journal.h): not the lock's.
  } else if (key == keys_.waiters_prefix || key == keys_.upgrade_fence) {
    // Fences: not waiters.
  } else if (key.rfind(keys_.waiters_prefix, 0) == 0) {
    ApplyWaiter(kv, deleted);
  } else if (!deleted) {
    NoteForeign(key, kv.mod_revision, "not a key tokenmgr uses; ignored");
  }
}

void EtcdMirror::ApplyLockRange(const EtcdKv& e, bool deleted) {
  const std::string& key = e.key;
  if (deleted) {
    auto it = lock_range_.find(key);
    if (it != lock_range_.end() && !it->second.foreign &&
        it->second.expires_ms <= UnixMillis(time_.WallNow())) {
      // etcd ended its lease (a release deletes it before its expiry).
      spdlog::info("lease of '{}' (token {}, ttl {} s) expired: not renewed or released in time",
                   it->second.holder, it->second.token, it->second.ttl_s);
      if (hooks_.expired) hooks_.expired(it->second);
    }
    // A handoff deletes the old grant and creates the new one at the same revision.
    if (lock_range_.erase(key)) SetLockFromRange();
    if (lock_ && lock_->key == key) lock_.reset();
    return;
  }
  EtcdRecord rec = ParseRecord(e);
  if (key == keys_.lock_key && !rec.foreign && (!lock_ || lock_->key != key)) {
    spdlog::warn(
        "etcd key {} is a lock granted by an older tokenmgr (before grant keys); "
        "honoured until it is released or expires",
        Printable(key));
  }
  if (!rec.foreign) last_token_ = std::max(last_token_, rec.token);
  lock_range_[key] = std::move(rec);
  SetLockFromRange();
}

void EtcdMirror::ApplyWaiter(const EtcdKv& e, bool deleted) {
  const std::string& key = e.key;
  if (deleted) {
    auto it = waiter_revs_.find(key);
    if (it != waiter_revs_.end()) EraseWaiter(it->second, key);
    if (hooks_.waiter_deleted) hooks_.waiter_deleted(key);
    return;
  }
  if (key < keys_.waiters_begin) {  // below the range our compares read: no effect on the queue
    return NoteForeign(key, e.mod_revision, "not a key tokenmgr uses; ignored");
  }
  // etcd's compares order every key in the range, so the mirror keeps this one too (a
  // foreign key holds up the queue behind it until it is deleted or its lease ends).
  AddWaiter(e.create_revision, key);
  nlohmann::json v = nlohmann::json::parse(e.value, nullptr, false);
  if (e.lease == 0 || e.value.size() > kMaxRecordValueBytes ||
      !ValidateLabel(JsonString(v, "holder"), "holder").ok()) {
    return NoteForeign(key, e.mod_revision,
                       "not a tokenmgr waiter (needs {\"holder\": <label>} on a session lease); "
                       "waiters queued after it wait until it is deleted");
  }
  ForgetForeign(key);
}

void EtcdMirror::AddWaiter(int64_t revision, const std::string& key) {
  auto [it, inserted] = waiter_revs_.try_emplace(key, revision);
  if (!inserted) {  // the key again (a put over it): one entry, at its create revision
    waiters_.erase({it->second, key});
    it->second = revision;
  }
  waiters_.insert({revision, key});
}

void EtcdMirror::EraseWaiter(int64_t revision, const std::string& key) {
  auto it = waiter_revs_.find(key);
  if (it == waiter_revs_.end() || it->second != revision) return;
  waiters_.erase({revision, key});
  waiter_revs_.erase(it);
}

void EtcdMirror::SetLockFromRange() {
  // A grant tokenmgr wrote wins (the newest); a foreign record still blocks grants.
  const EtcdRecord* best = nullptr;
  for (const auto& [key, rec] : lock_range_) {
    if (!best || (best->foreign && !rec.foreign) ||
        (!best->foreign && !rec.foreign && rec.token > best->token)) {
      best = &rec;
    }
  }
  if (best) {
    lock_ = *best;
  } else {
    lock_.reset();
  }
}

void EtcdMirror::PutGrant(const EtcdRecord& rec) {
  // The watch has shown this write already, and whatever came after it (e.g. its deletion).
  if (rec.mod_revision <= revision_) return;
  lock_range_[rec.key] = rec;
  lock_ = rec;
}

void EtcdMirror::EraseGrant(const std::string& key, int64_t mod_revision) {
  auto it = lock_range_.find(key);
  // A newer version of the key (grant keys are reused): the watch showed a later grant.
  if (it == lock_range_.end() || it->second.mod_revision > mod_revision) return;
  lock_range_.erase(it);
  if (lock_ && lock_->key == key) SetLockFromRange();
}

// ---- foreign data -------------------------------------------------------------------------

void EtcdMirror::NoteForeign(const std::string& key, int64_t mod_revision,
                             const std::string& why) {
  foreign_[key] = why;
  if (foreign_logged_.size() > 10000) foreign_logged_.clear();
  if (!foreign_logged_.insert({key, mod_revision}).second) return;
  spdlog::error("etcd key {} (revision {}) holds data tokenmgr cannot use: {}", Printable(key),
                mod_revision, why);
}

void EtcdMirror::ForgetForeign(const std::string& key) {
  if (foreign_.erase(key)) spdlog::info("etcd key {} with foreign data is gone", Printable(key));
}

std::string EtcdMirror::ForeignWarning() const {
  if (foreign_.empty()) return "";
  const auto& [key, why] = *foreign_.begin();
  return std::to_string(foreign_.size()) + " etcd key(s) under " + Printable(keys_.prefix) +
         " hold data tokenmgr cannot use, e.g. " + Printable(key) + ": " + why;
}

EtcdRecord EtcdMirror::ParseRecord(const EtcdKv& kv) {
  EtcdRecord r;
  r.key = kv.key;
  r.mod_revision = kv.mod_revision;
  r.lease = kv.lease;
  StatusOr<GrantValue> g = ParseGrantValue(kv.value);
  if (!g.ok()) {
    // Fail safe: it may be a grant of another tokenmgr version or a lock set by hand. It holds
    // the lock (no grant while it exists) until it is deleted or its etcd lease ends; nobody
    // can release or renew it through tokenmgr.
    NoteForeign(kv.key, kv.mod_revision,
                g.status().message() + "; no grant is possible while it exists");
    r.foreign = true;
    r.holder = "(foreign etcd record)";
    r.token = 0;  // not a token anybody was given
    return r;
  }
  if (foreign_.count(kv.key)) ForgetForeign(kv.key);
  r.id = std::move(g->id);
  r.holder = std::move(g->holder);
  r.ttl_s = g->ttl_s;
  r.acquired_ms = g->acquired_ms;
  r.expires_ms = g->expires_ms;
  r.epoch = g->epoch;
  r.token = g->epoch + static_cast<uint64_t>(std::max<int64_t>(0, kv.create_revision));
  return r;
}

}  // namespace lm::store
