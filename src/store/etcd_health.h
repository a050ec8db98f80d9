// EtcdHealth: whether etcd works for this replica, as seen by a linearizable read (it needs a
// quorum) every probe interval and by the outcome of every other call. Choosing the member is
// EtcdClient's part (it moves to the next endpoint after a failure or "no leader"); this decides
// what the store tells its clients (503 and the reason) and when it reads etcd again.
// Not thread-safe: one io_context thread.
//
//   EtcdHealth health(time, io.get_executor(), api, "/tokenmgr/lock", 1s, hooks);
//   health.Start();                        // probes now and every interval
//   health.Set(false, "read: timeout");    // a call failed: hooks.down runs once
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
  };
  EtcdHealth(TimeSystem& time, boost::asio::any_io_executor executor, EtcdApi& etcd,
             std::string probe_key, std::chrono::milliseconds interval, Hooks hooks);

  void Start() { Probe(); }
  void Stop();
  // A call's outcome. Still down for a new reason: only the reason changes (503s name it).
  void Set(bool healthy, const std::string& why);
  bool healthy() const { return healthy_; }
  const std::string& why() const { return why_; }

 private:
  void Probe();

  EtcdApi& etcd_;
  std::string probe_key_;
  std::chrono::milliseconds interval_;
  Hooks hooks_;
  TimerPtr timer_;
  bool healthy_ = false;
  bool probing_ = false;
  bool stopped_ = false;
  std::string why_ = "etcd not reached yet";
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lm::store
