#include "license/pool_view.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "common/metrics_text.h"
#include "common/strings.h"

namespace lm::license {

using nlohmann::json;

bool NaturalLess(std::string_view a, std::string_view b) {
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (is_digit(a[i]) && is_digit(b[j])) {
      size_t ie = i, je = j;
      while (ie < a.size() && is_digit(a[ie])) ++ie;
      while (je < b.size() && is_digit(b[je])) ++je;
      std::string_view da = a.substr(i, ie - i), db = b.substr(j, je - j);
      // Compare by value: strip leading zeros, then longer is larger, then lexically.
      auto strip = [](std::string_view d) {
        while (d.size() > 1 && d.front() == '0') d.remove_prefix(1);
        return d;
      };
      std::string_view sa = strip(da), sb = strip(db);
      if (sa.size() != sb.size()) return sa.size() < sb.size();
      if (sa != sb) return sa < sb;
      if (da.size() != db.size()) return da.size() < db.size();  // "01" after "1"
      i = ie, j = je;
      continue;
    }
    if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
    ++i, ++j;
  }
  return a.size() - i < b.size() - j;
}

PoolView::PoolView(Filesystem& fs, const Clock& clock, PoolViewOptions options)
    : fs_(fs), clock_(clock), options_(std::move(options)), pool_(fs_, options_.dir) {
  snapshot_.configured = configured();
  snapshot_.dir = options_.dir;
  snapshot_.claim_ttl = options_.claim_ttl;
}

const PoolSnapshot& PoolView::Get() {
  if (!configured()) return snapshot_;
  if (!last_scan_ || clock_.Now() - *last_scan_ >= options_.min_interval) return Refresh();
  return snapshot_;
}

const PoolSnapshot& PoolView::Refresh() {
  if (!configured()) return snapshot_;
  SteadyTime now = clock_.Now();
  last_scan_ = now;
  PoolSnapshot s;
  s.configured = true;
  s.dir = options_.dir;
  s.claim_ttl = options_.claim_ttl;
  s.scanned_at_ms = UnixMillis(clock_.WallNow());

  auto names = pool_.Entries();
  if (!names.ok()) {
    s.error = names.status().message();
    snapshot_ = std::move(s);
    return snapshot_;  // keep the observer: a transient listing error must not reset staleness
  }
  std::sort(names->begin(), names->end(),
            [](const std::string& a, const std::string& b) { return NaturalLess(a, b); });

  // Forget licenses that disappeared, so the observer does not grow without bound.
  std::unordered_set<std::string> present(names->begin(), names->end());
  for (const std::string& old : observed_) {
    if (!present.count(old)) observer_.Forget(old);
  }
  observed_.clear();

  for (const std::string& name : *names) {
    LicenseStatus st = Classify(pool_, observer_, name, now, options_.claim_ttl);
    LicenseRow row;
    row.name = name;
    row.state = st.state;
    if (st.state == LicenseState::kHeld || st.state == LicenseState::kStale ||
        st.state == LicenseState::kUnreadable) {
      observed_.push_back(name);
      if (auto d = observer_.UnchangedFor(name, now)) {
        row.unchanged_for = std::chrono::duration_cast<Millis>(*d);
      }
    }
    if (st.claim.state == ClaimState::kClaimed && st.claim.record) {
      const ClaimRecord& c = *st.claim.record;
      row.node = c.node;
      row.pod = c.pod;
      row.token = c.token;
      row.renewals = c.renewals;
      row.claimed_at_ms = c.claimed_at_ms;
      row.renewed_at_ms = c.renewed_at_ms;
      row.seed_format = c.seed_format;
    }
    row.error = st.problem;
    switch (st.state) {
      case LicenseState::kFree:
        ++s.totals.free;
        break;
      case LicenseState::kHeld:
        ++s.totals.held;
        break;
      case LicenseState::kStale:
        ++s.totals.stale;
        break;
      case LicenseState::kUnreadable:
        ++s.totals.unreadable;
        break;
      case LicenseState::kUnusable:
        ++s.totals.unusable;
        break;
    }
    ++s.totals.total;
    if (s.rows.size() < kMaxPoolRows) {
      s.rows.push_back(std::move(row));
    } else {
      ++s.omitted;
    }
  }
  snapshot_ = std::move(s);
  return snapshot_;
}

std::string PoolSnapshotJson(const PoolSnapshot& s,
                             const std::function<bool(const std::string&)>& disabled) {
  json totals = {{"total", s.totals.total},
                 {"held", s.totals.held},
                 {"free", s.totals.free},
                 {"stale", s.totals.stale},
                 {"unreadable", s.totals.unreadable},
                 {"unusable", s.totals.unusable}};
  json j = {{"configured", s.configured}, {"totals", totals}, {"licenses", json::array()}};
  if (s.configured) {
    j["dir"] = s.dir;
    j["claim_ttl_seconds"] = s.claim_ttl.count();
    j["scanned_at_ms"] = s.scanned_at_ms;
    j["omitted"] = s.omitted;
    j["error"] = s.error.empty() ? json(nullptr) : json(s.error);
  }
  size_t disabled_count = 0;
  for (const LicenseRow& r : s.rows) {
    json row = {{"name", r.name}, {"state", LicenseStateName(r.state)}};
    if (r.state == LicenseState::kHeld || r.state == LicenseState::kStale) {
      row["node"] = r.node;
      row["pod"] = r.pod;
      row["token"] = r.token;
      row["renewals"] = r.renewals;
      row["claimed_at_ms"] = r.claimed_at_ms;
      row["renewed_at_ms"] = r.renewed_at_ms;
      row["seed_format"] = r.seed_format;
    }
    if (r.state == LicenseState::kUnreadable || r.state == LicenseState::kUnusable ||
        (r.state == LicenseState::kStale && !r.error.empty())) {
      row["error"] = r.error;
    }
    row["unchanged_for_ms"] = r.unchanged_for ? json(r.unchanged_for->count()) : json(nullptr);
    if (disabled) {
      row["disabled"] = disabled(r.name);
      if (row["disabled"].get<bool>()) ++disabled_count;
    }
    j["licenses"].push_back(std::move(row));
  }
  if (disabled) j["totals"]["disabled"] = disabled_count;
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string RenderPoolMetrics(const PoolSnapshot& s) {
  if (!s.configured || !s.error.empty()) return "";
  const std::pair<LicenseState, size_t> counts[] = {
      {LicenseState::kFree, s.totals.free},
      {LicenseState::kHeld, s.totals.held},
      {LicenseState::kStale, s.totals.stale},
      {LicenseState::kUnreadable, s.totals.unreadable},
      {LicenseState::kUnusable, s.totals.unusable}};
  MetricsText m;
  m.Family("tokenmgr_pool_licenses", "gauge",
           "Licenses in the pool by state, at the last pool scan.");
  for (const auto& [state, n] : counts) {
    m.Sample("tokenmgr_pool_licenses", {{"state", LicenseStateName(state)}},
             static_cast<double>(n));
  }
  // One series per license that needs a person, so an alert can name it (bounded by the rows
  // shown: kMaxPoolRows).
  auto per_license = [&](LicenseState state, std::string_view name, std::string_view label,
                         auto value, std::string_view help) {
    bool any = false;
    for (const LicenseRow& row : s.rows) {
      if (row.state != state) continue;
      if (!any) m.Family(name, "gauge", help);
      any = true;
      m.Sample(name, {{"license", row.name}, {label, value(row)}}, 1);
    }
  };
  per_license(
      LicenseState::kUnusable, "tokenmgr_pool_license_unusable", "reason",
      [](const LicenseRow& r) -> std::string_view { return r.error; },
      "1 for each pool entry that cannot be installed; the reason as a label.");
  per_license(
      LicenseState::kStale, "tokenmgr_pool_license_stale", "claimed_by",
      [](const LicenseRow& r) -> std::string_view { return r.node; },
      "1 for each license whose claim nobody renewed for a claim TTL.");
  return m.Take();
}

}  // namespace lm::license
