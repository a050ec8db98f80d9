// FenceGuard: takes the license off the host at the self-fence deadline even when the agent's
// own thread cannot (it is stuck in a system call on the pool: an NFS hard mount whose server is
// unreachable blocks every call until the server answers again, and meanwhile the claim goes
// stale and another node may take the license).
//
//   FenceGuard guard(clock, [&](const std::string& name) { /* take name off the host */ });
//   guard.StartThread();                          // production only: the thread reads the clock
//   guard.Arm(last_confirmed + fence_after, name);  // installed and confirmed: fence at this time
//   guard.UnlessFired([&] { ...install the license into the host dir... });
//   guard.Locked([&] { ...remove its files... });
//   if (guard.Fired()) { ...the agent withdraws (idempotent) and Disarm()s... }
//
// Contract:
// - While armed, once the clock reaches the deadline, `withdraw` runs once, under the guard's
//   lock, and the guard is fired: it stays so (Arm() refuses) until Disarm().
// - Locked(f) and UnlessFired(f) run f under the same lock: the agent's own host-dir changes
//   and the guard's withdrawal never interleave, and no install follows the guard's
//   withdrawal. `withdraw` must not touch the pool (it may hang too), and f must not wait for
//   the pool (the guard would wait behind it).
// - The thread (StartThread) wakes at the deadline, on Arm and Disarm, and at least every
//   second; the destructor stops and joins it. Check() does what the thread does, once, on the
//   caller's thread (tests with a fake clock start no thread).
// Thread-safe.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.h"

namespace lm::holder {

class FenceGuard {
 public:
  // `withdraw` gets the name given to Arm() (what is installed, for its log line).
  FenceGuard(const Clock& clock, std::function<void(const std::string& name)> withdraw);
  ~FenceGuard();
  FenceGuard(const FenceGuard&) = delete;
  FenceGuard& operator=(const FenceGuard&) = delete;

  void StartThread();
  // Withdraw at `deadline` unless armed again later or disarmed. False (and not armed) if the
  // guard has fired and was not disarmed since: the license is off the host already.
  bool Arm(SteadyTime deadline, std::string name);
  // Nothing installed to guard (withdrawn, released, given back); clears Fired().
  void Disarm();
  bool Fired() const;
  // Fires now if armed and the deadline has passed; true if it fired in this call.
  bool Check();
  template <typename F>
  auto Locked(F&& f) {
    std::lock_guard<std::mutex> l(mu_);
    return f();
  }
  // Runs f under the lock unless the guard has fired (it fires first if the deadline passed):
  // an install never lands after the guard took the license off. False if f did not run.
  template <typename F>
  bool UnlessFired(F&& f) {
    std::lock_guard<std::mutex> l(mu_);
    CheckLocked();
    if (fired_) return false;
    f();
    return true;
  }

 private:
  bool CheckLocked();
  void Loop();

  const Clock& clock_;
  std::function<void(const std::string& name)> withdraw_;
  std::string name_;      // Guarded by mu_
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool armed_ = false;    // Guarded by mu_
  bool fired_ = false;    // Guarded by mu_
  bool stop_ = false;     // Guarded by mu_
  SteadyTime deadline_;   // Guarded by mu_
  std::thread thread_;
};

}  // namespace lm::holder
