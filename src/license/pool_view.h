// PoolView: a read-only view of the license pool for the web page and GET /api/licenses. It
// scans the pool directory through a Filesystem and classifies every entry with the pool's rules
// (license/rules.h, Classify: the very function the agents use), so a license it shows as free
// or stale is one an agent may claim, and no other. "Stale" is never a comparison of anyone's
// wall clock. Not thread-safe: use it from the server's event-loop thread.
//
//   PoolView view(fs, RealTimeSystem::Get(), {.dir = "/mnt/bitfusionio", .claim_ttl = 60s});
//   const PoolSnapshot& s = view.Get();      // rescans only if the last scan is old enough
//   std::string body = PoolSnapshotJson(s);  // what /api/licenses answers
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "license/fs.h"
#include "license/pool.h"
#include "license/rules.h"

namespace lm::license {

struct LicenseRow {
  std::string name;  // the license directory's name: untrusted text
  LicenseState state = LicenseState::kUnreadable;
  // From the claim file (held rows, and stale rows whose claim could be read). Untrusted text.
  std::string node;
  std::string pod;
  uint64_t token = 0;
  uint64_t renewals = 0;
  int64_t claimed_at_ms = 0;  // the writer's wall clock: for display only
  int64_t renewed_at_ms = 0;
  bool seed_format = false;  // written by the seed's bash agent (a pod name only)
  // How long this process has seen the claim file unchanged; unset for free rows.
  std::optional<Millis> unchanged_for;
  // Unreadable rows, and stale rows whose claim could not be read: the claim's error. Unusable
  // rows: why the entry is not a license.
  std::string error;
};

struct PoolTotals {
  size_t total = 0;
  size_t held = 0;  // held and fresh; stale ones count only as stale
  size_t free = 0;
  size_t stale = 0;
  size_t unreadable = 0;
  size_t unusable = 0;
};

struct PoolSnapshot {
  bool configured = false;  // false: no pool directory given; everything else is empty
  std::string dir;
  std::chrono::seconds claim_ttl{60};
  std::string error;             // the directory could not be listed
  std::vector<LicenseRow> rows;  // in natural name order (license2 before license10)
  size_t omitted = 0;            // rows past kMaxPoolRows, not shown
  PoolTotals totals;             // over every license, shown or not
  int64_t scanned_at_ms = 0;     // our wall clock at the scan, for display
};

inline constexpr size_t kMaxPoolRows = 2000;

struct PoolViewOptions {
  std::string dir;  // empty: not configured
  std::chrono::seconds claim_ttl{60};
  Millis min_interval{1000};  // Get() rescans at most this often
};

class PoolView {
 public:
  PoolView(Filesystem& fs, const Clock& clock, PoolViewOptions options);

  // The latest snapshot, rescanning first if the last scan is at least min_interval old.
  const PoolSnapshot& Get();
  // Rescans now (e.g. from a timer, so staleness is known before anyone looks).
  const PoolSnapshot& Refresh();
  bool configured() const { return !options_.dir.empty(); }

 private:
  Filesystem& fs_;
  const Clock& clock_;
  PoolViewOptions options_;
  Pool pool_;
  StalenessObserver observer_;
  std::vector<std::string> observed_;  // names the observer remembers
  PoolSnapshot snapshot_;
  std::optional<SteadyTime> last_scan_;
};

// The body of GET /api/licenses. Invalid UTF-8 in names is replaced, never an error.
// `disabled` (optional): whether an operator disabled a license (the console's mark); each row
// then carries "disabled" and the totals count them.
std::string PoolSnapshotJson(const PoolSnapshot& snapshot,
                             const std::function<bool(const std::string&)>& disabled = nullptr);

// tokenmgr_pool_licenses{state="free|held|stale|unreadable|unusable"} gauges with HELP/TYPE
// lines, from the same scan as /api/licenses. Empty when the pool is not configured or its
// directory could not be listed (nothing is known, so nothing is claimed).
std::string RenderPoolMetrics(const PoolSnapshot& snapshot);

// Orders "license2" before "license10": digit runs compare by value.
bool NaturalLess(std::string_view a, std::string_view b);

}  // namespace lm::license
