// FakeEtcd: an in-memory etcd for unit tests of the etcd store, on simulated time. It keeps what
// the store relies on: a global revision with create and mod revisions per key, txns with
// compares (range compares too) and nested txns, leases whose expiry (on the TimeSystem) deletes
// their keys, watches from a revision (a compacted start revision cancels the watch), compaction
// and member status. Several clients (replicas) may share one FakeEtcd. Failures can be
// injected: unavailable, no leader, a silent watch, writes that apply but answer an error, the
// NOSPACE alarm. Single-threaded: the test, the io_context and the TimeSystem share one thread;
// every answer and watch event is posted to the executor (never run inside the call).
//
//   SimulatedTimeSystem time;
//   boost::asio::io_context io;
//   FakeEtcd etcd(time, io.get_executor());
//   std::unique_ptr<EtcdApi> api = etcd.NewClient();
//   etcd.Put("/t/foreign", "x");                     // a write from outside tokenmgr
//   time.AdvanceAndRun(std::chrono::seconds(6), io);  // leases expire, watchers hear of it
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/time_system.h"
#include "store/etcd_api.h"

namespace lm::store {

class FakeEtcdClient;

class FakeEtcd {
 public:
  FakeEtcd(TimeSystem& time, boost::asio::any_io_executor executor);
  ~FakeEtcd();

  // A client (one replica's view); it must not outlive this FakeEtcd.
  std::unique_ptr<FakeEtcdClient> NewClient(std::string name = "fake-etcd");

  // ---- direct access (synchronous; writes reach watchers like any other write) ----
  int64_t revision() const { return revision_; }
  int64_t compacted() const { return compacted_; }
  std::optional<KeyValue> Get(const std::string& key) const;
  // Every key in [begin, end) (end empty: the key alone).
  std::vector<KeyValue> List(const std::string& begin, const std::string& end) const;
  void Put(const std::string& key, const std::string& value, int64_t lease = 0);
  void Delete(const std::string& key);
  int64_t GrantLease(int64_t ttl_s);
  void RevokeLease(int64_t id);
  bool LeaseAlive(int64_t id) const { return leases_.contains(id); }
  size_t lease_count() const { return leases_.size(); }
  Status Compact(int64_t revision);

  // ---- failures ----
  // Every call fails UNAVAILABLE (or "etcdserver: no leader"); open watches end.
  void SetUnavailable(bool down);
  void SetNoLeader(bool no_leader);
  // Open watches stay open but deliver nothing (an isolated member); turned off, they catch up.
  void SilenceWatches(bool silent);
  // The next `n` writes (txns, lease grants) are applied but answered UNAVAILABLE.
  void FailAfterApply(int n) { fail_after_apply_ = n; }
  // Compactions asked through a client fail with `s` while it is not OK.
  void FailCompactions(Status s) { fail_compactions_ = std::move(s); }
  // Raises or clears an alarm; under NOSPACE, writes that put keys or grant leases are refused.
  void SetAlarm(const std::string& alarm, bool raised);

  // ---- what was asked ----
  int txns() const { return txns_; }              // txns applied (any branch)
  int lease_grants() const { return lease_grants_; }
  int compactions() const { return compactions_; }
  int status_calls() const { return status_calls_; }
  int64_t kvs_read() const { return kvs_read_; }  // keys returned by ranges (txn ranges too)
  // Keys txn compares read: live ones and, as etcd's index does until a compaction, deleted ones.
  int64_t kvs_compared() const { return kvs_compared_; }
  int open_watches() const;

 private:
  friend class FakeEtcdClient;
  struct Stored {
    std::string value;
    int64_t create_revision = 0, mod_revision = 0, lease = 0;
  };
  struct Lease {
    int64_t ttl = 0;
    SteadyTime deadline;
    std::set<std::string> keys;
  };
  struct Event {
    int64_t revision = 0;
    WatchEvent event;
  };

  Status CallStatus() const;  // the injected failure every call sees, if any
  bool Compares(const Compare& c) const;
  // Which branch each (nested) txn takes, decided on the store before any op.
  void Plan(const Txn& txn, std::vector<bool>& path) const;
  Status CheckLeases(const Txn& txn, const std::vector<bool>& path, size_t& at) const;
  void Apply(const Txn& txn, const std::vector<bool>& path, size_t& at, OpResponse& out);
  StatusOr<TxnResponse> RunTxn(const Txn& txn);
  // One write's changes; the revision moves once per write that changed something.
  void BeginWrite() { changed_ = false; }
  void EndWrite();
  void PutKey(const std::string& key, const std::string& value, int64_t lease);
  void DeleteKey(const std::string& key);
  void ExpireLeases();
  void ArmExpiry();
  void Notify();
  KeyValue ToKv(const std::string& key, const Stored& s) const;

  TimeSystem& time_;
  boost::asio::any_io_executor executor_;
  TimerPtr expiry_;
  std::map<std::string, Stored> kvs_;
  std::map<int64_t, Lease> leases_;
  std::vector<Event> history_;  // every change after compacted_
  std::set<std::string> alarms_;
  std::set<FakeEtcdClient*> clients_;
  int64_t revision_ = 1, compacted_ = 0, next_lease_ = 0x7a00;
  bool changed_ = false, down_ = false, no_leader_ = false, silent_ = false;
  int fail_after_apply_ = 0, txns_ = 0, lease_grants_ = 0, compactions_ = 0, status_calls_ = 0;
  int64_t kvs_read_ = 0;
  mutable int64_t kvs_compared_ = 0;  // Compares() is const
  Status fail_compactions_;
};

// One replica's connection to a FakeEtcd. Failures set on it affect this client alone (a replica
// cut off from etcd while others still reach it).
class FakeEtcdClient final : public EtcdApi {
 public:
  FakeEtcdClient(FakeEtcd& etcd, std::string name);
  ~FakeEtcdClient() override;

  void Range(RangeRequest request, Done<RangeResponse> done) override;
  void DoTxn(Txn txn, Done<TxnResponse> done) override;
  void DeleteKey(std::string key, StatusDone done) override;
  void LeaseGrant(int64_t ttl_s, Done<LeaseGrantResponse> done) override;
  void LeaseKeepAlive(int64_t id, Done<int64_t> done) override;
  void LeaseRevoke(int64_t id, StatusDone done, bool retry = true) override;
  void Watch(WatchRequest request, std::function<void(const WatchResponse&)> on_response,
             StatusDone on_closed) override;
  void CancelWatch() override { watch_.reset(); }
  void Compact(int64_t revision, StatusDone done) override;
  void MemberStatus(Done<EtcdStatusResponse> done) override;
  void Shutdown() override;
  // `name`, then `name`/m1, `name`/m2, ... as the client moves on from members cut off.
  std::string current_endpoint() const override;

  // This client alone: every call fails UNAVAILABLE and its watch ends.
  void SetUnavailable(bool down);
  // This client's watch stays open but delivers nothing (its member is cut off from the
  // others); turned off, it catches up (or is canceled if what it missed was compacted).
  void SilenceWatch(bool silent);
  bool watching() const { return watch_ != nullptr; }
  // The member this client uses now is cut off from the others: a watch opened on it stays
  // open and delivers nothing from now on (as an isolated etcd member does), and the next call
  // fails "etcdserver: no leader" and moves the client to another member (current_endpoint()
  // changes), where calls and new watches work, as EtcdClient moves on (a read or keepalive,
  // which EtcdClient retries on the next member, works at once).
  void IsolateMember();
  // Every call is answered `delay` late (0: at once), e.g. a member that stopped answering and
  // the client's retries on the next ones; the watch delivers nothing while `delay` > 0.
  void SetAnswerDelay(std::chrono::milliseconds delay);
  // Txns sent while set are lost in the network (a cut): neither applied nor answered until
  // DeliverHeldTxns(), as a request that a TCP retransmission brings to etcd after the cut has
  // healed. Txns sent after HoldTxns(false) go through at once.
  void HoldTxns(bool hold) { hold_txns_ = hold; }
  void DeliverHeldTxns();

 private:
  friend class FakeEtcd;
  struct WatchState {
    std::string key, range_end;
    int64_t next = 0;  // the first revision not delivered yet
    int member = 0;    // the member it was opened on
    std::function<void(const WatchResponse&)> on_response;
    StatusDone on_closed;
  };
  // The failure the next call sees, if any. A call on an isolated member moves the client to
  // the next one; one that EtcdClient retries there (`retried`: reads, keepalives) then works.
  Status CallStatus(bool retried = false);
  // Posts `f` to the executor (after the answer delay); it does not run once this client is
  // gone.
  void Post(std::function<void()> f);
  template <typename T>
  void Answer(Done<T> done, StatusOr<T> r) {
    Post([done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
  }
  void Answer(StatusDone done, Status s) {
    if (done) Post([done = std::move(done), s = std::move(s)] { done(s); });
  }
  // Sends the watch what it has not seen (or its cancel, when that was compacted).
  void Deliver();
  void CloseWatch(Status why);

  FakeEtcd& etcd_;
  std::string name_;
  bool down_ = false, silent_ = false, stopped_ = false;
  int member_ = 0;
  std::set<int> isolated_;  // members cut off from the others
  std::chrono::milliseconds delay_{0};
  bool hold_txns_ = false;
  std::vector<std::pair<Txn, Done<TxnResponse>>> held_txns_;
  std::vector<TimerPtr> delayed_;  // answers on their way (fired timers are kept until then)
  std::shared_ptr<WatchState> watch_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lm::store
