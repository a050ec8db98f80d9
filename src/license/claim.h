// ClaimRecord: the `lockedby` file in a license directory, naming who holds that license.
// Plain value type; the parser accepts untrusted text and never crashes. Thread-safe.
//
//   StatusOr<ClaimRecord> c = ParseClaim(text);    // ours (JSON) or the seed's (a host name)
//   std::string text = SerializeClaim(record);     // one JSON line
//
// Format (v1): {"v":1,"node":"gpu-7","pod":"flexdirect-x2k9","token":42,"renewals":17,
//               "claimed_at_ms":1795786672223,"renewed_at_ms":1795786842223}
// `token` is the fencing token of the tokenmgr grant under which the claim was written: of two
// claims for one license, the higher token wins. `"exiting":true` (only then present) is the
// writing pod's last word as it stopped: a new pod of the same node may adopt the claim at once.
// Times are the writer's wall clock, for humans only; staleness never compares them with anyone's
// clock.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "license/layout.h"

namespace lm::license {

inline constexpr size_t kMaxClaimBytes = 4096;

struct ClaimRecord {
  std::string node;
  std::string pod;
  uint64_t token = 0;
  uint64_t renewals = 0;
  int64_t claimed_at_ms = 0;
  int64_t renewed_at_ms = 0;
  bool seed_format = false;  // written by the seed's bash agent: a pod name, no token
  bool exiting = false;      // the writing pod stopped (SIGTERM) and left the claim to its node
  bool operator==(const ClaimRecord&) const = default;
};

StatusOr<ClaimRecord> ParseClaim(std::string_view text);
std::string SerializeClaim(const ClaimRecord& claim);

}  // namespace lm::license
