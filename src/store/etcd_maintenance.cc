#include "store/etcd_maintenance.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include "store/etcd_client.h"

namespace lm::store {

using json = nlohmann::json;

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

// ---- alarms -------------------------------------------------------------------------------

std::set<std::string> AlarmsFromStatus(const json& status) {
  std::set<std::string> alarms;
  const json& errors = status.value("errors", json::array());
  if (!errors.is_array()) return alarms;
  for (const json& e : errors) {
    if (!e.is_string()) continue;
    const std::string& text = e.get_ref<const std::string&>();
    size_t at = text.find("alarm:");
    if (at == std::string::npos) continue;  // e.g. "etcdserver: no leader"
    at += 6;
    size_t end = at;
    while (end < text.size() && std::isalnum(static_cast<unsigned char>(text[end]))) ++end;
    if (end > at) alarms.insert(text.substr(at, end - at));
  }
  return alarms;
}

// ---- EtcdMaintenance ----------------------------------------------------------------------

EtcdMaintenance::EtcdMaintenance(const Clock& clock, CallFn call, EtcdMaintenanceOptions options)
    : clock_(clock),
      call_(std::move(call)),
      options_(options),
      schedule_(options.compact_interval) {}

EtcdMaintenance::~EtcdMaintenance() { Stop(); }

void EtcdMaintenance::Start(boost::asio::io_context& io) {
  if (!timer_) timer_ = std::make_unique<boost::asio::steady_timer>(io);
  Poll();
  Arm();
}

void EtcdMaintenance::Arm() {
  timer_->expires_after(options_.poll_interval);
  timer_->async_wait([this, a = std::weak_ptr<bool>(alive_)](const auto& ec) {
    if (ec || a.expired()) return;
    Poll();
    Arm();
  });
}

void EtcdMaintenance::Stop() {
  *alive_ = false;
  alive_ = std::make_shared<bool>(true);  // callbacks of the old generation are ignored
  if (timer_) timer_->cancel();
  polling_ = compacting_ = false;
}

void EtcdMaintenance::Poll() {
  if (polling_) return;
  polling_ = true;
  call_("/v3/maintenance/status", json::object(),
        [this, a = std::weak_ptr<bool>(alive_)](StatusOr<json> r) {
          if (a.expired()) return;
          polling_ = false;
          OnStatus(std::move(r));
        });
}

void EtcdMaintenance::OnStatus(StatusOr<json> r) {
  if (!r.ok()) return;
  std::set<std::string> alarms = AlarmsFromStatus(*r);
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
  db_size_ = JsonInt(*r, "dbSize");
  db_size_in_use_ = JsonInt(*r, "dbSizeInUse");
  int64_t revision = JsonInt(r->value("header", json::object()), "revision");
  SteadyTime now = clock_.Now();
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
  call_("/v3/kv/compaction", {{"revision", std::to_string(revision)}},
        [this, revision, a = std::weak_ptr<bool>(alive_)](StatusOr<json> r) {
          if (a.expired()) return;
          compacting_ = false;
          next_compaction_ = clock_.Now() + options_.compact_interval;
          if (r.ok()) {
            ++compactions_;
            schedule_.Compacted(revision);
            spdlog::debug("etcd compacted to revision {}", revision);
            return;
          }
          if (r.status().message().find("has been compacted") != std::string::npos) {
            // Another replica (or etcd's own auto-compaction) got there first.
            schedule_.Compacted(revision);
            return;
          }
          ++compaction_failures_;
          spdlog::warn("etcd compaction to revision {} failed ({}); retried in {} s", revision,
                       r.status().message(), options_.compact_interval.count());
        });
}

std::string EtcdMaintenance::RenderMetrics() const {
  return fmt::format(
      "# HELP tokenmgr_store_alarm 1 while etcd has this alarm raised (nospace: out of quota, "
      "writes refused)\n"
      "# TYPE tokenmgr_store_alarm gauge\n"
      "tokenmgr_store_alarm{{alarm=\"nospace\"}} {}\n"
      "tokenmgr_store_alarm{{alarm=\"corrupt\"}} {}\n"
      "# HELP tokenmgr_etcd_db_size_bytes etcd's database size on the member tokenmgr talks to\n"
      "# TYPE tokenmgr_etcd_db_size_bytes gauge\n"
      "tokenmgr_etcd_db_size_bytes {}\n"
      "# HELP tokenmgr_etcd_db_size_in_use_bytes the part of it in use (the rest is freed by "
      "compaction and reused, or returned by defragmentation)\n"
      "# TYPE tokenmgr_etcd_db_size_in_use_bytes gauge\n"
      "tokenmgr_etcd_db_size_in_use_bytes {}\n"
      "# HELP tokenmgr_etcd_compactions_total etcd compactions made by this replica "
      "(ETCD_COMPACT=auto)\n"
      "# TYPE tokenmgr_etcd_compactions_total counter\n"
      "tokenmgr_etcd_compactions_total{{result=\"ok\"}} {}\n"
      "tokenmgr_etcd_compactions_total{{result=\"error\"}} {}\n"
      "# HELP tokenmgr_etcd_compacted_revision the revision etcd's history starts at, as far as "
      "this replica knows\n"
      "# TYPE tokenmgr_etcd_compacted_revision gauge\n"
      "tokenmgr_etcd_compacted_revision {}\n",
      nospace() ? 1 : 0, alarms_.contains("CORRUPT") ? 1 : 0, db_size_, db_size_in_use_,
      compactions_, compaction_failures_, schedule_.compacted());
}

}  // namespace lm::store
