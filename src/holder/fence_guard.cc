#include "holder/fence_guard.h"

#include <algorithm>
#include <chrono>

namespace lm::holder {

FenceGuard::FenceGuard(const Clock& clock,
                       std::function<void(const std::string& name)> withdraw)
    : clock_(clock), withdraw_(std::move(withdraw)) {}

FenceGuard::~FenceGuard() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void FenceGuard::StartThread() {
  if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
}

bool FenceGuard::Arm(SteadyTime deadline, std::string name) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (fired_) return false;
    armed_ = true;
    deadline_ = deadline;
    name_ = std::move(name);
  }
  cv_.notify_all();
  return true;
}

void FenceGuard::Disarm() {
  {
    std::lock_guard<std::mutex> l(mu_);
    armed_ = false;
    fired_ = false;
  }
  cv_.notify_all();
}

bool FenceGuard::Fired() const {
  std::lock_guard<std::mutex> l(mu_);
  return fired_;
}

bool FenceGuard::Check() {
  std::lock_guard<std::mutex> l(mu_);
  return CheckLocked();
}

bool FenceGuard::CheckLocked() {
  if (!armed_ || clock_.Now() < deadline_) return false;
  armed_ = false;
  fired_ = true;
  withdraw_(name_);
  return true;
}

void FenceGuard::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stop_) {
    CheckLocked();
    std::chrono::nanoseconds wait = std::chrono::seconds(1);
    if (armed_) wait = std::clamp<std::chrono::nanoseconds>(deadline_ - clock_.Now(),
                                                            std::chrono::milliseconds(1), wait);
    cv_.wait_for(l, wait);
  }
}

}  // namespace lm::holder
