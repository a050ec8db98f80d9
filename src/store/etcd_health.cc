#include "store/etcd_health.h"

#include <spdlog/spdlog.h>

namespace lm::store {

EtcdHealth::EtcdHealth(TimeSystem& time, boost::asio::any_io_executor executor, EtcdApi& etcd,
                       std::string probe_key, std::chrono::milliseconds interval,
                       std::chrono::milliseconds deadline, Hooks hooks)
    : etcd_(etcd),
      probe_key_(std::move(probe_key)),
      interval_(interval),
      deadline_(deadline),
      hooks_(std::move(hooks)) {
  timer_ = time.CreateTimer(executor, [this] { Probe(); });
  deadline_timer_ = time.CreateTimer(executor, [this] { ProbeOverdue(); });
}

void EtcdHealth::Stop() {
  stopped_ = true;
  timer_->Disarm();
  deadline_timer_->Disarm();
}

void EtcdHealth::Probe() {
  if (stopped_) return;
  if (!probing_) {
    probing_ = true;
    deadline_timer_->Arm(deadline_);
    // A linearizable read needs a quorum: this is what "etcd works" means for us.
    etcd_.Range({.key = probe_key_, .range_end = "", .count_only = true},
                [this, a = std::weak_ptr<bool>(alive_)](StatusOr<RangeResponse> r) {
                  if (a.expired()) return;
                  probing_ = false;
                  deadline_timer_->Disarm();
                  Set(r.ok(), r.ok() ? "" : r.status().message());
                  if (r.ok() && !stopped_ && hooks_.probed) hooks_.probed();
                });
  }
  timer_->Arm(NextProbe());
}

void EtcdHealth::ProbeOverdue() {
  if (stopped_ || !probing_) return;
  Set(false, "etcd did not answer a read within " + std::to_string(deadline_.count()) +
                 " ms (last member tried: " + etcd_.current_endpoint() + ")");
}

void EtcdHealth::Set(bool healthy, const std::string& why) {
  if (!healthy && !healthy_ && why != why_) {
    // Still down, for a new reason (e.g. never reached, then a TLS handshake failure): 503s
    // name the latest one.
    why_ = why;
    spdlog::error("etcd unavailable: {}", why);
    return;
  }
  if (healthy == healthy_) return;
  healthy_ = healthy;
  if (healthy) {
    spdlog::info("etcd reachable again via {}", etcd_.current_endpoint());
    hooks_.up();
    return;
  }
  why_ = why;
  spdlog::error("etcd unavailable: {}", why);
  if (!stopped_) timer_->Arm(NextProbe());  // look again soon, not a whole interval later
  hooks_.down(why);
}

}  // namespace lm::store
