#include "common/time_system.h"

#include <algorithm>
#include <boost/asio/post.hpp>

namespace lm {

// One simulated timer's state, shared by the timer object and the time system's list. A posted
// callback runs only if the timer still exists and was not re-armed or disarmed since
// (`generation` unchanged).
struct SimulatedTimeSystem::Entry {
  boost::asio::any_io_executor executor;
  std::function<void()> callback;
  bool armed = false;
  SteadyTime deadline;
  uint64_t order = 0;  // arming order: equal deadlines fire first-armed first
  uint64_t generation = 0;
};

namespace {

class SimulatedTimer final : public Timer {
 public:
  SimulatedTimer(std::shared_ptr<SimulatedTimeSystem::Entry> e, const Clock& clock,
                 uint64_t& next_order)
      : e_(std::move(e)), clock_(clock), next_order_(next_order) {}
  void Arm(std::chrono::nanoseconds d) override {
    ++e_->generation;
    e_->armed = true;
    e_->deadline = clock_.Now() + std::chrono::duration_cast<SteadyTime::duration>(
                                      std::max(d, std::chrono::nanoseconds(0)));
    e_->order = next_order_++;
  }
  void Disarm() override {
    ++e_->generation;
    e_->armed = false;
  }
  bool armed() const override { return e_->armed; }

 private:
  std::shared_ptr<SimulatedTimeSystem::Entry> e_;
  const Clock& clock_;
  uint64_t& next_order_;
};

}  // namespace

SimulatedTimeSystem::SimulatedTimeSystem() = default;
SimulatedTimeSystem::~SimulatedTimeSystem() = default;

TimerPtr SimulatedTimeSystem::CreateTimer(boost::asio::any_io_executor executor,
                                          std::function<void()> callback) {
  auto e = std::make_shared<Entry>();
  e->executor = std::move(executor);
  e->callback = std::move(callback);
  std::erase_if(timers_, [](const std::weak_ptr<Entry>& w) { return w.expired(); });
  timers_.push_back(e);
  return std::make_unique<SimulatedTimer>(std::move(e), clock_, next_order_);
}

std::optional<SteadyTime> SimulatedTimeSystem::NextDeadline() const {
  std::optional<SteadyTime> next;
  for (const auto& w : timers_) {
    auto e = w.lock();
    if (e && e->armed && (!next || e->deadline < *next)) next = e->deadline;
  }
  return next;
}

size_t SimulatedTimeSystem::armed_timers() const {
  return std::count_if(timers_.begin(), timers_.end(), [](const std::weak_ptr<Entry>& w) {
    auto e = w.lock();
    return e && e->armed;
  });
}

bool SimulatedTimeSystem::FireNext(SteadyTime until) {
  std::shared_ptr<Entry> due;
  for (const auto& w : timers_) {
    auto e = w.lock();
    if (!e || !e->armed || e->deadline > until) continue;
    if (!due || e->deadline < due->deadline ||
        (e->deadline == due->deadline && e->order < due->order)) {
      due = std::move(e);
    }
  }
  if (!due) return false;
  if (due->deadline > clock_.Now()) clock_.Advance(due->deadline - clock_.Now());
  due->armed = false;
  std::weak_ptr<Entry> weak = due;
  boost::asio::post(due->executor, [weak, generation = due->generation] {
    auto e = weak.lock();
    if (e && e->generation == generation) e->callback();
  });
  return true;
}

void SimulatedTimeSystem::Advance(std::chrono::nanoseconds d) {
  const SteadyTime until = clock_.Now() + std::chrono::duration_cast<SteadyTime::duration>(d);
  while (FireNext(until)) {
  }
  if (until > clock_.Now()) clock_.Advance(until - clock_.Now());
}

void SimulatedTimeSystem::AdvanceAndRun(std::chrono::nanoseconds d,
                                        boost::asio::io_context& io) {
  const SteadyTime until = clock_.Now() + std::chrono::duration_cast<SteadyTime::duration>(d);
  io.restart();
  io.poll();
  while (FireNext(until)) {
    io.restart();
    io.poll();
  }
  if (until > clock_.Now()) clock_.Advance(until - clock_.Now());
  io.restart();
  io.poll();
}

}  // namespace lm
