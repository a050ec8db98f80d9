// EtcdHealth: whether etcd works for this replica, as seen by a linearizable read (it needs a
// quorum) every probe interval and by the outcome of every other call. Choosing the member is
// EtcdClient's part (it moves to the next endpoint after a failure or "no leader"); this decides
// what the store tells its clients (503 and the reason) and when it reads etcd again.
// Not thread-safe: one io_context thread.
//
//   EtcdHealth health(time, io.get_executor(), api, "/tokenmgr/lock", 1s, 2s, hooks);
//   health.Start();                        // probes now and every interval
//   health.Set(false, "read: timeout");    // a call failed: hooks.down runs once
//
// Contract:
// - A probe that has not answered within `deadline` makes etcd unhealthy at once ("no answer
//   within ..."), even while the client still tries other members for it: a replica cut off
//   from every member is not ready after about interval + deadline, not after a timeout per
//   member. A later successful probe makes it healthy again.
// - While unhealthy it probes every interval / 4 (at most one probe in flight), so that a
//   replica is ready again within about interval / 4 of etcd answering (e.g. after the
//   election a heal causes), not up to a whole interval later.
// - hooks.probed runs after every successful probe (the store checks there that its watch is
//   on the member the client uses now).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/time_system.h"
#include "store/etcd_api.h"

namespace lm::store {

class EtcdHealth {
 public:
  struct Hooks {
    std::function<void()> up;                         // etcd works again
    std::function<void(const std::string& why)> down;  // etcd stopped working
    std::function<void()> probed;                     // a probe succeeded (may be empty)
  };
  EtcdHealth(TimeSystem& time, boost::asio::any_io_executor executor, EtcdApi& etcd,
             std::string probe_key, std::chrono::milliseconds interval,
             std::chrono::milliseconds deadline, Hooks hooks);

  void Start() { Probe(); }
  void Stop();
  // A call's outcome. Still down for a new reason: only the reason changes (503s name it).
  void Set(bool healthy, const std::string& why);
  bool healthy() const { return healthy_; }
  const std::string& why() const { return why_; }

 private:
  void Probe();
  void ProbeOverdue();
  std::chrono::milliseconds NextProbe() const { return healthy_ ? interval_ : interval_ / 4; }

  EtcdApi& etcd_;
  std::string probe_key_;
  std::chrono::milliseconds interval_, deadline_;
  Hooks hooks_;
  TimerPtr timer_, deadline_timer_;
  bool healthy_ = false;
  bool probing_ = false;
  bool stopped_ = false;
  std::string why_ = "etcd not reached yet";
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lm::store
