// Sleeper: an interruptible wait, so a synchronous loop (the agent's) can stop within
// milliseconds of SIGTERM. RealSleeper (common/real_time.h) waits in real time and is
// thread-safe (Stop() from a signal thread); FakeSleeper advances a FakeClock instead.
//
//   FakeClock clock;
//   FakeSleeper s(clock);
//   s.SleepFor(10s);  // clock.Now() moved by 10 s, at once
#pragma once

#include <chrono>

#include "common/clock.h"

namespace lm {

class Sleeper {
 public:
  virtual ~Sleeper() = default;
  // Returns false if stopped (now or during the wait).
  virtual bool SleepFor(std::chrono::nanoseconds d) = 0;
  virtual bool stopped() const = 0;
};

class FakeSleeper final : public Sleeper {
 public:
  explicit FakeSleeper(FakeClock& clock) : clock_(clock) {}
  bool SleepFor(std::chrono::nanoseconds d) override {
    clock_.Advance(d);
    return !stopped_;
  }
  bool stopped() const override { return stopped_; }
  bool stopped_ = false;

 private:
  FakeClock& clock_;
};

}  // namespace lm
