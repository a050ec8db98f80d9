// The lock's durable state: what a store persists and restores. Plain value types.
//
//   LockState s{.last_token = 41, .lease = PersistedLease{...}};
//   store.Save(s);
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/clock.h"

namespace lm::lock {

// The lowest next token a store starts from (LockState::token_floor), whatever it restored:
// wall-clock microseconds since the Unix epoch. Tokens are handed out far slower than one per
// microsecond, so a floor taken at a start is above every token handed out since any earlier floor,
// even when the store's history is gone (state file deleted, emptyDir, etcd wiped, an old backup
// restored). Limit: a wall clock stepped back by more than the time since that earlier floor (NTP
// slews; only a manual step does this). See docs/architecture.md "Fencing tokens after losing the
// store".
inline uint64_t ClockTokenFloor(WallTime now) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count();
  return us > 0 ? static_cast<uint64_t>(us) : 0;
}

struct PersistedLease {
  std::string id;      // the capability to release; never shown in status
  std::string holder;  // label, e.g. a node name
  uint64_t token = 0;  // fencing token of this grant
  int64_t ttl_s = 0;
  int64_t acquired_unix_ms = 0;
  int64_t expires_unix_ms = 0;
  bool operator==(const PersistedLease&) const = default;
};

struct LockState {
  uint64_t last_token = 0;  // highest fencing token ever granted
  std::optional<PersistedLease> lease;
  // Not persisted: set by a store at start (ClockTokenFloor). The next grant's token is at
  // least this, whatever last_token says.
  uint64_t token_floor = 0;
  bool operator==(const LockState&) const = default;
};

}  // namespace lm::lock
