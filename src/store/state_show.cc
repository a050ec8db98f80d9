#include "store/state_show.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "lock/lock_state.h"
#include "store/state_file.h"

namespace lm::store {

using nlohmann::json;

StatusOr<std::string> DescribeStateFile(std::string_view content, const std::string& path,
                                        WallTime now) {
  StatusOr<DecodedStateFile> d = DecodeStateFile(content);
  if (!d.ok()) return DataLoss(path + ": " + d.status().message());
  const lock::LockState& s = d->state;
  json j;
  j["file"] = path;
  j["format"] = d->legacy ? 1 : 2;
  if (!d->legacy) {
    j["slot_used"] = d->slot;
    j["sequence"] = d->seq;
  }
  j["last_token"] = s.last_token;
  j["next_token_if_started_now"] = std::max(s.last_token + 1, lock::ClockTokenFloor(now));
  if (s.lease) {
    const lock::PersistedLease& l = *s.lease;
    const int64_t left = l.expires_unix_ms - UnixMillis(now);
    j["lease"] = {{"id", Redact(l.id)},
                  {"holder", l.holder},
                  {"token", l.token},
                  {"ttl_s", l.ttl_s},
                  {"acquired_unix_ms", l.acquired_unix_ms},
                  {"expires_unix_ms", l.expires_unix_ms},
                  {"expires_in_ms", std::max<int64_t>(0, left)},
                  {"expired", left <= 0}};
  } else {
    j["lease"] = nullptr;
  }
  j["waiters"] = "not persisted: waiting clients queue again after a restart";
  j["problems"] = d->problems;
  return j.dump(2) + "\n";
}

}  // namespace lm::store
