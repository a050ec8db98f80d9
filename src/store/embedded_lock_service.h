// EmbeddedLockService: the default store. The lock lives in this process (LockTable) and every
// change is written to a state file, if one is configured. Not thread-safe: runs on one
// io_context thread, which also runs its expiry and flush timers (TimeSystem timers, so tests
// run it on SimulatedTimeSystem).
//
//   StatusOr<std::unique_ptr<EmbeddedLockService>> s =
//       EmbeddedLockService::Open(io, RealTimeSystem::Get(), options, "/data/tokenmgr.state");
//   if (!s.ok()) { /* corrupt state file: refuse to start */ }
#pragma once

#include <boost/asio/io_context.hpp>
#include <memory>
#include <optional>
#include <string>

#include "common/time_system.h"
#include "lock/lock_service.h"
#include "store/state_file.h"

namespace lm::store {

// The state file name of releases before 1.2, which promised JSON it did not hold.
inline constexpr const char* kLegacyStateFileName = "state.json";
// `<dir of state_file>/state.json`, or "" when state_file already has that name. Open() reads
// it when state_file does not exist yet (then renames it to `state.json.migrated`).
std::string LegacyStatePath(const std::string& state_file);

class EmbeddedLockService final : public lock::LockService {
 public:
  // state_file empty = memory only. Either way the next token is above the wall clock in
  // microseconds (lock::ClockTokenFloor), so tokens increase across restarts even when the
  // file was deleted or replaced (as long as the clock does not step back). Logs what it
  // restored and dropped, and warns about torn slots it skipped.
  static StatusOr<std::unique_ptr<EmbeddedLockService>> Open(boost::asio::io_context& io,
                                                             TimeSystem& time,
                                                             lock::Options options,
                                                             const std::string& state_file);

  CancelFn Acquire(lock::AcquireRequest request, GrantDone done) override;
  void Release(std::string_view id, StatusDone done) override;
  void Renew(std::string id, lock::Seconds ttl, GrantDone done) override;
  void GetView(ViewDone done) override;
  lock::Counters CountersSnapshot() const override { return table_->counters(); }
  bool Ready() const override { return true; }
  void Shutdown() override;
  const lock::Options& options() const override { return table_->options(); }
  void OnLeaseExpired(std::function<void(const lock::ExpiredLease&)> observer) override;

 private:
  EmbeddedLockService(boost::asio::io_context& io, TimeSystem& time);
  void Rearm();
  void ScheduleFlush();

  boost::asio::io_context& io_;
  TimeSystem& time_;
  std::optional<StateFile> file_;
  std::unique_ptr<lock::LockTable> table_;
  TimerPtr timer_;        // the table's next wakeup (a lease's end, a waiter's deadline)
  TimerPtr flush_timer_;  // writes the state file a little later, batching changes
  bool flush_scheduled_ = false;
  std::optional<SteadyTime> armed_for_;
  bool stopped_ = false;
  // Guards against use after destruction from late callbacks.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lm::store
