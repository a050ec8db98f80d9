#include "store/etcd_health.h"

#include <spdlog/spdlog.h>

namespace lm::store {

EtcdHealth::EtcdHealth(TimeSystem& time, boost::asio::any_io_executor executor, EtcdApi& etcd,
                       std::string probe_key, std::chrono::milliseconds interval, Hooks hooks)
    : etcd_(etcd), probe_key_(std::move(probe_key)), interval_(interval), hooks_(std::move(hooks)) {
  timer_ = time.CreateTimer(executor, [this] { Probe(); });
}

void EtcdHealth::Stop() {
  stopped_ = true;
  timer_->Disarm();
}

void EtcdHealth::Probe() {
  if (stopped_) return;
  if (!probing_) {
    probing_ = true;
    // A linearizable read needs a quorum: this is what "etcd works" means for us.
    etcd_.Range({.key = probe_key_, .count_only = true},
                [this, a = std::weak_ptr<bool>(alive_)](StatusOr<RangeResponse> r) {
                  if (a.expired()) return;
                  probing_ = false;
                  Set(r.ok(), r.ok() ? "" : r.status().message());
                });
  }
  timer_->Arm(interval_);
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
  hooks_.down(why);
}

}  // namespace lm::store
