#include "license/rules.h"

namespace lm::license {

std::string_view LicenseStateName(LicenseState state) {
  switch (state) {
    case LicenseState::kFree:
      return "free";
    case LicenseState::kHeld:
      return "held";
    case LicenseState::kStale:
      return "stale";
    case LicenseState::kUnreadable:
      return "unreadable";
    case LicenseState::kUnusable:
      return "unusable";
  }
  return "unusable";
}

LicenseStatus Classify(Pool& pool, StalenessObserver& observer, const std::string& name,
                       SteadyTime now, std::chrono::nanoseconds claim_ttl, ShapeCheck check) {
  LicenseStatus st;
  auto unusable = [&](LicenseCheck& c) {
    observer.Forget(name);
    st = LicenseStatus{};
    st.state = LicenseState::kUnusable;
    st.problem = std::move(c.problem);
    st.content_fingerprint = std::move(c.fingerprint);
    return st;
  };
  if (check == ShapeCheck::kAll) {
    LicenseCheck c = pool.CheckLicense(name);
    if (!c.usable()) return unusable(c);
    st.content_fingerprint = std::move(c.fingerprint);
  }
  st.claim = pool.ReadClaim(name);
  if (st.claim.state == ClaimState::kFree) {
    observer.Forget(name);
    st.state = LicenseState::kFree;
  } else {
    if (st.claim.state == ClaimState::kUnreadable) {
      st.problem = st.claim.error.empty() ? "unreadable claim" : st.claim.error;
    }
    if (ObserveStale(observer, name, st.claim, now, claim_ttl)) {
      st.state = LicenseState::kStale;
    } else {
      st.state =
          st.claim.state == ClaimState::kClaimed ? LicenseState::kHeld : LicenseState::kUnreadable;
    }
  }
  if (check == ShapeCheck::kClaimable && st.claimable()) {
    LicenseCheck c = pool.CheckLicense(name);
    if (!c.usable()) return unusable(c);
    st.content_fingerprint = std::move(c.fingerprint);
  }
  return st;
}

bool ObserveStale(StalenessObserver& observer, const std::string& name, const ClaimView& claim,
                  SteadyTime now, std::chrono::nanoseconds claim_ttl) {
  if (claim.fingerprint.empty()) {  // not even stat'ed: nothing can be seen changing
    observer.Forget(name);
    return false;
  }
  observer.Observe(name, claim.fingerprint, now);
  return observer.IsStale(name, claim.fingerprint, now, claim_ttl);
}

bool ClaimsNode(const ClaimView& claim, std::string_view node) {
  return claim.state == ClaimState::kClaimed && claim.record && !claim.record->seed_format &&
         claim.record->node == node;
}

bool IsOwn(const ClaimView& claim, std::string_view node, uint64_t token) {
  return ClaimsNode(claim, node) && claim.record->token == token;
}

ClaimRank CompareClaim(const ClaimView& claim, std::string_view node, uint64_t token) {
  if (claim.state != ClaimState::kClaimed || !claim.record) return ClaimRank::kNone;
  const ClaimRecord& r = *claim.record;
  if (r.seed_format) return ClaimRank::kSeed;
  if (r.token > token) return ClaimRank::kHigher;
  if (r.token < token) return ClaimRank::kLower;
  return r.node == node ? ClaimRank::kOurs : ClaimRank::kSameToken;
}

void StalenessObserver::Observe(const std::string& name, const std::string& fingerprint,
                                SteadyTime now) {
  auto it = seen_.find(name);
  if (it == seen_.end() || it->second.fingerprint != fingerprint) {
    seen_[name] = Seen{fingerprint, now};
  }
}

bool StalenessObserver::IsStale(const std::string& name, const std::string& fingerprint,
                                SteadyTime now, std::chrono::nanoseconds ttl) const {
  auto it = seen_.find(name);
  return it != seen_.end() && it->second.fingerprint == fingerprint &&
         now - it->second.since >= ttl;
}

std::optional<std::chrono::nanoseconds> StalenessObserver::UnchangedFor(const std::string& name,
                                                                        SteadyTime now) const {
  auto it = seen_.find(name);
  if (it == seen_.end()) return std::nullopt;
  return now - it->second.since;
}

}  // namespace lm::license
