// EtcdReleaseChase: gets a lock release to etcd as soon as etcd can be reached again, whatever
// became of the request that carried it. Used by EtcdLockService (etcd_lock_service.h).
// Not thread-safe: one io_context thread.
//
//   EtcdReleaseChase chase(time, io.get_executor(), api, 500ms, 250ms);
//   chase.Sent(key, mod_revision, time.Now() + 5s, [] { ... the chase deleted it ... });
//   ... the release txn's answer: chase.Settled(key) if it was answered (applied or not) ...
//
// Why: a release txn sent while the network is cut can stay in the kernel's retransmit queue
// after the cut heals (exponential backoff: ~0.7 s later, or more), or time out with an unknown
// outcome (e.g. during the election a heal causes). Either way the grant key stays, and with it
// the lock, until its lease ends. So while a release is not answered, or after its outcome was
// unknown, the same deletion is sent again as a txn of its own, each on a connection that is
// not the stuck one (EtcdApi::DoTxnApart: over gRPC a new connection per chase, whose
// handshake goes through as soon as the cut heals; the JSON gateway's client picks an idle or
// new connection for every call anyway).
//
// Contract:
// - A chase is a txn: mod revision of `key` == `mod_revision` -> delete `key`. It deletes
//   exactly the version the release was about (a mod revision is never reused: a renewal or a
//   re-creation of the key changes it, and grant keys are reused, lock/a and lock/b), so
//   sending it any number of times, in any order with the release's own txn, deletes that
//   version at most once and never anything else. It carries no handoff and no
//   waiter keys: those stay in the release's own txn.
// - The first chase is sent `hedge` after the release was sent (Sent), then one every `retry`,
//   at most kMaxInFlight unanswered at once, until: a chase is answered (applied: `released`
//   runs once; not applied: that version is gone already, nothing left to do), Settled(key) is
//   called (the release's own txn applied), NotApplied(key) (its own txn was answered "not
//   applied") or `until` passes (the lock's lease has surely ended by then).
// - A release's own txn that did not apply may have found the key deleted by one of its
//   chases, whose answer is still on its way: NotApplied waits for the chases in flight. If
//   one applied, `released` runs; else `then(unknown)` runs, unknown = a chase's outcome is
//   not known (it may have been the one that deleted the key).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/time_system.h"
#include "store/etcd_api.h"

namespace lm::store {

class EtcdReleaseChase {
 public:
  static constexpr int kMaxInFlight = 8;

  EtcdReleaseChase(TimeSystem& time, boost::asio::any_io_executor executor, EtcdApi& etcd,
                   std::chrono::milliseconds hedge, std::chrono::milliseconds retry);

  // The release txn deleting `key` at `mod_revision` is being sent (from when its version is
  // known: calls before the txn itself, e.g. for a handoff's lease, may stick too). Sent again
  // for the same version (a retry of that release): the chase goes on as it was. Sent for a
  // newer version of the key: the older one's chase ends, and a `then` it waits for runs (posted)
  // with unknown = true.
  void Sent(const std::string& key, int64_t mod_revision, SteadyTime until,
            std::function<void()> released);
  // The release's own txn applied: nothing to chase.
  void Settled(const std::string& key);
  // The release's own txn failed (outcome unknown): chasing goes on, and ends once a chase is
  // answered.
  void Failed(const std::string& key);
  // The release's own txn was answered "not applied" (that version was gone): `then` runs
  // (maybe at once) once no chase is in flight, unless a chase applied (`released` runs).
  void NotApplied(const std::string& key, std::function<void(bool unknown)> then);
  void Stop();

  size_t pending() const { return pending_.size(); }
  uint64_t released_count() const { return released_count_; }  // versions a chase deleted

 private:
  struct Entry {
    int64_t mod_revision = 0;
    SteadyTime due;    // the next chase
    SteadyTime until;  // give up then
    enum class Own { kPending, kFailed, kNotApplied };  // the release's own txn
    Own own = Own::kPending;
    int in_flight = 0;
    bool unknown = false;  // a chase failed: it may have applied
    bool gone = false;     // a chase found that version gone: no new chases
    std::function<void()> released;
    std::function<void(bool unknown)> then;  // set by NotApplied
  };
  void Erase(std::map<std::string, Entry>::iterator it);
  void Tick();
  void Chase(const std::string& key, Entry& e);
  void OnChase(const std::string& key, int64_t mod_revision, StatusOr<TxnResponse> r);

  TimeSystem& time_;
  boost::asio::any_io_executor executor_;
  EtcdApi& etcd_;
  std::chrono::milliseconds hedge_, retry_;
  TimerPtr timer_;
  std::map<std::string, Entry> pending_;  // by grant key; Sent for a newer version replaces it
  uint64_t released_count_ = 0;
  bool stopped_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lm::store
