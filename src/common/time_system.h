// TimeSystem: the one seam for time. It reads time (it is a Clock) and schedules timers whose
// callbacks run on an Asio executor. RealTimeSystem (common/real_time.h) reads the system's
// clocks and arms real timers: it is the only code in src/ that does either. Tests use
// SimulatedTimeSystem: its timers fire when the test advances it, with no real waiting.
//
//   SimulatedTimeSystem time;
//   TimerPtr t = time.CreateTimer(io.get_executor(), [&] { fired = true; });
//   t->Arm(std::chrono::seconds(5));
//   time.AdvanceAndRun(std::chrono::seconds(5), io);  // fired == true
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "common/clock.h"

namespace lm {

// A one-shot timer with a fixed callback (envoy's Event::Timer). Used from its executor's thread
// only. The callback runs on that executor, never inside Arm(), and never after Disarm() or
// destruction, even when its time had already come.
class Timer {
 public:
  virtual ~Timer() = default;
  // Calls the callback once, `d` from now (d <= 0: as soon as possible). Arming an armed timer
  // replaces its deadline.
  virtual void Arm(std::chrono::nanoseconds d) = 0;
  virtual void Disarm() = 0;
  virtual bool armed() const = 0;
};
using TimerPtr = std::unique_ptr<Timer>;

class TimeSystem : public Clock {
 public:
  // Thread-safe. The callback may re-arm or destroy its own timer.
  virtual TimerPtr CreateTimer(boost::asio::any_io_executor executor,
                               std::function<void()> callback) = 0;
};

// Time that moves only when the test says so. Single-threaded: the test, its io_context and
// every timer share one thread.
class SimulatedTimeSystem final : public TimeSystem {
 public:
  SimulatedTimeSystem();
  ~SimulatedTimeSystem() override;

  SteadyTime Now() const override { return clock_.Now(); }
  WallTime WallNow() const override { return clock_.WallNow(); }
  TimerPtr CreateTimer(boost::asio::any_io_executor executor,
                       std::function<void()> callback) override;

  // Moves time forward by `d`, stopping at each armed deadline on the way (earliest first) to
  // post that timer's callback to its executor. Callbacks run when their io_context runs.
  void Advance(std::chrono::nanoseconds d);
  // Like Advance, and runs `io` (poll, never blocking) before time moves and after each timer
  // fired, so a callback that re-arms within the interval fires again within it.
  void AdvanceAndRun(std::chrono::nanoseconds d, boost::asio::io_context& io);
  // Moves only the wall clock; no timer fires.
  void StepWall(std::chrono::nanoseconds d) { clock_.StepWall(d); }
  // The number of armed timers (for tests that check nothing is left scheduled).
  size_t armed_timers() const;
  // When the earliest armed timer is due, if any.
  std::optional<SteadyTime> NextDeadline() const;

  struct Entry;  // one timer's state (time_system.cc)

 private:
  bool FireNext(SteadyTime until);

  FakeClock clock_;
  uint64_t next_order_ = 0;
  std::vector<std::weak_ptr<Entry>> timers_;
};

}  // namespace lm
