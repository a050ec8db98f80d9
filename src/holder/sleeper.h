// Sleeper: an interruptible wait, so the agent loop can stop within milliseconds of SIGTERM.
// RealSleeper is thread-safe (Stop() from a signal thread). FakeSleeper advances a FakeClock.
//
//   RealSleeper s;
//   if (!s.SleepFor(10s)) return;  // stopped
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "common/clock.h"

namespace lm::holder {

class Sleeper {
 public:
  virtual ~Sleeper() = default;
  // Returns false if stopped (now or during the wait).
  virtual bool SleepFor(std::chrono::nanoseconds d) = 0;
  virtual bool stopped() const = 0;
};

class RealSleeper final : public Sleeper {
 public:
  bool SleepFor(std::chrono::nanoseconds d) override {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, d, [this] { return stopped_; });
    return !stopped_;
  }
  void Stop() {
    std::lock_guard<std::mutex> l(mu_);
    stopped_ = true;
    cv_.notify_all();
  }
  bool stopped() const override {
    std::lock_guard<std::mutex> l(mu_);
    return stopped_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;  // Guarded by mu_
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

}  // namespace lm::holder
