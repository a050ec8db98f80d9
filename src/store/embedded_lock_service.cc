#include "store/embedded_lock_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <filesystem>

#include "common/random.h"

namespace lm::store {

EmbeddedLockService::EmbeddedLockService(boost::asio::io_context& io, TimeSystem& time)
    : io_(io), time_(time) {
  timer_ = time_.CreateTimer(io.get_executor(), [this] {
    armed_for_.reset();
    table_->Tick();
    Rearm();
  });
  flush_timer_ = time_.CreateTimer(io.get_executor(), [this] {
    flush_scheduled_ = false;
    (void)table_->Flush();
  });
}

namespace {

// Logs what a start restored and what it dropped, so an operator can tell a restart that kept
// the lock from one that lost it.
void LogRestored(const std::string& from, const DecodedStateFile* decoded,
                 const lock::LockState& restored, const lock::View& now, uint64_t floor) {
  std::string where = "memory only (nothing restored)";
  if (decoded && decoded->legacy) {
    where = "restored from " + from + " (format 1)";
  } else if (decoded && decoded->slot >= 0) {
    where = "restored from " + from + " (slot " + std::to_string(decoded->slot) + ", sequence " +
            std::to_string(decoded->seq) + ")";
  } else if (decoded) {
    where = from + " does not exist yet: starting empty";
  }
  std::string lease = "no lease";
  if (restored.lease && now.held) {
    lease = "lease of '" + restored.lease->holder + "' (token " +
            std::to_string(restored.lease->token) + ") kept, " +
            std::to_string(now.expires_in.count()) + " ms left";
  } else if (restored.lease) {
    lease = "lease of '" + restored.lease->holder + "' (token " +
            std::to_string(restored.lease->token) + ") dropped: it ran out while tokenmgr was down";
  }
  std::string next = "next token " + std::to_string(std::max(now.last_token + 1, floor));
  if (restored.last_token + 1 < floor) {
    next +=
        " (the clock floor; the stored last token is " + std::to_string(restored.last_token) + ")";
  }
  spdlog::info("lock state {}: {}; {}; waiters are not persisted (clients queue again)", where,
               lease, next);
}

}  // namespace

std::string LegacyStatePath(const std::string& state_file) {
  std::filesystem::path p(state_file);
  if (p.filename() == kLegacyStateFileName) return "";
  return (p.parent_path() / kLegacyStateFileName).string();
}

StatusOr<std::unique_ptr<EmbeddedLockService>> EmbeddedLockService::Open(
    boost::asio::io_context& io, TimeSystem& time, lock::Options options,
    const std::string& state_file) {
  const Clock& clock = time;
  std::unique_ptr<EmbeddedLockService> s(new EmbeddedLockService(io, time));
  lock::LockState restored;
  lock::LockTable::Persist persist;
  std::optional<DecodedStateFile> decoded;
  std::string loaded_from = state_file;
  if (!state_file.empty()) {
    s->file_.emplace(state_file);
    StatusOr<lock::LockState> loaded = s->file_->Load();
    if (!loaded.ok()) return loaded.status();
    restored = std::move(*loaded);
    decoded = s->file_->last_load();
    // Upgrade path: the old default name, next to the configured file, when that is new.
    std::error_code ec;
    std::string legacy = LegacyStatePath(state_file);
    if (decoded->slot < 0 && !decoded->legacy && !legacy.empty() &&
        std::filesystem::exists(legacy, ec)) {
      StateFile old(legacy);
      StatusOr<lock::LockState> from_old = old.Load();
      if (!from_old.ok()) return from_old.status();
      restored = std::move(*from_old);
      decoded = old.last_load();
      loaded_from = legacy;
    }
    for (const std::string& problem : decoded->problems) {
      spdlog::warn("state file {}: {}", loaded_from, problem);
    }
  }
  const lock::LockState stored = restored;
  const uint64_t floor = lock::ClockTokenFloor(clock.WallNow());
  restored.token_floor = floor;
  if (s->file_) {
    // Prove the file is writable now rather than at the first grant.
    if (Status w = s->file_->Save(restored); !w.ok()) {
      return Unavailable("state file is not writable: " + w.message());
    }
    if (loaded_from != state_file) {
      std::string moved = loaded_from + ".migrated";
      std::error_code ec;
      std::filesystem::rename(loaded_from, moved, ec);
      spdlog::warn("state read from the old default {} and now kept in {}; the old file {}",
                   loaded_from, state_file,
                   ec ? "could not be renamed: " + ec.message() : "was renamed to " + moved);
    }
    StateFile* file = &*s->file_;
    persist = [file](const lock::LockState& st) {
      Status w = file->Save(st);
      if (!w.ok()) spdlog::error("persist failed: {}", w.ToString());
      return w;
    };
  }
  s->table_ = std::make_unique<lock::LockTable>(clock, options, std::move(restored),
                                                std::move(persist), [] { return NewUuidV4(); });
  LogRestored(loaded_from, decoded ? &*decoded : nullptr, stored, s->table_->Snapshot(), floor);
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
      table_->Acquire(std::move(request.holder), request.ttl, request.wait, std::move(done));
  Rearm();
  if (waiter == 0) return [] {};
  std::weak_ptr<bool> alive = alive_;
  return [this, alive, waiter] {
    if (alive.expired()) return;
    table_->Cancel(waiter);
    Rearm();
  };
}

void EmbeddedLockService::OnLeaseExpired(std::function<void(const lock::ExpiredLease&)> observer) {
  if (!observer) return table_->SetExpiryObserver(nullptr);
  auto shared =
      std::make_shared<std::function<void(const lock::ExpiredLease&)>>(std::move(observer));
  std::weak_ptr<bool> alive = alive_;
  // Posted: the table calls inside its own operations, where no other code may run.
  table_->SetExpiryObserver([this, alive, shared](const lock::ExpiredLease& e) {
    boost::asio::post(io_, [alive, shared, e] {
      if (!alive.expired()) (*shared)(e);
    });
  });
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
  timer_->Disarm();
  flush_timer_->Disarm();
  flush_scheduled_ = false;
  (void)table_->Flush();
}

void EmbeddedLockService::ScheduleFlush() {
  if (!table_->dirty() || flush_scheduled_ || stopped_) return;
  flush_scheduled_ = true;
  // Batches releases and expiries: a burst costs one write, and a lock+release cycle costs
  // the grant's write only.
  flush_timer_->Arm(std::chrono::milliseconds(50));
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
  timer_->Arm(*next - time_.Now() + std::chrono::milliseconds(1));
}

}  // namespace lm::store
