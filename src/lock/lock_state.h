// The lock's durable state: what a store persists and restores. Plain value types.
//
//   LockState s{.last_token = 41, .lease = PersistedLease{...}};
//   store.Save(s);
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace lm::lock {

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
  bool operator==(const LockState&) const = default;
};

}  // namespace lm::lock
