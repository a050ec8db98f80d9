// Clock: reads time. Every library reads time through a Clock (or a TimeSystem, which is one),
// so tests can use FakeClock or SimulatedTimeSystem. The real clock is RealTimeSystem
// (common/real_time.h), the only code in src/ that reads the system's clocks.
// FakeClock is thread-compatible (tests drive it from one thread).
//
//   FakeClock clock;
//   LockTable table(clock, ...);
//   clock.Advance(std::chrono::seconds(11));  // the lease has now expired
#pragma once

#include <chrono>
#include <cstdint>

namespace lm {

using SteadyTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;
using Millis = std::chrono::milliseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time: for intervals, deadlines and leases.
  virtual SteadyTime Now() const = 0;
  // Wall-clock time: for display and for persisted timestamps only.
  virtual WallTime WallNow() const = 0;
};

class FakeClock final : public Clock {
 public:
  FakeClock() : wall_(std::chrono::sys_days(std::chrono::year(2026) / 1 / 1)) {}
  SteadyTime Now() const override { return now_; }
  WallTime WallNow() const override { return wall_; }
  // Moves both clocks forward. (SimulatedTimeSystem also fires the timers that fall due.)
  void Advance(std::chrono::nanoseconds d) {
    now_ += std::chrono::duration_cast<SteadyTime::duration>(d);
    wall_ += std::chrono::duration_cast<WallTime::duration>(d);
  }
  // Moves only the wall clock (a skewed or stepped clock); monotonic time is unaffected.
  void StepWall(std::chrono::nanoseconds d) {
    wall_ += std::chrono::duration_cast<WallTime::duration>(d);
  }

 private:
  SteadyTime now_{std::chrono::hours(1000)};
  WallTime wall_;
};

inline int64_t UnixMillis(WallTime t) {
  return std::chrono::duration_cast<Millis>(t.time_since_epoch()).count();
}

}  // namespace lm
