#include "common/real_time.h"

#include <boost/asio/steady_timer.hpp>

namespace lm {
namespace {

// A real Asio timer. A completion that arrives after a re-arm, a Disarm() or the timer's
// destruction is dropped (`generation` and the weak state), so callers need no error codes.
class RealTimer final : public Timer {
 public:
  RealTimer(boost::asio::any_io_executor executor, std::function<void()> callback)
      : state_(std::make_shared<State>(std::move(callback))), timer_(std::move(executor)) {}
  ~RealTimer() override { timer_.cancel(); }

  void Arm(std::chrono::nanoseconds d) override {
    ++state_->generation;
    state_->armed = true;
    timer_.expires_after(std::max(d, std::chrono::nanoseconds(0)));
    std::weak_ptr<State> weak = state_;
    timer_.async_wait([weak, generation = state_->generation](const boost::system::error_code&) {
      auto s = weak.lock();
      if (!s || s->generation != generation) return;
      s->armed = false;
      s->callback();
    });
  }
  void Disarm() override {
    ++state_->generation;
    state_->armed = false;
    timer_.cancel();
  }
  bool armed() const override { return state_->armed; }

 private:
  struct State {
    explicit State(std::function<void()> cb) : callback(std::move(cb)) {}
    std::function<void()> callback;
    uint64_t generation = 0;
    bool armed = false;
  };
  std::shared_ptr<State> state_;
  boost::asio::steady_timer timer_;
};

}  // namespace

SteadyTime RealTimeSystem::Now() const { return std::chrono::steady_clock::now(); }
WallTime RealTimeSystem::WallNow() const { return std::chrono::system_clock::now(); }

TimerPtr RealTimeSystem::CreateTimer(boost::asio::any_io_executor executor,
                                     std::function<void()> callback) {
  return std::make_unique<RealTimer>(std::move(executor), std::move(callback));
}

RealTimeSystem& RealTimeSystem::Get() {
  static RealTimeSystem time;
  return time;
}

bool RealSleeper::SleepFor(std::chrono::nanoseconds d) {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait_for(l, d, [this] { return stopped_; });
  return !stopped_;
}

void RealSleeper::Stop() {
  std::lock_guard<std::mutex> l(mu_);
  stopped_ = true;
  cv_.notify_all();
}

bool RealSleeper::stopped() const {
  std::lock_guard<std::mutex> l(mu_);
  return stopped_;
}

}  // namespace lm
