#include "store/embedded_lock_service.h"

#include <spdlog/spdlog.h>

#include "common/random.h"

namespace lm::store {

EmbeddedLockService::EmbeddedLockService(boost::asio::io_context& io, const Clock& clock)
    : clock_(clock), timer_(io), flush_timer_(io) {}

StatusOr<std::unique_ptr<EmbeddedLockService>> EmbeddedLockService::Open(
    boost::asio::io_context& io, const Clock& clock, lock::Options options,
    const std::string& state_file) {
  std::unique_ptr<EmbeddedLockService> s(new EmbeddedLockService(io, clock));
  lock::LockState restored;
  lock::LockTable::Persist persist;
  if (!state_file.empty()) {
    s->file_.emplace(state_file);
    StatusOr<lock::LockState> loaded = s->file_->Load();
    if (!loaded.ok()) return loaded.status();
    restored = std::move(*loaded);
    // Prove the file is writable now rather than at the first grant.
    if (Status w = s->file_->Save(restored); !w.ok()) {
      return Unavailable("state file is not writable: " + w.message());
    }
    StateFile* file = &*s->file_;
    persist = [file](const lock::LockState& st) {
      Status w = file->Save(st);
      if (!w.ok()) spdlog::error("persist failed: {}", w.ToString());
      return w;
    };
  } else {
    restored.last_token = static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(clock.WallNow().time_since_epoch())
            .count());
  }
  s->table_ = std::make_unique<lock::LockTable>(clock, options, std::move(restored),
                                                std::move(persist), [] { return NewUuidV4(); });
  s->Rearm();
  return s;
}

lock::LockService::CancelFn EmbeddedLockService::Acquire(lock::AcquireRequest request,
                                                          GrantDone done) {
  if (stopped_) {
    done(Unavailable("tokenmgr is shutting down"));
    return [] {};
  }
  uint64_t waiter =
      table_->Acquire(std::move(request.holder), request.ttl, request.wait, std::move(done),
                      std::move(request.alive));
  Rearm();
  if (waiter == 0) return [] {};
  std::weak_ptr<bool> alive = alive_;
  return [this, alive, waiter] {
    if (alive.expired()) return;
    table_->Cancel(waiter);
    Rearm();
  };
}

void EmbeddedLockService::Release(std::string_view id, StatusDone done) {
  Status s = table_->Release(id);
  Rearm();
  done(std::move(s));
}

void EmbeddedLockService::Renew(std::string id, lock::Seconds ttl, GrantDone done) {
  StatusOr<lock::Grant> g = table_->Renew(id, ttl);
  Rearm();
  done(std::move(g));
}

void EmbeddedLockService::GetView(ViewDone done) {
  lock::View v = table_->Snapshot();
  Rearm();
  done(std::move(v));
}

void EmbeddedLockService::Shutdown() {
  if (stopped_) return;
  stopped_ = true;
  table_->FailAllWaiters(Unavailable("tokenmgr is shutting down"));
  timer_.cancel();
  flush_timer_.cancel();
  (void)table_->Flush();
}

void EmbeddedLockService::ScheduleFlush() {
  if (!table_->dirty() || flush_scheduled_ || stopped_) return;
  flush_scheduled_ = true;
  // Batches releases and expiries: a burst costs one write, and a lock+release cycle costs
  // the grant's write only.
  flush_timer_.expires_after(std::chrono::milliseconds(50));
  std::weak_ptr<bool> alive = alive_;
  flush_timer_.async_wait([this, alive](const boost::system::error_code& ec) {
    if (alive.expired()) return;
    flush_scheduled_ = false;
    if (ec) return;
    (void)table_->Flush();
  });
}

void EmbeddedLockService::Rearm() {
  if (stopped_) return;
  ScheduleFlush();
  std::optional<SteadyTime> next = table_->NextWakeup();
  // A timer armed for no later than `next` stays armed: firing early costs one Tick() that
  // finds nothing due and re-arms for the then-next wakeup. So a grant and its release (a
  // lease expiry, then nothing to wait for) cost no timer operations.
  if (!next || (armed_for_ && *armed_for_ <= *next)) return;
  armed_for_ = next;
  timer_.cancel();
  // The table's clock may be fake in tests; the timer waits the same interval on the real one.
  auto delay = *next - clock_.Now();
  timer_.expires_after(delay + std::chrono::milliseconds(1));
  std::weak_ptr<bool> alive = alive_;
  timer_.async_wait([this, alive](const boost::system::error_code& ec) {
    if (ec || alive.expired()) return;
    armed_for_.reset();
    table_->Tick();
    Rearm();
  });
}

}  // namespace lm::store
