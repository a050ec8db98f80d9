// EtcdMirror: this replica's copy of what tokenmgr keeps in etcd under its prefix (the grant,
// the waiter queue, the token epoch, foreign records), read in full once and then kept by a
// watch. Lock decisions are etcd compares; the mirror only picks which txn to try and answers
// views at once. Not thread-safe: one io_context thread, like the store that owns it.
//
//   EtcdMirror mirror(time, io.get_executor(), api, EtcdKeys("/tokenmgr/"), hooks);
//   mirror.Resync();  // read everything, make an epoch if there is none, then watch
//   if (mirror.synced() && !mirror.lock()) { ... the lock looks free ... }
//
// Contract:
// - Resync() reads the prefix, writes a new token epoch when etcd holds no usable one, and
//   watches from the revision it read. hooks.synced runs when the watch is created,
//   hooks.error(why) when a read or the epoch write fails (the mirror retries 500 ms later),
//   hooks.changed after every watch answer that was applied.
// - A canceled watch (e.g. its start revision was compacted), a closed one or a changed epoch
//   key makes the mirror read everything again; not synced() until then.
// - The watch follows the member the client uses: FollowMember() (called after each successful
//   health probe) reads everything again and watches on the member in use now when the client
//   has moved since the watch was created. A call that failed there is why the client moved,
//   and a watch on a member cut off from the others, or whose answers are lost, stays open and
//   silent. Not synced() for the one read this takes.
// - Foreign data is never an exception: logged once per key and revision, counted while present.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "common/time_system.h"
#include "store/etcd_api.h"

namespace lm::store {

// The keys tokenmgr uses under its prefix (etcd_lock_service.h describes them).
struct EtcdKeys {
  explicit EtcdKeys(const std::string& prefix);
  std::string prefix;
  std::string lock_key;        // <prefix>lock: the old layout's lock key; start of the lock range
  std::string grants_prefix;   // <prefix>lock/: grant keys; the lock range ends at its PrefixEnd
  std::string waiters_prefix;  // <prefix>waiters/: itself the fence key
  std::string waiters_begin;   // <prefix>waiters/\x02: the waiter keys' range, fences excluded
  std::string epoch_key;       // <prefix>epoch: the token epoch (decimal microseconds)
  std::string upgrade_fence;   // <prefix>waiters/\x01epoch: older replicas see a waiter forever
  std::string console_prefix;  // <prefix>console/: the operator console's keys, not the lock's
};

// A grant key (or the old layout's lock key) as read from etcd.
struct EtcdRecord {
  std::string key;
  std::string id, holder;
  uint64_t token = 0;  // epoch + create revision
  int64_t ttl_s = 0, acquired_ms = 0, expires_ms = 0;
  int64_t lease = 0, mod_revision = 0;
  uint64_t epoch = 0;    // token epoch it was granted under (0: before epochs)
  bool foreign = false;  // not a grant tokenmgr wrote: blocks grants, never released by us
};

class EtcdMirror {
 public:
  struct Hooks {
    std::function<void()> synced;                         // the watch is up
    std::function<void(const std::string& why)> error;    // etcd did not answer
    std::function<void()> changed;                        // a watch answer was applied
    // A grant's key was deleted at or after its expiry: etcd ended its lease (or it was
    // released too late). Seen by every replica's watch; not for a release this replica made
    // (EraseGrant forgets the key first). May be empty.
    std::function<void(const EtcdRecord&)> expired;
    // The watch showed a waiter key deleted (before `changed`). May be empty.
    std::function<void(const std::string& key)> waiter_deleted;
  };
  EtcdMirror(TimeSystem& time, boost::asio::any_io_executor executor, EtcdApi& etcd,
             const EtcdKeys& keys, Hooks hooks);

  void Resync();
  // etcd is unreachable: drop the watch and read everything again 500 ms from now.
  void Lost();
  void FollowMember();
  void Stop();

  bool synced() const { return synced_; }
  // The member the watch was created on ("" before the first).
  const std::string& watch_member() const { return watch_member_; }
  const std::optional<EtcdRecord>& lock() const { return lock_; }
  // (create revision, key) of every key in the waiter range; one txn may create several keys
  // of one replica (same revision).
  const std::set<std::pair<int64_t, std::string>>& waiters() const { return waiters_; }
  // Whether a waiter key k with begin <= k < end is known (by key order: no scan).
  bool AnyWaiterIn(const std::string& begin, const std::string& end) const {
    auto it = waiter_revs_.lower_bound(begin);
    return it != waiter_revs_.end() && it->first < end;
  }
  uint64_t epoch() const { return epoch_; }  // 0: none usable yet
  const std::string& epoch_raw() const { return epoch_raw_; }  // as stored (txns compare it)
  uint64_t last_token() const { return last_token_; }
  size_t foreign_count() const { return foreign_.size(); }
  bool IsForeign(const std::string& key) const { return foreign_.contains(key); }
  // "" when no foreign data is present, else what and where.
  std::string ForeignWarning() const;

  // Never fails: a value that is not a grant is a foreign record (logged once).
  EtcdRecord ParseRecord(const EtcdKv& kv);
  // Read-your-writes of this replica (the watch confirms them): a write the watch has shown
  // already is left to it, and a deletion of `key` at `mod_revision` (the version deleted) keeps
  // a newer version of the key the watch showed.
  void PutGrant(const EtcdRecord& rec);
  void EraseGrant(const std::string& key, int64_t mod_revision);
  void AddWaiter(int64_t revision, const std::string& key);
  void EraseWaiter(int64_t revision, const std::string& key);
  void NoteToken(uint64_t token) { last_token_ = std::max(last_token_, token); }

 private:
  void OnRange(StatusOr<RangeResponse> r);
  // Writes a new token epoch from the clock when etcd holds none (or an unusable one).
  void CreateEpoch();
  void OnEpochTxn(std::string value, StatusOr<TxnResponse> r);
  void StartWatch();
  void OnWatch(const WatchResponse& w);
  void Failed(const std::string& why);
  void ScheduleResync();
  void Apply(const KeyValue& kv, bool deleted);
  void ApplyLockRange(const EtcdKv& e, bool deleted);
  void ApplyWaiter(const EtcdKv& e, bool deleted);
  // lock_ = the record of lock_range_ that decides: the newest grant, else a foreign record.
  void SetLockFromRange();
  void NoteForeign(const std::string& key, int64_t mod_revision, const std::string& why);
  void ForgetForeign(const std::string& key);

  TimeSystem& time_;
  EtcdApi& etcd_;
  const EtcdKeys& keys_;
  Hooks hooks_;
  TimerPtr resync_timer_;

  std::optional<EtcdRecord> lock_;
  std::map<std::string, EtcdRecord> lock_range_;  // every key in the lock range, foreign too
  uint64_t epoch_ = 0;
  std::string epoch_raw_;
  int64_t epoch_mod_ = 0;                         // the epoch key's mod revision (0: absent)
  std::map<std::string, std::string> foreign_;    // key -> why, present now
  std::set<std::pair<std::string, int64_t>> foreign_logged_;  // (key, mod revision) logged
  std::set<std::pair<int64_t, std::string>> waiters_;
  // key -> create revision of every entry of waiters_: a deletion seen by the watch finds its
  // entry without a scan (one per handoff; a scan made 5,000 queued waiters O(N^2)).
  std::map<std::string, int64_t> waiter_revs_;
  uint64_t last_token_ = 0;
  int64_t revision_ = 0;
  std::string watch_member_;
  bool synced_ = false;
  bool resyncing_ = false;
  bool stopped_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lm::store
