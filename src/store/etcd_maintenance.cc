#include "store/etcd_maintenance.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/metrics_text.h"

namespace lm::store {

// ---- CompactionSchedule -------------------------------------------------------------------

void CompactionSchedule::Sample(SteadyTime now, int64_t revision) {
  samples_.emplace_back(now, revision);
  // Keep one sample older than the retention (the next target) and everything newer.
  while (samples_.size() > 1 && samples_[1].first <= now - retention_) samples_.pop_front();
}

std::optional<int64_t> CompactionSchedule::Target(SteadyTime now) const {
  std::optional<int64_t> target;
  for (const auto& [at, revision] : samples_) {
    if (at > now - retention_) break;
    target = revision;
  }
  if (!target || *target <= compacted_) return std::nullopt;
  return target;
}

void CompactionSchedule::Compacted(int64_t revision) {
  compacted_ = std::max(compacted_, revision);
}

// ---- EtcdMaintenance ----------------------------------------------------------------------

EtcdMaintenance::EtcdMaintenance(TimeSystem& time, EtcdApi& etcd, EtcdMaintenanceOptions options)
    : time_(time),
      etcd_(etcd),
      options_(options),
      schedule_(options.compact_interval) {}

EtcdMaintenance::~EtcdMaintenance() { Stop(); }

void EtcdMaintenance::Start(boost::asio::io_context& io) {
  if (!timer_) {
    timer_ = time_.CreateTimer(io.get_executor(), [this] {
      Poll();
      Arm();
    });
  }
  Poll();
  Arm();
}

void EtcdMaintenance::Arm() { timer_->Arm(options_.poll_interval); }

void EtcdMaintenance::Stop() {
  *alive_ = false;
  alive_ = std::make_shared<bool>(true);  // callbacks of the old generation are ignored
  if (timer_) timer_->Disarm();
  polling_ = compacting_ = false;
}

void EtcdMaintenance::Poll() {
  if (polling_) return;
  polling_ = true;
  etcd_.MemberStatus([this, a = std::weak_ptr<bool>(alive_)](StatusOr<EtcdStatusResponse> r) {
    if (a.expired()) return;
    polling_ = false;
    OnStatus(std::move(r));
  });
}

void EtcdMaintenance::OnStatus(StatusOr<EtcdStatusResponse> r) {
  if (!r.ok()) return;
  std::set<std::string> alarms = r->alarms;
  if (alarms != alarms_) {
    std::string list;
    for (const std::string& a : alarms) list += (list.empty() ? "" : ", ") + a;
    if (alarms.contains("NOSPACE") && !nospace()) {
      spdlog::error("{}; lock and renew answer 503 until then", kNoSpaceMessage);
    } else if (!alarms.contains("NOSPACE") && nospace()) {
      spdlog::info("etcd quota alarm NOSPACE cleared; serving again");
    }
    if (!list.empty()) spdlog::warn("etcd alarms: {}", list);
    bool raised = alarms.contains("NOSPACE") && !nospace();
    alarms_ = std::move(alarms);
    if (raised && on_nospace_) on_nospace_();
  }
  db_size_ = r->db_size;
  db_size_in_use_ = r->db_size_in_use;
  int64_t revision = r->revision;
  SteadyTime now = time_.Now();
  if (revision > 0) schedule_.Sample(now, revision);
  if (!options_.compact) return;
  if (!next_compaction_) next_compaction_ = now + options_.compact_interval;
  if (now < *next_compaction_ || compacting_) return;
  if (auto target = schedule_.Target(now)) {
    Compact(*target);
  } else {
    next_compaction_ = now + options_.compact_interval;
  }
}

void EtcdMaintenance::Compact(int64_t revision) {
  compacting_ = true;
  // A compaction is allowed under NOSPACE (it is how an operator makes room), so no check here.
  etcd_.Compact(revision, [this, revision, a = std::weak_ptr<bool>(alive_)](Status r) {
          if (a.expired()) return;
          compacting_ = false;
          next_compaction_ = time_.Now() + options_.compact_interval;
          if (r.ok()) {
            ++compactions_;
            schedule_.Compacted(revision);
            spdlog::debug("etcd compacted to revision {}", revision);
            return;
          }
          if (r.message().find("has been compacted") != std::string::npos) {
            // Another replica (or etcd's own auto-compaction) got there first.
            schedule_.Compacted(revision);
            return;
          }
          ++compaction_failures_;
          spdlog::warn("etcd compaction to revision {} failed ({}); retried in {} s", revision,
                       r.message(), options_.compact_interval.count());
        });
}


std::string EtcdMaintenance::RenderMetrics() const {
  MetricsText m;
  m.Family("tokenmgr_store_alarm", "gauge",
           "1 while etcd has this alarm raised (nospace: out of quota, writes refused)");
  m.Sample("tokenmgr_store_alarm", {{"alarm", "nospace"}}, nospace() ? 1 : 0);
  m.Sample("tokenmgr_store_alarm", {{"alarm", "corrupt"}}, alarms_.contains("CORRUPT") ? 1 : 0);
  m.Family("tokenmgr_etcd_db_size_bytes", "gauge",
           "etcd's database size on the member tokenmgr talks to");
  m.Sample("tokenmgr_etcd_db_size_bytes", {}, static_cast<double>(db_size_));
  m.Family("tokenmgr_etcd_db_size_in_use_bytes", "gauge",
           "the part of it in use (the rest is freed by compaction and reused, or returned by "
           "defragmentation)");
  m.Sample("tokenmgr_etcd_db_size_in_use_bytes", {}, static_cast<double>(db_size_in_use_));
  m.Family("tokenmgr_etcd_compactions_total", "counter",
           "etcd compactions made by this replica (ETCD_COMPACT=auto)");
  m.CountSample("tokenmgr_etcd_compactions_total", {{"result", "ok"}}, compactions_);
  m.CountSample("tokenmgr_etcd_compactions_total", {{"result", "error"}}, compaction_failures_);
  m.Family("tokenmgr_etcd_compacted_revision", "gauge",
           "the revision etcd's history starts at, as far as this replica knows");
  m.Sample("tokenmgr_etcd_compacted_revision", {}, static_cast<double>(schedule_.compacted()));
  return m.Take();
}

}  // namespace lm::store
