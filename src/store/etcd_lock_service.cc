#include "store/etcd_lock_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>

#include "common/random.h"
#include "common/strings.h"
#include "lock/lock_state.h"
#include "store/etcd_record.h"

namespace lm::store {

using json = nlohmann::json;
using std::chrono::duration_cast;

struct EtcdLockService::Waiter {
  uint64_t local_id = 0;
  std::string holder;
  lock::Seconds ttl{0};
  SteadyTime enqueued_at;
  std::string key;   // <prefix>waiters/<uuid>, once queued
  int64_t rev = 0;   // its create revision, once queued
  bool trying = false;
  bool finished = false;
  GrantDone done;
  std::unique_ptr<boost::asio::steady_timer> deadline;
};

namespace {

json Compare(const std::string& key, const char* target, const char* result, int64_t value,
             const std::string& range_end = "") {
  json c = {{"key", Base64Encode(key)}, {"target", target}, {"result", result}};
  c[std::string(target) == "MOD" ? "mod_revision" : "create_revision"] = std::to_string(value);
  if (!range_end.empty()) c["range_end"] = Base64Encode(range_end);
  return c;
}

// True while `key` holds exactly `value` (false when it is absent).
json CompareValue(const std::string& key, const std::string& value) {
  return {{"key", Base64Encode(key)},
          {"target", "VALUE"},
          {"result", "EQUAL"},
          {"value", Base64Encode(value)}};
}

json Put(const std::string& key, const std::string& value, int64_t lease) {
  json p = {{"key", Base64Encode(key)}, {"value", Base64Encode(value)}};
  if (lease) p["lease"] = std::to_string(lease);
  return {{"request_put", p}};
}

json Delete(const std::string& key) { return {{"request_delete_range", {{"key", Base64Encode(key)}}}}; }

json Range(const std::string& key, const std::string& range_end) {
  return {{"request_range", {{"key", Base64Encode(key)}, {"range_end", Base64Encode(range_end)}}}};
}

}  // namespace

StatusOr<std::unique_ptr<EtcdLockService>> EtcdLockService::Open(boost::asio::io_context& io,
                                                                 const Clock& clock,
                                                                 lock::Options options,
                                                                 EtcdStoreOptions store) {
  if (store.prefix.empty()) return InvalidArgument("etcd key prefix must not be empty");
  auto etcd = EtcdClient::Create(
      io, {.endpoints = store.endpoints, .timeout = store.timeout, .tls = store.tls});
  if (!etcd.ok()) return etcd.status();
  std::unique_ptr<EtcdLockService> s(
      new EtcdLockService(io, clock, options, std::move(store), std::move(*etcd)));
  s->Resync();
  s->Probe();
  EtcdClient* client = s->etcd_.get();
  s->maintenance_ = std::make_unique<EtcdMaintenance>(
      clock,
      [client](std::string path, json body, EtcdClient::JsonDone done) {
        client->Call(std::move(path), std::move(body), std::move(done), /*idempotent=*/true);
      },
      s->store_.maintenance);
  // Waiters cannot be granted now, and a release that hands the lock to one would be refused.
  s->maintenance_->OnNoSpace(
      [raw = s.get()] { raw->FailAllWaiters(Unavailable(EtcdMaintenance::kNoSpaceMessage)); });
  s->maintenance_->Start(io);
  return s;
}

EtcdLockService::EtcdLockService(boost::asio::io_context& io, const Clock& clock,
                                 lock::Options options, EtcdStoreOptions store,
                                 std::unique_ptr<EtcdClient> etcd)
    : io_(io),
      clock_(clock),
      options_(options),
      store_(std::move(store)),
      etcd_(std::move(etcd)),
      lock_key_(store_.prefix + "lock"),
      grants_prefix_(store_.prefix + "lock/"),
      waiters_prefix_(store_.prefix + "waiters/"),
      waiters_begin_(waiters_prefix_ + std::string(1, '\x02')),
      epoch_key_(store_.prefix + "epoch"),
      upgrade_fence_(waiters_prefix_ + std::string(1, '\x01') + "epoch"),
      probe_timer_(io),
      resync_timer_(io),
      keepalive_timer_(io),
      recheck_timer_(io),
      enqueue_timer_(io) {}

EtcdLockService::~EtcdLockService() {
  *alive_ = false;
  alive_.reset();
  stopped_ = true;
  etcd_->Shutdown();
}

// ---- mirror: initial read, then the watch ------------------------------------------------

void EtcdLockService::Resync() {
  if (stopped_ || resyncing_) return;
  resyncing_ = true;
  synced_ = false;
  etcd_->CancelWatch();
  json req = {{"key", Base64Encode(store_.prefix)},
              {"range_end", Base64Encode(PrefixEnd(store_.prefix))}};
  etcd_->Call("/v3/kv/range", req, [this, a = std::weak_ptr<bool>(alive_)](StatusOr<json> r) {
    if (!Alive(a)) return;
    if (!r.ok()) {
      resyncing_ = false;
      SetHealthy(false, r.status().message());
      return ScheduleResync();
    }
    lock_.reset();
    lock_range_.clear();
    waiters_.clear();
    foreign_.clear();
    epoch_ = 0;
    epoch_mod_ = 0;
    for (const json& kv : JsonArray(*r, "kvs")) ApplyKv(kv, false);
    revision_ = JsonInt(JsonObject(*r, "header"), "revision");
    if (epoch_ == 0) return CreateEpoch();
    StartWatch();
  }, true);
}

void EtcdLockService::CreateEpoch() {
  // No usable epoch: a new store, a wiped one, or one written before epochs. A floor from the
  // clock is above every token handed out before (lock::ClockTokenFloor); the upgrade fence
  // keeps replicas from before epochs (tokens = bare revisions) from granting from now on.
  const uint64_t floor = lock::ClockTokenFloor(clock_.WallNow());
  const std::string value = std::to_string(floor);
  json txn = {{"compare", json::array({Compare(epoch_key_, "MOD", "EQUAL", epoch_mod_)})},
              {"success", json::array({Put(epoch_key_, value, 0), Put(upgrade_fence_, "", 0)})},
              {"failure", json::array({Range(epoch_key_, "")})}};
  etcd_->Call("/v3/kv/txn", txn, [this, value, a = std::weak_ptr<bool>(alive_)](StatusOr<json> r) {
    if (!Alive(a)) return;
    if (!r.ok()) {
      resyncing_ = false;
      SetHealthy(false, r.status().message());
      return ScheduleResync();
    }
    if (JsonBool(*r, "succeeded")) {
      spdlog::warn(
          "etcd store: no token epoch under {}; started a new one at {} (tokens are epoch + "
          "etcd revision, above every token before; replicas of tokenmgr before 1.2 no longer "
          "grant)",
          Printable(store_.prefix), value);
      epoch_mod_ = JsonInt(JsonObject(*r, "header"), "revision");
      epoch_ = *ParseEpochValue(value);
      epoch_raw_ = value;
      ForgetForeign(epoch_key_);
    } else {
      for (const json& resp : JsonArray(*r, "responses")) {
        for (const json& kv : JsonArray(JsonObject(resp, "response_range"), "kvs")) {
          ApplyKv(kv, false);  // another replica made one first
        }
      }
    }
    if (epoch_ == 0) {  // changed under us again: start over
      resyncing_ = false;
      return ScheduleResync();
    }
    StartWatch();
  });
}

void EtcdLockService::StartWatch() {
  std::weak_ptr<bool> a = alive_;
  json watch = {{"key", Base64Encode(store_.prefix)},
                {"range_end", Base64Encode(PrefixEnd(store_.prefix))},
                {"start_revision", std::to_string(revision_ + 1)}};
  etcd_->Watch(
      watch,
      [this, a](const json& result) {
        if (Alive(a)) OnWatch(result);
      },
      [this, a](Status why) {
        if (!Alive(a)) return;
        spdlog::warn("etcd watch closed: {}", why.ToString());
        synced_ = false;
        resyncing_ = false;
        ScheduleResync();
      });
}

void EtcdLockService::ScheduleResync() {
  if (stopped_) return;
  resync_timer_.expires_after(std::chrono::milliseconds(500));
  resync_timer_.async_wait([this, a = std::weak_ptr<bool>(alive_)](const auto& ec) {
    if (!ec && Alive(a)) Resync();
  });
}

void EtcdLockService::OnWatch(const json& result) {
  if (JsonBool(result, "canceled")) {
    // e.g. our start revision was compacted: read everything again.
    spdlog::warn("etcd watch canceled: {}", Printable(JsonString(result, "cancel_reason")));
    resyncing_ = false;
    synced_ = false;
    Resync();
    return;
  }
  if (JsonBool(result, "created")) {
    resyncing_ = false;
    synced_ = true;
    SetHealthy(true, "");
    spdlog::info(
        "etcd store in sync at revision {} via {}: {}, {} waiter(s) queued, token epoch {}",
        revision_, etcd_->current_endpoint(),
        lock_ ? "lock held by '" + lock_->holder + "' (token " + std::to_string(lock_->token) + ")"
              : std::string("lock free"),
        waiters_.size(), epoch_);
  }
  for (const json& ev : JsonArray(result, "events")) {
    ApplyKv(JsonObject(ev, "kv"), JsonString(ev, "type") == "DELETE");
  }
  revision_ = std::max(revision_, JsonInt(JsonObject(result, "header"), "revision"));
  if (synced_ && epoch_ == 0) {
    // The token epoch was deleted or overwritten (etcd wiped by hand?): read everything again
    // and start a new epoch; no grant until then.
    spdlog::warn("etcd store: the token epoch key {} changed; reading the store again",
                 Printable(epoch_key_));
    synced_ = false;
    resyncing_ = false;
    return Resync();
  }
  Pump();
}

void EtcdLockService::ApplyKv(const json& kv, bool deleted) {
  StatusOr<EtcdKv> parsed = ParseKv(kv);
  if (!parsed.ok()) {
    // Not even its key can be read: nothing can be matched to it later; logged once per text.
    return NoteForeign("(undecodable key)", JsonInt(kv, "mod_revision"), parsed.status().message());
  }
  const EtcdKv& e = *parsed;
  const std::string& key = e.key;
  if (deleted) ForgetForeign(key);
  if (key == lock_key_ || key.rfind(grants_prefix_, 0) == 0) {
    if (deleted) {
      auto it = lock_range_.find(key);
      if (it != lock_range_.end() && !it->second.foreign &&
          it->second.expires_ms <= UnixMillis(clock_.WallNow())) {
        // etcd ended its lease (a release deletes it before its expiry).
        spdlog::info("lease of '{}' (token {}, ttl {} s) expired: not renewed or released in time",
                     it->second.holder, it->second.token, it->second.ttl_s);
      }
      // A handoff deletes the old grant and creates the new one at the same revision.
      if (lock_range_.erase(key)) SetLockFromRange();
      if (lock_ && lock_->key == key) lock_.reset();
      return;
    }
    Record rec = ParseRecord(e);
    if (key == lock_key_ && !rec.foreign && (!lock_ || lock_->key != key)) {
      spdlog::warn(
          "etcd key {} is a lock granted by an older tokenmgr (before grant keys); "
          "honoured until it is released or expires",
          Printable(key));
    }
    if (!rec.foreign) last_token_ = std::max(last_token_, rec.token);
    lock_range_[key] = std::move(rec);
    SetLockFromRange();
  } else if (key == epoch_key_) {
    epoch_ = 0;
    epoch_mod_ = deleted ? 0 : e.mod_revision;
    if (deleted) return;
    StatusOr<uint64_t> epoch = ParseEpochValue(e.value);
    if (!epoch.ok()) return NoteForeign(key, e.mod_revision, epoch.status().message());
    epoch_ = *epoch;
    epoch_raw_ = e.value;
    ForgetForeign(key);
  } else if (key == waiters_prefix_ || key == upgrade_fence_) {
    // Fences: not waiters.
  } else if (key.rfind(waiters_prefix_, 0) == 0) {
    if (deleted) {
      std::erase_if(waiters_, [&](const auto& p) { return p.second == key; });
      return;
    }
    if (key < waiters_begin_) {  // below the range our compares read: no effect on the queue
      return NoteForeign(key, e.mod_revision, "not a key tokenmgr uses; ignored");
    }
    // etcd's compares order every key in the range, so the mirror keeps this one too (a
    // foreign key holds up the queue behind it until it is deleted or its lease ends).
    waiters_.insert({e.create_revision, key});
    json v = json::parse(e.value, nullptr, false);
    if (e.lease == 0 || e.value.size() > kMaxRecordValueBytes ||
        !ValidateLabel(JsonString(v, "holder"), "holder").ok()) {
      return NoteForeign(key, e.mod_revision,
                         "not a tokenmgr waiter (needs {\"holder\": <label>} on a session lease); "
                         "waiters queued after it wait until it is deleted");
    }
    ForgetForeign(key);
  } else if (!deleted) {
    NoteForeign(key, e.mod_revision, "not a key tokenmgr uses; ignored");
  }
}

void EtcdLockService::SetLockFromRange() {
  // A grant tokenmgr wrote wins (the newest); a foreign record still blocks grants.
  const Record* best = nullptr;
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

void EtcdLockService::NoteForeign(const std::string& key, int64_t mod_revision,
                                  const std::string& why) {
  foreign_[key] = why;
  counters_.foreign_records = foreign_.size();
  if (foreign_logged_.size() > 10000) foreign_logged_.clear();
  if (!foreign_logged_.insert({key, mod_revision}).second) return;
  spdlog::error("etcd key {} (revision {}) holds data tokenmgr cannot use: {}", Printable(key),
                mod_revision, why);
}

void EtcdLockService::ForgetForeign(const std::string& key) {
  if (foreign_.erase(key)) {
    spdlog::info("etcd key {} with foreign data is gone", Printable(key));
    counters_.foreign_records = foreign_.size();
  }
}

std::string EtcdLockService::StoreWarning() const {
  if (foreign_.empty()) return "";
  const auto& [key, why] = *foreign_.begin();
  return std::to_string(foreign_.size()) + " etcd key(s) under " + Printable(store_.prefix) +
         " hold data tokenmgr cannot use, e.g. " + Printable(key) + ": " + why;
}

EtcdLockService::Record EtcdLockService::ParseRecord(const EtcdKv& kv) {
  Record r;
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

std::string EtcdLockService::LockValue(const std::string& id, const std::string& holder,
                                       lock::Seconds ttl, int64_t acquired_ms,
                                       uint64_t epoch) const {
  int64_t now = UnixMillis(clock_.WallNow());
  return SerializeGrantValue({.id = id,
                              .holder = holder,
                              .ttl_s = ttl.count(),
                              .acquired_ms = acquired_ms ? acquired_ms : now,
                              .expires_ms = now + duration_cast<Millis>(ttl).count(),
                              .epoch = epoch});
}

// ---- health -------------------------------------------------------------------------------

void EtcdLockService::Probe() {
  if (stopped_) return;
  if (!probing_) {
    probing_ = true;
    // A linearizable read needs a quorum: this is what "etcd works" means for us.
    etcd_->Call("/v3/kv/range", {{"key", Base64Encode(lock_key_)}, {"count_only", true}},
                [this, a = std::weak_ptr<bool>(alive_)](StatusOr<json> r) {
                  if (!Alive(a)) return;
                  probing_ = false;
                  if (r.ok()) {
                    SetHealthy(true, "");
                  } else {
                    SetHealthy(false, r.status().message());
                  }
                }, true);
  }
  probe_timer_.expires_after(store_.probe_interval);
  probe_timer_.async_wait([this, a = std::weak_ptr<bool>(alive_)](const auto& ec) {
    if (!ec && Alive(a)) Probe();
  });
}

void EtcdLockService::SetHealthy(bool healthy, const std::string& why) {
  if (!healthy && !healthy_ && why != unhealthy_why_) {
    // Still down, for a new reason (e.g. never reached, then a TLS handshake failure): 503s
    // name the latest one.
    unhealthy_why_ = why;
    spdlog::error("etcd unavailable: {}", why);
    return;
  }
  if (healthy == healthy_) return;
  healthy_ = healthy;
  if (healthy) {
    spdlog::info("etcd reachable again via {}", etcd_->current_endpoint());
    if (stale_session_) Revoke(std::exchange(stale_session_, 0));
    if (!synced_) Resync();
    return;
  }
  unhealthy_why_ = why;
  spdlog::error("etcd unavailable: {}", why);
  FailAllWaiters(Unavailable("lock store (etcd) unavailable: " + why));
  if (session_lease_) stale_session_ = std::exchange(session_lease_, 0);
  keepalive_timer_.cancel();
  // The watch may be stuck on a member without quorum: read everything again once etcd is back.
  synced_ = false;
  resyncing_ = false;
  etcd_->CancelWatch();
  ScheduleResync();
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
    done(Unavailable("lock store (etcd) unavailable: " + unhealthy_why_));
    return [] {};
  }
  if (request.wait.count() > 0 && waiters_.size() + local_.size() >= options_.max_waiters) {
    ++counters_.rejected_busy;
    done(ResourceExhausted("too many waiters (" + std::to_string(options_.max_waiters) +
                           "); try again later"));
    return [] {};
  }
  auto w = std::make_shared<Waiter>();
  w->local_id = next_local_++;
  w->holder = std::move(request.holder);
  w->ttl = request.ttl;
  w->enqueued_at = clock_.Now();
  w->done = std::move(done);
  if (request.wait.count() > 0) {
    w->deadline = std::make_unique<boost::asio::steady_timer>(io_);
    w->deadline->expires_after(request.wait);
    w->deadline->async_wait([this, w, a = std::weak_ptr<bool>(alive_)](const auto& ec) {
      if (ec || !Alive(a) || w->finished) return;
      ++counters_.wait_timeouts;
      Finish(w, BusyError("lock unavailable yet timeout reached", lock_));
    });
  }
  local_[w->local_id] = w;
  if (!to_enqueue_.empty()) {
    // Earlier waiters of this replica are about to be queued: go behind them.
    if (w->deadline) {
      Enqueue(w);
    } else {
      ++counters_.rejected_busy;
      Finish(w, BusyError("lock unavailable", std::nullopt));
    }
  } else if (w->deadline && !waiters_.empty()) {
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

void EtcdLockService::Finish(const std::shared_ptr<Waiter>& w, StatusOr<lock::Grant> result) {
  if (w->finished) return;
  w->finished = true;
  if (w->deadline) w->deadline->cancel();
  local_.erase(w->local_id);
  std::erase(to_enqueue_, w);
  if (!w->key.empty() && !result.ok()) {
    // Leave the queue now; if this fails the session lease removes the key later.
    waiters_.erase({w->rev, w->key});
    etcd_->Call("/v3/kv/deleterange", {{"key", Base64Encode(w->key)}}, [](StatusOr<json>) {});
  }
  GrantDone done = std::move(w->done);
  if (done) done(std::move(result));
  Pump();
}

void EtcdLockService::FailAllWaiters(const Status& why) {
  std::vector<std::shared_ptr<Waiter>> all;
  for (auto& [id, w] : local_) all.push_back(w);
  for (auto& w : all) Finish(w, why);
}

json EtcdLockService::GrantOps(const std::string& key, const std::string& value, int64_t lease,
                               const std::string& waiter_key) const {
  json ops = json::array({Put(key, value, lease)});
  if (!waiter_key.empty()) ops.push_back(Delete(waiter_key));
  // The fence: a tokenmgr from before grant keys sees it as a waiter older than any of its own,
  // so it can never grant the old `lock` key while replicas of this version run.
  json fence = {{"compare", json::array({Compare(waiters_prefix_, "CREATE", "EQUAL", 0)})},
                {"success", json::array({Put(waiters_prefix_, "", 0)})},
                {"failure", json::array()}};
  ops.push_back({{"request_txn", fence}});
  return ops;
}

void EtcdLockService::Granted(const std::shared_ptr<Waiter>& w, const std::string& key,
                              const std::string& id, int64_t lease, int64_t revision, bool queued) {
  const uint64_t token = epoch_ + static_cast<uint64_t>(std::max<int64_t>(0, revision));
  if (w->finished) {
    // The client went away while the txn was in flight: nobody may hold this grant.
    spdlog::info("grant to a waiter that went away undone (token {})", token);
    return Revoke(lease);
  }
  ++counters_.grants;
  if (queued) {  // like the embedded store: only grants that waited in the queue
    counters_.wait_seconds.Observe(
        std::chrono::duration<double>(clock_.Now() - w->enqueued_at).count());
  }
  last_token_ = std::max(last_token_, token);
  if (w->rev) waiters_.erase({w->rev, w->key});
  // Read-your-writes on this replica; the watch confirms it.
  Record rec;
  rec.key = key;
  rec.id = id;
  rec.holder = w->holder;
  rec.token = token;
  rec.ttl_s = w->ttl.count();
  rec.acquired_ms = UnixMillis(clock_.WallNow());
  rec.expires_ms = rec.acquired_ms + duration_cast<Millis>(w->ttl).count();
  rec.lease = lease;
  rec.mod_revision = revision;
  rec.epoch = epoch_;
  lock_range_[key] = rec;
  lock_ = rec;
  lock::Grant g{id, token, w->ttl, duration_cast<Millis>(w->ttl)};
  w->key.clear();
  Finish(w, std::move(g));
}

// Grants the lock to `w` if the txn's conditions hold. fast_path: a new request, which may
// only take a free lock when nobody is queued; otherwise `w` must be the oldest waiter.
void EtcdLockService::TryGrant(std::shared_ptr<Waiter> w, bool fast_path, bool retried) {
  w->trying = true;
  std::weak_ptr<bool> a = alive_;
  TakeLease(w->ttl, [this, w, fast_path, retried, a](StatusOr<TakenLease> lease) {
    if (!Alive(a)) return;
    if (!lease.ok()) {
      w->trying = false;
      SetHealthy(false, lease.status().message());
      return Finish(w, Unavailable("lock store (etcd) unavailable: " + lease.status().message()));
    }
    int64_t lease_id = lease->id;
    if (w->finished) {
      w->trying = false;
      return SpareLease(w->ttl, lease_id);
    }
    std::string id = NewUuidV4();
    std::string key = grants_prefix_ + NewUuidV4();
    const std::string lock_end = PrefixEnd(grants_prefix_);
    const std::string waiters_end = PrefixEnd(waiters_prefix_);
    // Free: no key in the lock range (no grant key, no old-layout lock key).
    json compare = json::array(
        {Compare(lock_key_, "CREATE", "EQUAL", 0, lock_end), CompareValue(epoch_key_, epoch_raw_)});
    if (fast_path) {
      compare.push_back(Compare(waiters_begin_, "CREATE", "EQUAL", 0, waiters_end));
    } else {
      compare.push_back(Compare(waiters_begin_, "CREATE", "GREATER", w->rev - 1, waiters_end));
    }
    json txn = {
        {"compare", compare},
        {"success", GrantOps(key, LockValue(id, w->holder, w->ttl, 0, epoch_), lease_id, w->key)},
        {"failure", json::array({Range(lock_key_, lock_end)})}};
    TxnOnLease(
        std::move(txn), *lease, w->ttl,
        [this, w, fast_path, retried, a, lease_id, id, key](StatusOr<json> r, bool lease_ok) {
          if (!Alive(a)) return;
          w->trying = false;
          if (!r.ok() && r.status().code() == StatusCode::kNotFound && !retried) {
            lease_fresh_.erase(lease_id);  // gone: the retry takes a new one
            if (w->finished) return;
            return TryGrant(w, fast_path, /*retried=*/true);
          }
          if (!r.ok()) {
            // Outcome unknown: revoking the lease undoes a grant that may have happened.
            Revoke(lease_id);
            SetHealthy(false, r.status().message());
            return Finish(w, Unavailable("lock store (etcd) unavailable: " + r.status().message()));
          }
          if (!JsonBool(*r, "succeeded")) {
            // The txn did not apply: the lease is still unused.
            if (lease_ok) SpareLease(w->ttl, lease_id);
            if (!lease_ok) Revoke(lease_id);
            if (w->finished) return;
            std::optional<Record> current;
            for (const json& resp : JsonArray(*r, "responses")) {
              for (const json& kv : JsonArray(JsonObject(resp, "response_range"), "kvs")) {
                if (StatusOr<EtcdKv> e = ParseKv(kv); e.ok()) current = ParseRecord(*e);
              }
            }
            if (fast_path) {
              if (!w->deadline) {
                ++counters_.rejected_busy;
                return Finish(w, BusyError("lock unavailable", current));
              }
              return Enqueue(w);
            }
            // Our mirror was behind; the watch will call Pump() again. Re-check later in case it
            // was something the watch cannot show us.
            recheck_timer_.expires_after(std::chrono::seconds(1));
            recheck_timer_.async_wait([this, a](const auto& ec) {
              if (!ec && Alive(a)) Pump();
            });
            return;
          }
          if (!lease_ok) {  // it may end before the TTL runs out: undo the grant
            Revoke(lease_id);
            return Finish(w, Unavailable("lock store (etcd): could not refresh the lock's lease"));
          }
          Granted(w, key, id, lease_id, JsonInt(JsonObject(*r, "header"), "revision"), !fast_path);
        });
  });
}

void EtcdLockService::TxnOnLease(json txn, TakenLease lease, lock::Seconds ttl,
                                 std::function<void(StatusOr<json>, bool)> done) {
  struct Join {
    int pending = 1;
    SteadyTime until;
    std::optional<StatusOr<json>> txn;
  };
  auto join = std::make_shared<Join>();
  join->pending = lease.refresh ? 2 : 1;
  join->until = lease.refresh ? SteadyTime() : lease.until;
  // Answered when the txn and (with refresh) the keepalive are: the caller waits for the slower
  // of the two instead of their sum. A grant is kept only if its lease outlives the TTL from now.
  auto step = std::make_shared<std::function<void()>>([this, join, ttl, done = std::move(done)] {
    if (--join->pending == 0) done(std::move(*join->txn), join->until >= clock_.Now() + ttl);
  });
  if (lease.refresh) {
    SteadyTime sent = clock_.Now();
    etcd_->Call(
        "/v3/lease/keepalive", {{"ID", std::to_string(lease.id)}},
        [this, join, step, lease_id = lease.id, sent,
         a = std::weak_ptr<bool>(alive_)](StatusOr<json> k) {
          if (!Alive(a)) return;
          int64_t left = k.ok() ? JsonInt(JsonObject(*k, "result"), "TTL") : 0;
          if (left > 0) {
            join->until = sent + std::chrono::seconds(left);
            MarkFresh(lease_id, join->until);
          }
          (*step)();
        },
        true);
  }
  etcd_->Call("/v3/kv/txn", std::move(txn), [join, step](StatusOr<json> r) {
    join->txn = std::move(r);
    (*step)();
  });
}

void EtcdLockService::Enqueue(std::shared_ptr<Waiter> w) {
  std::weak_ptr<bool> a = alive_;
  EnsureSession([this, w, a](Status s) {
    if (!Alive(a) || w->finished) return;
    if (!s.ok()) return Finish(w, Unavailable("lock store (etcd) unavailable: " + s.message()));
    to_enqueue_.push_back(w);
    if (enqueue_armed_) return;
    enqueue_armed_ = true;
    enqueue_timer_.expires_after(kEnqueueBatch);
    enqueue_timer_.async_wait([this, a](const auto& ec) {
      if (ec || !Alive(a)) return;
      enqueue_armed_ = false;
      FlushEnqueues();
    });
  });
}

json EtcdLockService::TakeEnqueues(Enqueues& taken) {
  json ops = json::array();
  enqueue_timer_.cancel();
  enqueue_armed_ = false;
  std::vector<std::shared_ptr<Waiter>> waiting = std::exchange(to_enqueue_, {});
  for (auto& w : waiting) {
    if (w->finished) continue;
    if (taken.size() == kMaxEnqueuesPerTxn) {
      to_enqueue_.push_back(std::move(w));
      continue;
    }
    if (!session_lease_) {  // lost since Enqueue(); answered outside the caller's txn building
      boost::asio::post(io_, [this, w, a = std::weak_ptr<bool>(alive_)] {
        if (Alive(a)) Finish(w, Unavailable("lost the etcd session; retry"));
      });
      continue;
    }
    std::string key = waiters_prefix_ + NewUuidV4();
    ops.push_back(Put(key, json{{"holder", w->holder}}.dump(), session_lease_));
    taken.emplace_back(std::move(w), std::move(key));
  }
  if (!to_enqueue_.empty())
    boost::asio::post(io_, [this, a = std::weak_ptr<bool>(alive_)] {
      if (Alive(a)) FlushEnqueues();
    });
  return ops;
}

void EtcdLockService::Enqueued(const Enqueues& taken, int64_t revision) {
  for (const auto& [w, key] : taken) {
    if (w->finished) {
      etcd_->Call("/v3/kv/deleterange", {{"key", Base64Encode(key)}}, [](StatusOr<json>) {});
      continue;
    }
    w->key = key;
    w->rev = revision;
    waiters_.insert({revision, key});
  }
}

void EtcdLockService::FlushEnqueues() {
  auto taken = std::make_shared<Enqueues>();
  json puts = TakeEnqueues(*taken);
  if (taken->empty()) return;
  json txn = {{"success", std::move(puts)}};
  etcd_->Call("/v3/kv/txn", txn, [this, taken, a = std::weak_ptr<bool>(alive_)](StatusOr<json> r) {
    if (!Alive(a)) return;
    if (!r.ok()) {
      SetHealthy(false, r.status().message());
      for (const auto& [w, key] : *taken) {
        Finish(w, Unavailable("lock store (etcd) unavailable: " + r.status().message()));
      }
      return;
    }
    Enqueued(*taken, JsonInt(JsonObject(*r, "header"), "revision"));
    Pump();
  });
}

std::shared_ptr<EtcdLockService::Waiter> EtcdLockService::OldestWaiter() const {
  std::shared_ptr<Waiter> best;
  for (auto& [id, w] : local_) {
    if (w->rev && !w->finished && (!best || w->rev < best->rev)) best = w;
  }
  if (!best || (!waiters_.empty() && waiters_.begin()->first < best->rev)) return nullptr;
  return best;
}

// Lets this replica's oldest waiter try the grant when the mirror says it may succeed.
void EtcdLockService::Pump() {
  if (stopped_ || !Ready() || lock_) return;
  if (!to_enqueue_.empty()) FlushEnqueues();  // the lock is free: no batching
  std::shared_ptr<Waiter> best = OldestWaiter();
  if (!best || best->trying) return;
  TryGrant(best, /*fast_path=*/false);
}

void EtcdLockService::EnsureSession(std::function<void(Status)> done) {
  if (session_lease_) return done(Status::Ok());
  session_waiters_.push_back(std::move(done));
  if (session_pending_) return;
  session_pending_ = true;
  etcd_->Call("/v3/lease/grant", {{"TTL", std::to_string(store_.session_ttl.count())}},
              [this, a = std::weak_ptr<bool>(alive_)](StatusOr<json> r) {
    if (!Alive(a)) return;
    session_pending_ = false;
    Status s = r.status();
    if (r.ok()) {
      session_lease_ = JsonInt(*r, "ID");
      s = Status::Ok();
      KeepSessionAlive();
    } else {
      SetHealthy(false, r.status().message());
    }
    for (auto& f : std::exchange(session_waiters_, {})) f(s);
  });
}

void EtcdLockService::KeepSessionAlive() {
  keepalive_timer_.expires_after(duration_cast<Millis>(store_.session_ttl) / 3);
  keepalive_timer_.async_wait([this, a = std::weak_ptr<bool>(alive_)](const auto& ec) {
    if (ec || !Alive(a) || stopped_ || !session_lease_) return;
    int64_t lease = session_lease_;
    etcd_->Call("/v3/lease/keepalive", {{"ID", std::to_string(lease)}},
                [this, a, lease](StatusOr<json> r) {
      if (!Alive(a) || lease != session_lease_) return;
      if (r.ok() && JsonInt(JsonObject(*r, "result"), "TTL") <= 0) {
        // The lease is gone (we were cut off too long): our queued waiters are gone with it.
        session_lease_ = 0;
        FailAllWaiters(Unavailable("lost the etcd session; retry"));
        return;
      }
      KeepSessionAlive();
    }, true);
  });
}

// ---- release / renew ----------------------------------------------------------------------

void EtcdLockService::ReadLock(std::function<void(StatusOr<std::optional<Record>>)> done) {
  json req = {{"key", Base64Encode(lock_key_)},
              {"range_end", Base64Encode(PrefixEnd(grants_prefix_))}};
  etcd_->Call(
      "/v3/kv/range", req,
      [this, done = std::move(done), a = std::weak_ptr<bool>(alive_)](StatusOr<json> r) {
        if (!Alive(a)) return;
        if (!r.ok()) {
          SetHealthy(false, r.status().message());
          return done(Unavailable("lock store (etcd) unavailable: " + r.status().message()));
        }
        std::optional<Record> rec;  // one key at most (grants need an empty range); else the newest
        for (const json& kv : JsonArray(*r, "kvs")) {
          StatusOr<EtcdKv> e = ParseKv(kv);
          if (!e.ok()) continue;
          Record k = ParseRecord(*e);
          if (!rec || (rec->foreign && !k.foreign) || k.token > rec->token) rec = std::move(k);
        }
        done(std::move(rec));
      },
      true);
}

Status EtcdLockService::NotHeld(const std::string& id) const {
  return NotFound("lock id " + Redact(id) +
                  " does not hold the lock (wrong, expired or already released)");
}

void EtcdLockService::Release(std::string_view id_view, StatusDone done) {
  if (stopped_) return done(Unavailable("tokenmgr is shutting down"));
  std::string id(id_view);
  if (!healthy_) return done(Unavailable("lock store (etcd) unavailable: " + unhealthy_why_));
  if (lock_ && !lock_->foreign && lock_->mod_revision > 0 && ConstantTimeEquals(lock_->id, id)) {
    // This replica granted it or watched it: try that version at once (no read first). If the
    // key changed meanwhile, the txn's compare fails and the attempts below read etcd.
    return ReleaseTxn(*lock_, std::move(id), 3, std::move(done));
  }
  ReleaseAttempt(std::move(id), 3, std::move(done));
}

void EtcdLockService::ReleaseAttempt(std::string id, int attempts_left, StatusDone done) {
  ReadLock([this, id, attempts_left,
            done = std::move(done)](StatusOr<std::optional<Record>> cur) mutable {
    if (!cur.ok()) return done(cur.status());
    if (!*cur || (*cur)->foreign || !ConstantTimeEquals((*cur)->id, id)) return done(NotHeld(id));
    ReleaseTxn(**cur, std::move(id), attempts_left, std::move(done));
  });
}

// Deletes the lock's key if it is still the version `rec` (read from etcd or the mirror). When
// this replica has the oldest waiter, the same txn hands the lock to it.
void EtcdLockService::ReleaseTxn(Record rec, std::string id, int attempts_left, StatusDone done) {
  std::shared_ptr<Waiter> next = OldestWaiter();
  if (!next || next->trying) {
    return ReleaseCommit(std::move(rec), std::move(id), attempts_left, nullptr, {},
                         std::move(done));
  }
  next->trying = true;  // Pump() leaves it alone until this txn is answered
  TakeLease(next->ttl,
            [this, rec = std::move(rec), id = std::move(id), attempts_left, done = std::move(done),
             next, a = std::weak_ptr<bool>(alive_)](StatusOr<TakenLease> lease) mutable {
              if (!Alive(a)) return;
              if (!lease.ok() || next->finished) {
                next->trying = false;
                if (lease.ok()) SpareLease(next->ttl, lease->id);
                next = nullptr;  // release alone; the queue grants as before
                Pump();
              }
              ReleaseCommit(std::move(rec), std::move(id), attempts_left, std::move(next),
                            lease.ok() ? *lease : TakenLease{}, std::move(done));
            });
}

void EtcdLockService::ReleaseCommit(Record rec, std::string id, int attempts_left,
                                    std::shared_ptr<Waiter> next, TakenLease lease, StatusDone done,
                                    bool retried) {
  json success = json::array({Delete(rec.key)});
  std::string key, next_id;
  if (next) {
    // Granted only if `next` is still queued and nobody anywhere queued before it. Every compare
    // of a txn, nested ones included, sees the store as it was before the txn.
    key = grants_prefix_ + NewUuidV4();
    next_id = NewUuidV4();
    json handoff = {
        {"compare", json::array({Compare(next->key, "CREATE", "EQUAL", next->rev),
                                 Compare(waiters_begin_, "CREATE", "GREATER", next->rev - 1,
                                         PrefixEnd(waiters_prefix_)),
                                 CompareValue(epoch_key_, epoch_raw_)})},
        {"success", GrantOps(key, LockValue(next_id, next->holder, next->ttl, 0, epoch_), lease.id,
                             next->key)},
        {"failure", json::array()}};
    success.push_back({{"request_txn", handoff}});
  }
  // Waiters queued meanwhile get their keys from this txn, whatever its compare says.
  auto taken = std::make_shared<Enqueues>();
  json puts = TakeEnqueues(*taken);
  for (const json& put : puts) success.push_back(put);
  json txn = {{"compare", json::array({Compare(rec.key, "MOD", "EQUAL", rec.mod_revision)})},
              {"success", success},
              {"failure", puts}};
  lock::Seconds ttl = next ? next->ttl : lock::Seconds(0);
  TxnOnLease(
      std::move(txn), next ? lease : TakenLease{}, ttl,
      [this, id = std::move(id), attempts_left, done = std::move(done),
       a = std::weak_ptr<bool>(alive_), rec, next, lease, key, next_id, ttl, taken,
       retried](StatusOr<json> r, bool lease_ok) mutable {
        if (!Alive(a)) return;
        if (next) next->trying = false;
        if (!r.ok() && r.status().code() == StatusCode::kNotFound && !retried) {
          // Refused, not applied: a lease it names is gone. Again, without the handoff.
          if (next) lease_fresh_.erase(lease.id);
          std::vector<std::shared_ptr<Waiter>> again;
          for (const auto& [w, k] : *taken) {
            if (!w->finished) again.push_back(w);
          }
          to_enqueue_.insert(to_enqueue_.begin(), again.begin(), again.end());
          return ReleaseCommit(std::move(rec), std::move(id), attempts_left, nullptr, {},
                               std::move(done), /*retried=*/true);
        }
        if (r.ok() && !taken->empty())
          Enqueued(*taken, JsonInt(JsonObject(*r, "header"), "revision"));
        if (!r.ok()) {                 // SetHealthy(false) fails every waiter, `taken` included
          if (next) Revoke(lease.id);  // outcome unknown: undo a handoff that may have happened
          SetHealthy(false, r.status().message());
          return done(Unavailable("lock store (etcd) unavailable: " + r.status().message()));
        }
        if (!JsonBool(*r, "succeeded")) {
          if (next && lease_ok) SpareLease(ttl, lease.id);  // unused by the txn
          if (next && !lease_ok) Revoke(lease.id);
          Pump();  // a handoff attempt (`trying`) may have hidden the lock's end from Pump()
          // Changed under us (expired, or renewed concurrently), or the mirror was behind: look
          // again.
          if (attempts_left <= 1) return done(NotHeld(id));
          return ReleaseAttempt(std::move(id), attempts_left - 1, std::move(done));
        }
        ++counters_.releases;
        SpareLease(lock::Seconds(rec.ttl_s), rec.lease);  // no key is bound to it any more
        lock_range_.erase(rec.key);
        if (lock_ && lock_->key == rec.key) SetLockFromRange();
        if (next) {
          const json& responses = JsonArray(*r, "responses");
          bool handed = responses.size() > 1 &&
                        JsonBool(JsonObject(responses[1], "response_txn"), "succeeded");
          if (!handed) {
            SpareLease(ttl, lease.id);  // `next` was not the oldest after all: the queue decides
          } else if (!lease_ok) {
            Revoke(lease.id);  // its lease may end early: undo the grant
            Finish(next, Unavailable("lock store (etcd): could not refresh the lock's lease"));
          } else {
            Granted(next, key, next_id, lease.id, JsonInt(JsonObject(*r, "header"), "revision"),
                    true);
          }
        }
        done(Status::Ok());
        Pump();
      });
}

void EtcdLockService::Renew(std::string id, lock::Seconds ttl, GrantDone done) {
  if (stopped_) return done(Unavailable("tokenmgr is shutting down"));
  if (!healthy_) return done(Unavailable("lock store (etcd) unavailable: " + unhealthy_why_));
  if (maintenance_->nospace()) return done(Unavailable(EtcdMaintenance::kNoSpaceMessage));
  RenewAttempt(std::move(id), ttl, 3, std::move(done));
}

void EtcdLockService::RenewAttempt(std::string id, lock::Seconds ttl, int attempts_left,
                                   GrantDone done) {
  std::weak_ptr<bool> a = alive_;
  ReadLock([this, id, ttl, attempts_left, done = std::move(done), a](
               StatusOr<std::optional<Record>> cur) mutable {
    if (!cur.ok()) return done(cur.status());
    if (!*cur || (*cur)->foreign || !ConstantTimeEquals((*cur)->id, id)) return done(NotHeld(id));
    Record rec = **cur;
    SteadyTime sent = clock_.Now();
    etcd_->Call(
        "/v3/lease/grant", {{"TTL", std::to_string((ttl + kLeaseSlack).count())}},
        [this, id, ttl, attempts_left, done = std::move(done), a, rec,
         sent](StatusOr<json> lease) mutable {
          if (!Alive(a)) return;
          if (!lease.ok()) {
            SetHealthy(false, lease.status().message());
            return done(Unavailable("lock store (etcd) unavailable: " + lease.status().message()));
          }
          int64_t lease_id = JsonInt(*lease, "ID");
          MarkFresh(lease_id, sent + std::chrono::seconds(JsonInt(*lease, "TTL")));
          json txn = {
              {"compare", json::array({Compare(rec.key, "MOD", "EQUAL", rec.mod_revision)})},
              {"success",
               json::array({Put(rec.key, LockValue(id, rec.holder, ttl, rec.acquired_ms, rec.epoch),
                                lease_id)})},
              {"failure", json::array()}};
          etcd_->Call(
              "/v3/kv/txn", txn,
              [this, id, ttl, attempts_left, done = std::move(done), a, rec,
               lease_id](StatusOr<json> r) mutable {
                if (!Alive(a)) return;
                if (!r.ok()) {
                  // Unknown outcome; the old lease still bounds the lock if the txn did not apply.
                  Revoke(lease_id);
                  SetHealthy(false, r.status().message());
                  return done(
                      Unavailable("lock store (etcd) unavailable: " + r.status().message()));
                }
                if (!JsonBool(*r, "succeeded")) {
                  Revoke(lease_id);
                  if (attempts_left <= 1) return done(NotHeld(id));
                  return RenewAttempt(std::move(id), ttl, attempts_left - 1, std::move(done));
                }
                ++counters_.renewals;
                Revoke(rec.lease);                     // the key is bound to the new lease now
                if (lock_ && lock_->key == rec.key) {  // read-your-writes; the watch confirms it
                  int64_t now = UnixMillis(clock_.WallNow());
                  lock_->ttl_s = ttl.count();
                  lock_->expires_ms = now + duration_cast<Millis>(ttl).count();
                  lock_->lease = lease_id;
                  lock_->mod_revision = JsonInt(JsonObject(*r, "header"), "revision");
                  lock_range_[rec.key] = *lock_;
                }
                done(lock::Grant{id, rec.token, ttl, duration_cast<Millis>(ttl)});
              });
        });
  });
}

void EtcdLockService::TakeLease(lock::Seconds ttl, std::function<void(StatusOr<TakenLease>)> done) {
  SteadyTime sent = clock_.Now();
  // Lives long enough for a lock with `ttl` granted now, with kLeaseMargin for the grant txn.
  auto long_enough = [sent, ttl](SteadyTime until) { return until >= sent + ttl + kLeaseMargin; };
  auto grant = [this, ttl, sent](std::function<void(StatusOr<TakenLease>)> done) {
    etcd_->Call(
        "/v3/lease/grant", {{"TTL", std::to_string((ttl + kLeaseSlack).count())}},
        [this, sent, done = std::move(done), a = std::weak_ptr<bool>(alive_)](StatusOr<json> r) {
          if (!Alive(a)) return;
          if (!r.ok()) return done(r.status());
          int64_t lease = JsonInt(*r, "ID");
          SteadyTime until = sent + std::chrono::seconds(JsonInt(*r, "TTL"));
          MarkFresh(lease, until);
          done(TakenLease{lease, false, until});
        });
  };
  auto it = spare_leases_.find(ttl.count());
  if (it == spare_leases_.end()) return grant(std::move(done));
  int64_t lease = it->second;
  spare_leases_.erase(it);
  auto fresh = lease_fresh_.find(lease);
  if (fresh != lease_fresh_.end() && long_enough(fresh->second)) {
    // Refreshed recently enough: it outlives the new lock's TTL as it is (no etcd call).
    return done(TakenLease{lease, false, fresh->second});
  }
  if (fresh != lease_fresh_.end() &&
      sent + store_.timeout + std::chrono::seconds(1) < fresh->second) {
    // Known to outlive the grant txn: the caller refreshes it in parallel with the txn.
    return done(TakenLease{lease, true, fresh->second});
  }
  // A keepalive restarts the lease's full TTL now, as a grant would; etcd's leader answers it
  // without a raft write. Expired meanwhile (TTL 0), too short (granted without the slack, e.g.
  // by an older tokenmgr) or no answer: grant a new one.
  etcd_->Call(
      "/v3/lease/keepalive", {{"ID", std::to_string(lease)}},
      [this, lease, sent, grant, long_enough, done = std::move(done),
       a = std::weak_ptr<bool>(alive_)](StatusOr<json> r) mutable {
        if (!Alive(a)) return;
        SteadyTime until =
            sent + std::chrono::seconds(r.ok() ? JsonInt(JsonObject(*r, "result"), "TTL") : 0);
        if (r.ok() && long_enough(until)) {
          MarkFresh(lease, until);
          return done(TakenLease{lease, false, until});
        }
        if (r.ok()) Revoke(lease);
        grant(std::move(done));
      },
      true);
}

void EtcdLockService::MarkFresh(int64_t lease, SteadyTime until) {
  if (lease_fresh_.size() >= 64) lease_fresh_.clear();  // expired or renewed-away leases
  lease_fresh_[lease] = until;
}

void EtcdLockService::SpareLease(lock::Seconds ttl, int64_t lease) {
  if (!lease) return;
  if (stopped_) return Revoke(lease);
  auto [it, inserted] = spare_leases_.try_emplace(ttl.count(), lease);
  if (!inserted) Revoke(std::exchange(it->second, lease));
  if (spare_leases_.size() > kMaxSpareLeases) {
    auto other = spare_leases_.begin() == it ? std::next(it) : spare_leases_.begin();
    Revoke(other->second);
    spare_leases_.erase(other);
  }
}

void EtcdLockService::Revoke(int64_t lease) {
  if (!lease) return;
  etcd_->Call("/v3/lease/revoke", {{"ID", std::to_string(lease)}}, [lease](StatusOr<json> r) {
    if (!r.ok()) spdlog::warn("etcd lease {} not revoked ({}); it expires by itself", lease,
                              r.status().message());
  }, true);
}

// ---- views --------------------------------------------------------------------------------

Status EtcdLockService::BusyError(const std::string& prefix,
                                  const std::optional<Record>& lock) const {
  std::string msg = prefix;
  if (lock && lock->foreign) {
    msg += ": held by a foreign record tokenmgr did not write, etcd key " + Printable(lock->key) +
           " (it ends when deleted or when its etcd lease expires)";
  } else if (lock) {
    int64_t left = std::max<int64_t>(0, lock->expires_ms - UnixMillis(clock_.WallNow()));
    msg += ": held by '" + lock->holder + "', lease ends in " + std::to_string(left) + " ms";
  } else {
    msg += ": earlier waiters are queued";
  }
  return FailedPrecondition(msg);
}

void EtcdLockService::GetView(ViewDone done) {
  // Synchronous by contract with the metrics page, which reads the view in place.
  // Reads still work under NOSPACE: the status page shows the holder.
  if (!Synced()) return done(Unavailable("lock store (etcd) unavailable: " + unhealthy_why_));
  lock::View v;
  v.waiters = waiters_.size();
  v.last_token = last_token_;
  if (lock_) {
    int64_t now = UnixMillis(clock_.WallNow());
    v.held = true;
    v.holder = lock_->holder;
    v.token = lock_->token;
    v.ttl = lock::Seconds(lock_->ttl_s);
    v.acquired_at = WallTime(std::chrono::milliseconds(lock_->acquired_ms));
    v.expires_in = Millis(std::max<int64_t>(0, lock_->expires_ms - now));
    v.held_for = Millis(std::max<int64_t>(0, now - lock_->acquired_ms));
  }
  done(std::move(v));
}

std::string EtcdLockService::NotReadyReason() const {
  if (stopped_) return "tokenmgr is shutting down";
  if (maintenance_->nospace()) return EtcdMaintenance::kNoSpaceMessage;
  if (!healthy_) return "lock store (etcd) unavailable: " + unhealthy_why_;
  if (!synced_) return "lock store (etcd): reading its state";
  return epoch_ == 0 ? "lock store (etcd): reading the token epoch" : "";
}

void EtcdLockService::Shutdown() {
  if (stopped_) return;
  FailAllWaiters(Unavailable("tokenmgr is shutting down"));
  stopped_ = true;
  probe_timer_.cancel();
  resync_timer_.cancel();
  keepalive_timer_.cancel();
  recheck_timer_.cancel();
  enqueue_timer_.cancel();
  maintenance_->Stop();
  etcd_->CancelWatch();
  for (const auto& [ttl, lease] : std::exchange(spare_leases_, {})) Revoke(lease);
  if (session_lease_ && healthy_) {
    // Our waiters' keys go with the session; best effort, the lease expires anyway.
    etcd_->Call("/v3/lease/revoke", {{"ID", std::to_string(session_lease_)}},
                [](StatusOr<json>) {});
  }
}

}  // namespace lm::store
