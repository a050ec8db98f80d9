#include "store/testing/fake_etcd.h"

#include <set>

#include <algorithm>
#include <boost/asio/post.hpp>

namespace lm::store {

namespace {

bool InRange(const std::string& key, const std::string& begin, const std::string& end) {
  if (end.empty()) return key == begin;
  return key >= begin && key < end;
}

bool Holds(CompareResult r, int64_t have, int64_t want) {
  switch (r) {
    case CompareResult::kEqual: return have == want;
    case CompareResult::kGreater: return have > want;
    case CompareResult::kLess: return have < want;
    case CompareResult::kNotEqual: return have != want;
  }
  return false;
}

}  // namespace

// ---- FakeEtcd -----------------------------------------------------------------------------

FakeEtcd::FakeEtcd(TimeSystem& time, boost::asio::any_io_executor executor)
    : time_(time), executor_(executor) {
  expiry_ = time_.CreateTimer(executor_, [this] { ExpireLeases(); });
}

FakeEtcd::~FakeEtcd() = default;

std::unique_ptr<FakeEtcdClient> FakeEtcd::NewClient(std::string name) {
  return std::make_unique<FakeEtcdClient>(*this, std::move(name));
}

KeyValue FakeEtcd::ToKv(const std::string& key, const Stored& s) const {
  KeyValue kv;
  kv.key = key;
  kv.value = s.value;
  kv.create_revision = s.create_revision;
  kv.mod_revision = s.mod_revision;
  kv.lease = s.lease;
  return kv;
}

std::optional<KeyValue> FakeEtcd::Get(const std::string& key) const {
  auto it = kvs_.find(key);
  if (it == kvs_.end()) return std::nullopt;
  return ToKv(key, it->second);
}

std::vector<KeyValue> FakeEtcd::List(const std::string& begin, const std::string& end) const {
  std::vector<KeyValue> out;
  for (auto it = kvs_.lower_bound(begin); it != kvs_.end() && InRange(it->first, begin, end);
       ++it) {
    out.push_back(ToKv(it->first, it->second));
  }
  return out;
}

void FakeEtcd::Put(const std::string& key, const std::string& value, int64_t lease) {
  BeginWrite();
  PutKey(key, value, lease);
  EndWrite();
}

void FakeEtcd::Delete(const std::string& key) {
  BeginWrite();
  DeleteKey(key);
  EndWrite();
}

int64_t FakeEtcd::GrantLease(int64_t ttl_s) {
  int64_t id = next_lease_++;
  leases_[id] = {ttl_s, time_.Now() + std::chrono::seconds(ttl_s), {}};
  ++lease_grants_;
  ArmExpiry();
  return id;
}

void FakeEtcd::RevokeLease(int64_t id) {
  auto it = leases_.find(id);
  if (it == leases_.end()) return;
  std::set<std::string> keys = std::move(it->second.keys);
  leases_.erase(it);
  BeginWrite();  // etcd deletes a lease's keys in one write
  for (const std::string& key : keys) DeleteKey(key);
  EndWrite();
  ArmExpiry();
}

Status FakeEtcd::Compact(int64_t revision) {
  if (revision <= compacted_) {
    return Unavailable("etcd fake: etcdserver: mvcc: required revision has been compacted");
  }
  if (revision > revision_) {
    return Unavailable("etcd fake: etcdserver: mvcc: required revision is a future revision");
  }
  compacted_ = revision;
  std::erase_if(history_, [&](const Event& e) { return e.revision < revision; });
  ++compactions_;
  Notify();
  return Status::Ok();
}

void FakeEtcd::SetUnavailable(bool down) {
  down_ = down;
  if (down) {
    for (FakeEtcdClient* c : clients_) c->CloseWatch(Unavailable("etcd fake: connect: refused"));
  }
}

void FakeEtcd::SetNoLeader(bool no_leader) {
  no_leader_ = no_leader;
  if (no_leader) {
    for (FakeEtcdClient* c : clients_) {
      c->CloseWatch(Unavailable("etcd watch: etcdserver: no leader"));
    }
  }
}

void FakeEtcd::SilenceWatches(bool silent) {
  silent_ = silent;
  if (!silent) Notify();
}

void FakeEtcd::SetAlarm(const std::string& alarm, bool raised) {
  if (raised) {
    alarms_.insert(alarm);
  } else {
    alarms_.erase(alarm);
  }
}

int FakeEtcd::open_watches() const {
  return static_cast<int>(
      std::count_if(clients_.begin(), clients_.end(), [](auto* c) { return c->watching(); }));
}

Status FakeEtcd::CallStatus() const {
  if (down_) return Unavailable("etcd fake: connect: refused");
  if (no_leader_) return Unavailable("etcd fake answered 503: etcdserver: no leader");
  return Status::Ok();
}

bool FakeEtcd::Compares(const Compare& c) const {
  std::vector<KeyValue> kvs = List(c.key, c.range_end);
  // etcd visits every key of the range in its index, deleted ones too until a compaction drops
  // them: count those as read.
  std::set<std::string> visited;
  for (const KeyValue& kv : kvs) visited.insert(kv.key);
  for (const Event& e : history_) {
    const std::string& k = e.event.kv.key;
    bool in = c.range_end.empty() ? k == c.key : (k >= c.key && k < c.range_end);
    if (e.event.deleted && in) visited.insert(k);
  }
  kvs_compared_ += static_cast<int64_t>(visited.size());
  if (c.target == CompareTarget::kValue) {
    if (kvs.empty()) return false;
    return std::all_of(kvs.begin(), kvs.end(), [&](const KeyValue& kv) {
      return c.result == CompareResult::kEqual ? kv.value == c.value : kv.value != c.value;
    });
  }
  auto revision_of = [&](const KeyValue& kv) {
    return c.target == CompareTarget::kCreate ? kv.create_revision : kv.mod_revision;
  };
  if (kvs.empty()) return Holds(c.result, 0, c.revision);  // etcd compares an absent key as 0
  return std::all_of(kvs.begin(), kvs.end(),
                     [&](const KeyValue& kv) { return Holds(c.result, revision_of(kv), c.revision); });
}

void FakeEtcd::Plan(const Txn& txn, std::vector<bool>& path) const {
  bool ok = std::all_of(txn.compare.begin(), txn.compare.end(),
                        [&](const Compare& c) { return Compares(c); });
  path.push_back(ok);
  for (const Op& op : ok ? txn.success : txn.failure) {
    if (op.kind == Op::Kind::kTxn) Plan(*op.txn, path);
  }
}

Status FakeEtcd::CheckLeases(const Txn& txn, const std::vector<bool>& path, size_t& at) const {
  bool ok = path[at++];
  for (const Op& op : ok ? txn.success : txn.failure) {
    if (op.kind == Op::Kind::kPut && op.lease && !leases_.contains(op.lease)) {
      return NotFound("etcd fake: etcdserver: requested lease not found");
    }
    if (op.kind == Op::Kind::kPut && alarms_.contains("NOSPACE")) {
      return Unavailable("etcd fake: etcdserver: mvcc: database space exceeded");
    }
    if (op.kind == Op::Kind::kTxn) {
      if (Status s = CheckLeases(*op.txn, path, at); !s.ok()) return s;
    }
  }
  return Status::Ok();
}

void FakeEtcd::Apply(const Txn& txn, const std::vector<bool>& path, size_t& at,
                     OpResponse& out) {
  out.succeeded = path[at++];
  for (const Op& op : out.succeeded ? txn.success : txn.failure) {
    OpResponse r;
    switch (op.kind) {
      case Op::Kind::kPut: PutKey(op.key, op.value, op.lease); break;
      case Op::Kind::kDelete:
        if (op.range_end.empty()) {
          DeleteKey(op.key);
        } else {
          for (const KeyValue& kv : List(op.key, op.range_end)) DeleteKey(kv.key);
        }
        break;
      case Op::Kind::kRange:
        r.kvs = List(op.key, op.range_end);
        kvs_read_ += static_cast<int64_t>(r.kvs.size());
        break;
      case Op::Kind::kTxn: Apply(*op.txn, path, at, r); break;
    }
    out.responses.push_back(std::move(r));
  }
}

StatusOr<TxnResponse> FakeEtcd::RunTxn(const Txn& txn) {
  std::vector<bool> path;
  Plan(txn, path);
  size_t at = 0;
  if (Status s = CheckLeases(txn, path, at); !s.ok()) return s;
  OpResponse out;
  at = 0;
  BeginWrite();
  Apply(txn, path, at, out);
  EndWrite();
  ++txns_;
  if (fail_after_apply_ > 0) {
    --fail_after_apply_;
    return Unavailable("etcd fake: read: timeout (the txn was applied)");
  }
  return TxnResponse{revision_, out.succeeded, std::move(out.responses)};
}

void FakeEtcd::EndWrite() {
  if (!changed_) return;
  ++revision_;
  changed_ = false;
  Notify();
}

void FakeEtcd::PutKey(const std::string& key, const std::string& value, int64_t lease) {
  const int64_t rev = revision_ + 1;
  auto [it, created] = kvs_.try_emplace(key);
  Stored& s = it->second;
  if (created) s.create_revision = rev;
  if (s.lease != lease) {
    if (auto old = leases_.find(s.lease); old != leases_.end()) old->second.keys.erase(key);
    if (auto now = leases_.find(lease); now != leases_.end()) now->second.keys.insert(key);
  }
  s.value = value;
  s.mod_revision = rev;
  s.lease = lease;
  changed_ = true;
  history_.push_back({rev, {false, ToKv(key, s)}});
}

void FakeEtcd::DeleteKey(const std::string& key) {
  auto it = kvs_.find(key);
  if (it == kvs_.end()) return;
  const int64_t rev = revision_ + 1;
  if (auto l = leases_.find(it->second.lease); l != leases_.end()) l->second.keys.erase(key);
  kvs_.erase(it);
  KeyValue kv;
  kv.key = key;
  kv.mod_revision = rev;
  history_.push_back({rev, {true, kv}});
  changed_ = true;
}

void FakeEtcd::ExpireLeases() {
  const SteadyTime now = time_.Now();
  std::vector<int64_t> due;
  for (const auto& [id, lease] : leases_) {
    if (lease.deadline <= now) due.push_back(id);
  }
  for (int64_t id : due) RevokeLease(id);
  ArmExpiry();
}

void FakeEtcd::ArmExpiry() {
  std::optional<SteadyTime> next;
  for (const auto& [id, lease] : leases_) {
    if (!next || lease.deadline < *next) next = lease.deadline;
  }
  if (next) {
    expiry_->Arm(*next - time_.Now());
  } else {
    expiry_->Disarm();
  }
}

void FakeEtcd::Notify() {
  for (FakeEtcdClient* c : clients_) {
    if (c->watch_) c->Post([c] { c->Deliver(); });
  }
}

// ---- FakeEtcdClient -----------------------------------------------------------------------

FakeEtcdClient::FakeEtcdClient(FakeEtcd& etcd, std::string name)
    : etcd_(etcd), name_(std::move(name)) {
  etcd_.clients_.insert(this);
}

FakeEtcdClient::~FakeEtcdClient() {
  etcd_.clients_.erase(this);
  *alive_ = false;
}

void FakeEtcdClient::Post(std::function<void()> f) {
  auto guarded = [a = std::weak_ptr<bool>(alive_), f = std::move(f)] {
    if (!a.expired()) f();
  };
  if (delay_.count() == 0) return boost::asio::post(etcd_.executor_, std::move(guarded));
  if (delayed_.size() > 256) delayed_.clear();  // long fired (tests delay a few calls)
  TimerPtr& t = delayed_.emplace_back(etcd_.time_.CreateTimer(etcd_.executor_, guarded));
  t->Arm(delay_);
}

std::string FakeEtcdClient::current_endpoint() const {
  return member_ == 0 ? name_ : name_ + "/m" + std::to_string(member_);
}

Status FakeEtcdClient::CallStatus(bool retried) {
  if (stopped_) return Unavailable("etcd client stopped");
  if (down_) return Unavailable("etcd fake (" + name_ + "): connect: refused");
  if (isolated_.contains(member_)) {
    std::string member = current_endpoint();
    ++member_;  // as EtcdClient: later calls go to the next member
    if (retried) return CallStatus(false);
    return Unavailable("etcd " + member + " answered 503: etcdserver: no leader");
  }
  return etcd_.CallStatus();
}

void FakeEtcdClient::IsolateMember() { isolated_.insert(member_); }

void FakeEtcdClient::SetAnswerDelay(std::chrono::milliseconds delay) {
  delay_ = delay;
  if (delay.count() == 0 && watch_) Post([this] { Deliver(); });
}

void FakeEtcdClient::SetUnavailable(bool down) {
  down_ = down;
  if (down) CloseWatch(Unavailable("etcd fake (" + name_ + "): watch read: connection reset"));
}

void FakeEtcdClient::SilenceWatch(bool silent) {
  silent_ = silent;
  if (!silent && watch_) Post([this] { Deliver(); });
}

void FakeEtcdClient::Range(RangeRequest request, Done<RangeResponse> done) {
  if (Status s = CallStatus(/*retried=*/true); !s.ok()) {
    return Answer(std::move(done), StatusOr<RangeResponse>(s));
  }
  RangeResponse r;
  r.revision = etcd_.revision_;
  std::vector<KeyValue> kvs = etcd_.List(request.key, request.range_end);
  r.count = static_cast<int64_t>(kvs.size());
  if (!request.count_only) {
    etcd_.kvs_read_ += r.count;
    r.kvs = std::move(kvs);
  }
  Answer(std::move(done), StatusOr<RangeResponse>(std::move(r)));
}

void FakeEtcdClient::DeliverHeldTxns() {
  const bool hold = std::exchange(hold_txns_, false);
  for (auto& [txn, done] : std::exchange(held_txns_, {})) DoTxn(std::move(txn), std::move(done));
  hold_txns_ = hold;
}

void FakeEtcdClient::DoTxn(Txn txn, Done<TxnResponse> done) {
  if (hold_txns_) {
    held_txns_.emplace_back(std::move(txn), std::move(done));
    return;
  }
  if (Status s = CallStatus(); !s.ok()) return Answer(std::move(done), StatusOr<TxnResponse>(s));
  Answer(std::move(done), etcd_.RunTxn(txn));
}

void FakeEtcdClient::DeleteKey(std::string key, StatusDone done) {
  if (Status s = CallStatus(); !s.ok()) return Answer(std::move(done), s);
  etcd_.Delete(key);
  Answer(std::move(done), Status::Ok());
}

void FakeEtcdClient::LeaseGrant(int64_t ttl_s, Done<LeaseGrantResponse> done) {
  Status s = CallStatus();
  if (s.ok() && etcd_.alarms_.contains("NOSPACE")) {
    s = Unavailable("etcd fake: etcdserver: mvcc: database space exceeded");
  }
  if (!s.ok()) return Answer(std::move(done), StatusOr<LeaseGrantResponse>(s));
  LeaseGrantResponse r{etcd_.GrantLease(ttl_s), ttl_s};
  if (etcd_.fail_after_apply_ > 0) {
    --etcd_.fail_after_apply_;
    return Answer(std::move(done), StatusOr<LeaseGrantResponse>(
                                       Unavailable("etcd fake: read: timeout (lease granted)")));
  }
  Answer(std::move(done), StatusOr<LeaseGrantResponse>(r));
}

void FakeEtcdClient::LeaseKeepAlive(int64_t id, Done<int64_t> done) {
  if (Status s = CallStatus(/*retried=*/true); !s.ok()) {
    return Answer(std::move(done), StatusOr<int64_t>(s));
  }
  auto it = etcd_.leases_.find(id);
  int64_t ttl = 0;
  if (it != etcd_.leases_.end()) {
    it->second.deadline = etcd_.time_.Now() + std::chrono::seconds(it->second.ttl);
    ttl = it->second.ttl;
    etcd_.ArmExpiry();
  }
  Answer(std::move(done), StatusOr<int64_t>(ttl));
}

void FakeEtcdClient::LeaseRevoke(int64_t id, StatusDone done, bool retry) {
  if (Status s = CallStatus(); !s.ok()) return Answer(std::move(done), s);
  if (!etcd_.LeaseAlive(id)) {
    return Answer(std::move(done), NotFound("etcd fake: etcdserver: requested lease not found"));
  }
  etcd_.RevokeLease(id);
  Answer(std::move(done), Status::Ok());
}

void FakeEtcdClient::Watch(WatchRequest request,
                           std::function<void(const WatchResponse&)> on_response,
                           StatusDone on_closed) {
  auto w = std::make_shared<WatchState>();
  w->key = std::move(request.key);
  w->range_end = std::move(request.range_end);
  w->next = request.start_revision > 0 ? request.start_revision : etcd_.revision_ + 1;
  w->on_response = std::move(on_response);
  w->on_closed = std::move(on_closed);
  watch_ = w;
  if (Status s = CallStatus(); !s.ok()) return CloseWatch(s);
  w->member = member_;
  Post([this, w] {
    if (watch_ != w) return;
    if (w->next >= etcd_.compacted_) {
      WatchResponse created;
      created.created = true;
      created.revision = etcd_.revision_;
      w->on_response(created);
    }
    Deliver();
  });
}

void FakeEtcdClient::Deliver() {
  std::shared_ptr<WatchState> w = watch_;
  if (!w || etcd_.silent_ || silent_ || down_ || stopped_ || delay_.count() > 0 ||
      isolated_.contains(w->member)) {
    return;
  }
  if (w->next < etcd_.compacted_) {
    watch_.reset();  // etcd ends it; the store cancels and reads everything again
    WatchResponse canceled;
    canceled.canceled = true;
    canceled.cancel_reason = "mvcc: required revision has been compacted";
    canceled.revision = etcd_.revision_;
    w->on_response(canceled);
    return;
  }
  WatchResponse r;
  r.revision = etcd_.revision_;
  for (const FakeEtcd::Event& e : etcd_.history_) {
    if (e.revision >= w->next && InRange(e.event.kv.key, w->key, w->range_end)) {
      r.events.push_back(e.event);
    }
  }
  w->next = etcd_.revision_ + 1;
  if (!r.events.empty()) w->on_response(r);
}

void FakeEtcdClient::CloseWatch(Status why) {
  std::shared_ptr<WatchState> w = std::move(watch_);
  if (!w || !w->on_closed) return;
  Post([w, why] { w->on_closed(why); });
}

void FakeEtcdClient::Compact(int64_t revision, StatusDone done) {
  if (Status s = CallStatus(); !s.ok()) return Answer(std::move(done), s);
  if (!etcd_.fail_compactions_.ok()) return Answer(std::move(done), etcd_.fail_compactions_);
  Answer(std::move(done), etcd_.Compact(revision));
}

void FakeEtcdClient::MemberStatus(Done<EtcdStatusResponse> done) {
  ++etcd_.status_calls_;
  if (Status s = CallStatus(); !s.ok()) {
    return Answer(std::move(done), StatusOr<EtcdStatusResponse>(s));
  }
  EtcdStatusResponse r;
  r.revision = etcd_.revision_;
  r.db_size = 4096 + 128 * static_cast<int64_t>(etcd_.history_.size());
  r.db_size_in_use = 2048 + 128 * static_cast<int64_t>(etcd_.kvs_.size());
  r.alarms = etcd_.alarms_;
  Answer(std::move(done), StatusOr<EtcdStatusResponse>(std::move(r)));
}

void FakeEtcdClient::Shutdown() {
  if (stopped_) return;
  stopped_ = true;
  CloseWatch(Unavailable("etcd client stopped"));
}

}  // namespace lm::store
