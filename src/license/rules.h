// The pool's rules, in one place: which state a license is in (free, held, stale, unreadable,
// unusable), when a claim is stale, whose a claim is (this node's, this agent's), and how two
// claims compare (the higher fencing token wins). The agent, `license-holder release` and
// tokenmgr's pool view all decide through these functions and nowhere else.
// StalenessObserver is not thread-safe; the functions are pure except that they feed it.
//
//   LicenseStatus st = Classify(pool, observer, "license7", clock.Now(), claim_ttl);
//   if (st.claimable()) ...;                            // free, or stale: may be taken
//   if (ClaimsNode(pool.ReadClaim("license7"), "gpu-7")) ...;  // this node's claim
//   switch (CompareClaim(view, "gpu-7", token)) { case ClaimRank::kOurs: ... }
//
// Staleness (docs/architecture.md, "Staleness without shared clocks"): a claim is stale when
// this process has seen its file unchanged (content, mtime, inode: ClaimView::fingerprint) for a
// full claim TTL on its own monotonic clock. This holds for unreadable claims too (garbage, EIO
// on read): a live holder rewrites its claim every heartbeat, so its fingerprint changes whether
// or not we can parse it. A claim whose file cannot even be stat'ed has no fingerprint; nothing
// can be seen changing, so it is never stale (safety first: a live holder may be renewing it).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "license/claim.h"
#include "license/pool.h"

namespace lm::license {

// Remembers, per license, a claim fingerprint and since when this process has seen it.
class StalenessObserver {
 public:
  // Records the fingerprint seen now for `name`.
  void Observe(const std::string& name, const std::string& fingerprint, SteadyTime now);
  // True if `fingerprint` is what we saw and it has not changed for at least `ttl`.
  bool IsStale(const std::string& name, const std::string& fingerprint, SteadyTime now,
               std::chrono::nanoseconds ttl) const;
  // How long the current fingerprint has been unchanged, if known.
  std::optional<std::chrono::nanoseconds> UnchangedFor(const std::string& name,
                                                       SteadyTime now) const;
  void Forget(const std::string& name) { seen_.erase(name); }

 private:
  struct Seen {
    std::string fingerprint;
    SteadyTime since;
  };
  std::map<std::string, Seen> seen_;
};

// The staleness rule (above): observes `claim` (held or unreadable) as seen now and says whether
// it is stale. False for a claim without a fingerprint (its file could not be stat'ed).
bool ObserveStale(StalenessObserver& observer, const std::string& name, const ClaimView& claim,
                  SteadyTime now, std::chrono::nanoseconds claim_ttl);

// A license's state, in the pool view, the metrics and the agent alike.
// kUnusable: not a license (CheckLicense); never claimed, whatever its claim. kFree: no claim.
// kHeld: a readable claim, not stale. kUnreadable: a claim that cannot be read or parsed, not
// stale. kStale: a claim (readable or not) that is stale: it may be taken over.
enum class LicenseState { kFree, kHeld, kStale, kUnreadable, kUnusable };

// "free", "held", "stale", "unreadable", "unusable".
std::string_view LicenseStateName(LicenseState state);

struct LicenseStatus {
  LicenseState state = LicenseState::kUnusable;
  ClaimView claim;      // not read for kUnusable
  std::string problem;  // kUnusable: CheckLicense's problem; an unreadable claim: its error
  std::string content_fingerprint;  // CheckLicense's fingerprint
  // Someone may claim it now: free, or stale.
  bool claimable() const { return state == LicenseState::kFree || state == LicenseState::kStale; }
};

// Which entries Classify checks with CheckLicense: all (the pool view: an operator wants to see
// every problem), or only those someone could claim now (free or stale; an agent looking for a
// license, which then needs no metadata walk for the many fresh claims of a large pool).
enum class ShapeCheck { kAll, kClaimable };

// Classifies one pool entry and keeps `observer` fed (observes claims, forgets free and
// unusable entries).
LicenseStatus Classify(Pool& pool, StalenessObserver& observer, const std::string& name,
                       SteadyTime now, std::chrono::nanoseconds claim_ttl,
                       ShapeCheck check = ShapeCheck::kAll);

// "Mine": a claim in our format naming `node`, written by any pod of that node.
bool ClaimsNode(const ClaimView& claim, std::string_view node);

// "Ours": this node's claim with this agent's fencing token, i.e. the claim this agent holds.
bool IsOwn(const ClaimView& claim, std::string_view node, uint64_t token);

// How a claim compares with this agent's claim (node, token): of two claims for one license,
// the higher token wins.
enum class ClaimRank {
  kNone,      // no claim read (free, or unreadable)
  kSeed,      // a seed-format claim: no token; someone else's
  kOurs,      // IsOwn
  kLower,     // our format, a lower token (a paused agent's late write): ours wins
  kHigher,    // our format, a higher token: theirs wins
  kSameToken  // our format, our token, another node (tokens are unique: not ours)
};
ClaimRank CompareClaim(const ClaimView& claim, std::string_view node, uint64_t token);

}  // namespace lm::license
