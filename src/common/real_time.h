// RealTimeSystem: the system's clocks and real Asio timers, the only place in src/ that reads
// real time or arms a real timer. RealSleeper: a real, interruptible wait for the agent's
// synchronous loop. Both thread-safe.
//
//   auto& time = RealTimeSystem::Get();
//   TimerPtr t = time.CreateTimer(io.get_executor(), [] { ... });
//   t->Arm(std::chrono::milliseconds(50));
#pragma once

#include <condition_variable>
#include <mutex>

#include "common/sleeper.h"
#include "common/time_system.h"

namespace lm {

class RealTimeSystem final : public TimeSystem {
 public:
  SteadyTime Now() const override;
  WallTime WallNow() const override;
  TimerPtr CreateTimer(boost::asio::any_io_executor executor,
                       std::function<void()> callback) override;
  static RealTimeSystem& Get();
};

class RealSleeper final : public Sleeper {
 public:
  bool SleepFor(std::chrono::nanoseconds d) override;
  // Ends a current wait at once; every later SleepFor returns false without waiting.
  void Stop();
  bool stopped() const override;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;  // Guarded by mu_
};

}  // namespace lm
