// EtcdMaintenance: what tokenmgr does for etcd's upkeep beside the lock itself (issue 20):
// - watches etcd's alarms (NOSPACE: the space quota is exhausted and etcd refuses every write),
//   so the store can refuse writes with a clear message and report not ready until an operator
//   clears the alarm, and recover by itself after `etcdctl alarm disarm`;
// - bounds etcd's history: every grant writes new keys, and etcd keeps every revision until
//   something compacts it. With compaction on, it compacts etcd every `compact_interval` to the
//   newest revision it saw at least `compact_interval` ago, so a watch (of any replica) that lags
//   less than that never loses an event; one that lags more gets a compacted-watch cancel and the
//   store reads everything again (EtcdLockService::OnWatch).
// Both come from one local, cheap call per poll: the member's status (revision, database size,
// alarms; no raft round). Not thread-safe: call it, and its callbacks, on one io_context thread.
//
//   EtcdMaintenance m(time, etcd_api, {.compact = true, .compact_interval = 60s});
//   m.Start(io);                    // polls every poll_interval on a TimeSystem timer
//   if (m.nospace()) return Unavailable(EtcdMaintenance::kNoSpaceMessage);
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "common/clock.h"
#include "common/status.h"
#include "common/time_system.h"
#include "store/etcd_api.h"

namespace lm::store {

// Which revision to compact to, from (time, revision) samples: the newest sample at least
// `retention` old, if it is above what was compacted already. Pure; time comes from the caller.
class CompactionSchedule {
 public:
  explicit CompactionSchedule(std::chrono::seconds retention) : retention_(retention) {}
  // etcd was at `revision` at `now`. Samples must come in time order.
  void Sample(SteadyTime now, int64_t revision);
  // The revision to compact to now, or nullopt (nothing old enough, or nothing new to compact).
  std::optional<int64_t> Target(SteadyTime now) const;
  // etcd's history now starts at `revision` (we compacted it, or someone did before us).
  void Compacted(int64_t revision);
  int64_t compacted() const { return compacted_; }

 private:
  std::chrono::seconds retention_;
  std::deque<std::pair<SteadyTime, int64_t>> samples_;  // oldest first; one at most too old
  int64_t compacted_ = 0;
};

struct EtcdMaintenanceOptions {
  bool compact = true;  // ETCD_COMPACT=auto; false: off (etcd's own auto-compaction, or nobody)
  std::chrono::seconds compact_interval{10};  // also the history kept (ETCD_COMPACT_INTERVAL)
  std::chrono::milliseconds poll_interval{1000};
};

class EtcdMaintenance {
 public:
  static constexpr char kNoSpaceMessage[] =
      "etcd is out of space (quota alarm NOSPACE): compact and defragment etcd, then "
      "`etcdctl alarm disarm`";

  // `etcd` must outlive this object.
  EtcdMaintenance(TimeSystem& time, EtcdApi& etcd, EtcdMaintenanceOptions options);
  ~EtcdMaintenance();

  // Polls every poll_interval on `io` until Stop() or destruction.
  void Start(boost::asio::io_context& io);
  void Stop();
  // One round: reads etcd's status; with compaction on and an interval passed since the last
  // compaction, compacts to the schedule's target. A failed status read changes nothing (etcd
  // being down is the lock store's business); a failed compaction is retried an interval later.
  void Poll();

  // etcd has the NOSPACE alarm raised (as of the last status read).
  bool nospace() const { return alarms_.contains("NOSPACE"); }
  // Runs when nospace() turns true (e.g. to answer waiting clients: they cannot be granted).
  void OnNoSpace(std::function<void()> f) { on_nospace_ = std::move(f); }
  // Prometheus text: tokenmgr_store_alarm{alarm="nospace"|"corrupt"}, database size, compactions.
  std::string RenderMetrics() const;

 private:
  void Arm();
  void OnStatus(StatusOr<EtcdStatusResponse> status);
  void Compact(int64_t revision);

  TimeSystem& time_;
  EtcdApi& etcd_;
  EtcdMaintenanceOptions options_;
  CompactionSchedule schedule_;
  std::set<std::string> alarms_;
  std::function<void()> on_nospace_;
  int64_t db_size_ = 0, db_size_in_use_ = 0;
  uint64_t compactions_ = 0, compaction_failures_ = 0;
  std::optional<SteadyTime> next_compaction_;  // unset until the first status read
  bool polling_ = false, compacting_ = false;
  TimerPtr timer_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lm::store
