#include "license/pool_view.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "license/claim.h"
#include "license/fake_fs.h"

namespace lm::license {
namespace {

using std::chrono::seconds;

std::string Claim(const std::string& node, uint64_t token, uint64_t renewals = 0) {
  license::ClaimRecord c;
  c.node = node;
  c.pod = "pod-" + node;
  c.token = token;
  c.renewals = renewals;
  c.claimed_at_ms = 1767225600000;
  c.renewed_at_ms = 1767225600000 + 1000 * static_cast<int64_t>(renewals);
  return license::SerializeClaim(c);
}

class PoolViewTest : public ::testing::Test {
 protected:
  PoolViewTest() : view_(fs_, clock_, {.dir = "/pool", .claim_ttl = seconds(60)}) {
    fs_.AddDir("/pool");
  }
  const LicenseRow* Row(const PoolSnapshot& s, const std::string& name) {
    for (const auto& r : s.rows) {
      if (r.name == name) return &r;
    }
    return nullptr;
  }
  license::FakeFilesystem fs_;
  FakeClock clock_;
  PoolView view_;
};

TEST_F(PoolViewTest, LicenseWithoutClaimIsFree) {
  fs_.AddFile("/pool/license1/lic/host_id", "abc");
  const PoolSnapshot& s = view_.Refresh();
  ASSERT_EQ(s.rows.size(), 1u);
  EXPECT_EQ(s.rows[0].state, LicenseState::kFree);
  EXPECT_FALSE(s.rows[0].unchanged_for.has_value());
  EXPECT_EQ(s.totals.free, 1u);
  EXPECT_EQ(s.totals.total, 1u);
}

TEST_F(PoolViewTest, ValidClaimIsHeldWithItsFields) {
  fs_.AddFile("/pool/license1/lic/host_id", "id");
  fs_.AddFile("/pool/license1/lockedby", Claim("gpu-1", 42, 3));
  const PoolSnapshot& s = view_.Refresh();
  const LicenseRow* r = Row(s, "license1");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->state, LicenseState::kHeld);
  EXPECT_EQ(r->node, "gpu-1");
  EXPECT_EQ(r->pod, "pod-gpu-1");
  EXPECT_EQ(r->token, 42u);
  EXPECT_EQ(r->renewals, 3u);
  EXPECT_EQ(r->claimed_at_ms, 1767225600000);
  EXPECT_EQ(s.totals.held, 1u);
}

TEST_F(PoolViewTest, ClaimUnchangedForAFullTtlIsStale) {
  fs_.AddFile("/pool/license1/lic/host_id", "id");
  fs_.AddFile("/pool/license1/lockedby", Claim("gpu-1", 42));
  view_.Refresh();
  clock_.Advance(seconds(59));
  EXPECT_EQ(view_.Refresh().rows[0].state, LicenseState::kHeld);
  clock_.Advance(seconds(1));
  const PoolSnapshot& s = view_.Refresh();
  EXPECT_EQ(s.rows[0].state, LicenseState::kStale);
  EXPECT_EQ(s.rows[0].unchanged_for, Millis(60000));
  EXPECT_EQ(s.totals.stale, 1u);
  EXPECT_EQ(s.totals.held, 0u);
}

TEST_F(PoolViewTest, RenewedClaimIsNeverStale) {
  fs_.AddFile("/pool/license1/lic/host_id", "id");
  fs_.AddFile("/pool/license1/lockedby", Claim("gpu-1", 42, 0));
  view_.Refresh();
  for (int i = 1; i <= 5; ++i) {
    clock_.Advance(seconds(30));
    fs_.AddFile("/pool/license1/lockedby", Claim("gpu-1", 42, i));  // the holder renews
    const PoolSnapshot& s = view_.Refresh();
    EXPECT_EQ(s.rows[0].state, LicenseState::kHeld);
    EXPECT_EQ(s.rows[0].unchanged_for, Millis(0));
  }
}

TEST_F(PoolViewTest, WallClockJumpsDoNotMakeClaimsStale) {
  fs_.AddFile("/pool/license1/lic/host_id", "id");
  fs_.AddFile("/pool/license1/lockedby", Claim("gpu-1", 42));
  view_.Refresh();
  clock_.StepWall(std::chrono::hours(24));
  EXPECT_EQ(view_.Refresh().rows[0].state, LicenseState::kHeld);
}

TEST_F(PoolViewTest, GarbageClaimIsUnreadableWithReason) {
  fs_.AddFile("/pool/license1/lic/host_id", "id");
  fs_.AddFile("/pool/license1/lockedby", "{not json");
  const PoolSnapshot& s = view_.Refresh();
  EXPECT_EQ(s.rows[0].state, LicenseState::kUnreadable);
  EXPECT_NE(s.rows[0].error.find("malformed"), std::string::npos);
  EXPECT_EQ(s.totals.unreadable, 1u);
}

TEST_F(PoolViewTest, GarbageClaimUnchangedForATtlIsStaleAndKeepsItsError) {
  fs_.AddFile("/pool/license1/lic/host_id", "id");
  fs_.AddFile("/pool/license1/lockedby", "{not json");
  view_.Refresh();
  clock_.Advance(seconds(60));
  const PoolSnapshot& s = view_.Refresh();
  EXPECT_EQ(s.rows[0].state, LicenseState::kStale);
  EXPECT_EQ(s.totals.stale, 1u);
  EXPECT_EQ(s.totals.unreadable, 0u);
  auto row = nlohmann::json::parse(PoolSnapshotJson(s))["licenses"][0];
  EXPECT_EQ(row["state"], "stale");
  EXPECT_NE(row["error"].get<std::string>().find("malformed"), std::string::npos);
  EXPECT_EQ(row["unchanged_for_ms"], 60000);
}

TEST_F(PoolViewTest, ClaimThatCannotBeStatedStaysUnreadable) {
  fs_.AddFile("/pool/license1/lic/host_id", "id");
  fs_.AddFile("/pool/license1/lockedby", Claim("gpu-1", 1));
  fs_.FailReads("/pool/license1/lockedby", Unavailable("EIO"));
  view_.Refresh();
  clock_.Advance(seconds(120));
  EXPECT_EQ(view_.Refresh().rows[0].state, LicenseState::kUnreadable);
}

TEST_F(PoolViewTest, ReadErrorIsUnreadable) {
  fs_.AddFile("/pool/license1/lic/host_id", "id");
  fs_.AddFile("/pool/license1/lockedby", Claim("gpu-1", 1));
  fs_.FailReads("/pool/license1/lockedby", Unavailable("EIO"));
  EXPECT_EQ(view_.Refresh().rows[0].state, LicenseState::kUnreadable);
}

TEST_F(PoolViewTest, SeedFormatClaimIsHeldWithoutToken) {
  fs_.AddFile("/pool/license1/lic/host_id", "id");
  fs_.AddFile("/pool/license1/lockedby", "flexdirect-x2k9\n");
  const LicenseRow& r = view_.Refresh().rows[0];
  EXPECT_EQ(r.state, LicenseState::kHeld);
  EXPECT_TRUE(r.seed_format);
  EXPECT_EQ(r.node, "flexdirect-x2k9");
}

TEST_F(PoolViewTest, RowsAreInNaturalOrderHiddenSkippedSymlinksUnusable) {
  fs_.AddFile("/pool/license10/lic/host_id", "id");
  fs_.AddFile("/pool/license2/lic/host_id", "id");
  fs_.AddFile("/pool/license1/lic/host_id", "id");
  fs_.AddSymlink("/pool/license3");
  fs_.AddDir("/pool/.hidden");
  const PoolSnapshot& s = view_.Refresh();
  ASSERT_EQ(s.rows.size(), 4u);
  EXPECT_EQ(s.rows[0].name, "license1");
  EXPECT_EQ(s.rows[1].name, "license2");
  EXPECT_EQ(s.rows[2].name, "license3");
  EXPECT_EQ(s.rows[2].state, LicenseState::kUnusable);
  EXPECT_EQ(s.rows[3].name, "license10");
}

TEST_F(PoolViewTest, WhatIsNotALicenseIsUnusableWithItsReasonNotFree) {
  fs_.AddFile("/pool/good/lic/host_id", "id");
  fs_.AddDir("/pool/broken/lic");                // no host_id
  fs_.AddFile("/pool/emptyid/lic/host_id", "");  // empty
  fs_.AddFile("/pool/readme/README", "x");       // no lic/
  fs_.AddFile("/pool/huge/lic/host_id", std::string(license::kMaxLicenseFileBytes + 1, 'x'));
  fs_.AddFile("/pool/linked/lic/host_id", "id");
  fs_.AddSymlink("/pool/linked/lic/passwd");
  fs_.AddFile("/pool/nested/license1/lic/host_id", "id");  // a pool, not a license
  fs_.AddFile("/pool/notes.txt", "x");
  const PoolSnapshot& s = view_.Refresh();
  EXPECT_EQ(s.totals.free, 1u);
  EXPECT_EQ(s.totals.unusable, 7u);
  EXPECT_EQ(s.totals.total, 8u);
  for (const char* name :
       {"broken", "emptyid", "readme", "huge", "linked", "nested", "notes.txt"}) {
    const LicenseRow* r = Row(s, name);
    ASSERT_NE(r, nullptr) << name;
    EXPECT_EQ(r->state, LicenseState::kUnusable) << name;
    EXPECT_FALSE(r->error.empty()) << name;
  }
  EXPECT_NE(Row(s, "broken")->error.find("lic/host_id"), std::string::npos);
  EXPECT_NE(Row(s, "linked")->error.find("symlink"), std::string::npos);
  auto j = nlohmann::json::parse(PoolSnapshotJson(s));
  EXPECT_EQ(j["totals"]["unusable"], 7);
  for (const auto& row : j["licenses"]) {
    if (row["name"] == "broken") {
      EXPECT_EQ(row["state"], "unusable");
      EXPECT_NE(row["error"].get<std::string>().find("lic/host_id"), std::string::npos);
    }
  }
  EXPECT_NE(RenderPoolMetrics(s).find("tokenmgr_pool_licenses{state=\"unusable\"} 7\n"),
            std::string::npos);
}

TEST_F(PoolViewTest, MissingPoolDirectoryIsReportedNotFatal) {
  PoolView view(fs_, clock_, {.dir = "/nowhere"});
  const PoolSnapshot& s = view.Refresh();
  EXPECT_TRUE(s.configured);
  EXPECT_FALSE(s.error.empty());
  EXPECT_TRUE(s.rows.empty());
}

TEST_F(PoolViewTest, GetRescansAtMostOncePerInterval) {
  view_.Get();
  fs_.AddFile("/pool/license1/lic/host_id", "id");
  EXPECT_TRUE(view_.Get().rows.empty());  // cached
  clock_.Advance(Millis(1000));
  EXPECT_EQ(view_.Get().rows.size(), 1u);
}

TEST_F(PoolViewTest, RemovedAndReclaimedLicenseStartsFresh) {
  fs_.AddFile("/pool/license1/lic/host_id", "id");
  fs_.AddFile("/pool/license1/lockedby", Claim("gpu-1", 1));
  view_.Refresh();
  clock_.Advance(seconds(50));
  ASSERT_TRUE(fs_.RemoveAll("/pool/license1/lockedby").ok());
  EXPECT_EQ(view_.Refresh().rows[0].state, LicenseState::kFree);
  fs_.AddFile("/pool/license1/lockedby", Claim("gpu-2", 2));
  view_.Refresh();
  clock_.Advance(seconds(50));
  EXPECT_EQ(view_.Refresh().rows[0].state, LicenseState::kHeld);
}

TEST(PoolViewUnconfigured, SaysSoInJson) {
  license::FakeFilesystem fs;
  FakeClock clock;
  PoolView view(fs, clock, {});
  EXPECT_FALSE(view.configured());
  auto j = nlohmann::json::parse(PoolSnapshotJson(view.Get()));
  EXPECT_EQ(j["configured"], false);
  EXPECT_TRUE(j["licenses"].empty());
  EXPECT_EQ(j["totals"]["total"], 0);
}

TEST_F(PoolViewTest, JsonHasRowsTotalsAndSurvivesInvalidUtf8) {
  fs_.AddFile("/pool/license1/lic/host_id", "id");
  fs_.AddFile("/pool/license1/lockedby", Claim("gpu-1", 7));
  fs_.AddFile("/pool/license2/lic/host_id", "id");
  // Not valid UTF-8: not a license (no agent could install it), shown as unusable, never a
  // JSON error.
  fs_.AddDir("/pool/bad\xff name");
  auto j = nlohmann::json::parse(PoolSnapshotJson(view_.Refresh()));
  EXPECT_EQ(j["configured"], true);
  EXPECT_EQ(j["claim_ttl_seconds"], 60);
  EXPECT_EQ(j["totals"]["held"], 1);
  EXPECT_EQ(j["totals"]["free"], 1);
  EXPECT_EQ(j["totals"]["unusable"], 1);
  ASSERT_EQ(j["licenses"].size(), 3u);
  EXPECT_EQ(j["licenses"][0]["state"], "unusable");
  const auto& held = j["licenses"][1];
  EXPECT_EQ(held["name"], "license1");
  EXPECT_EQ(held["state"], "held");
  EXPECT_EQ(held["node"], "gpu-1");
  EXPECT_EQ(held["token"], 7);
  EXPECT_EQ(held["unchanged_for_ms"], 0);
  EXPECT_EQ(j["licenses"][2]["name"], "license2");
  EXPECT_EQ(j["licenses"][2]["state"], "free");
  EXPECT_TRUE(j["licenses"][2]["unchanged_for_ms"].is_null());
}

TEST(NaturalLess, OrdersDigitRunsByValue) {
  EXPECT_TRUE(NaturalLess("license2", "license10"));
  EXPECT_FALSE(NaturalLess("license10", "license2"));
  EXPECT_TRUE(NaturalLess("a", "b"));
  EXPECT_TRUE(NaturalLess("lic", "lic1"));
  EXPECT_FALSE(NaturalLess("x1", "x1"));
  EXPECT_TRUE(NaturalLess("x1", "x01"));
}

}  // namespace
}  // namespace lm::license

namespace lm::license {
namespace {

TEST(RenderPoolMetrics, OneGaugePerStateFromTheTotals) {
  PoolSnapshot s;
  s.configured = true;
  s.totals = {.total = 15, .held = 1, .free = 2, .stale = 3, .unreadable = 4, .unusable = 5};
  std::string m = RenderPoolMetrics(s);
  EXPECT_NE(m.find("# TYPE tokenmgr_pool_licenses gauge\n"), std::string::npos);
  EXPECT_NE(m.find("# HELP tokenmgr_pool_licenses "), std::string::npos);
  EXPECT_NE(m.find("tokenmgr_pool_licenses{state=\"free\"} 2\n"), std::string::npos);
  EXPECT_NE(m.find("tokenmgr_pool_licenses{state=\"held\"} 1\n"), std::string::npos);
  EXPECT_NE(m.find("tokenmgr_pool_licenses{state=\"stale\"} 3\n"), std::string::npos);
  EXPECT_NE(m.find("tokenmgr_pool_licenses{state=\"unreadable\"} 4\n"), std::string::npos);
  EXPECT_NE(m.find("tokenmgr_pool_licenses{state=\"unusable\"} 5\n"), std::string::npos);
}

TEST(RenderPoolMetrics, NamesEachUnusableAndStaleLicenseWithEscapedLabels) {
  PoolSnapshot s;
  s.configured = true;
  auto row = [](std::string name, LicenseState state, std::string node, std::string error) {
    LicenseRow r;
    r.name = std::move(name);
    r.state = state;
    r.node = std::move(node);
    r.error = std::move(error);
    return r;
  };
  s.rows = {row("lic\"4", LicenseState::kUnusable, "", "lic/host_id is missing\nsecond line"),
            row("license2", LicenseState::kStale, "gpu-9", ""),
            row("license3", LicenseState::kHeld, "gpu-1", "")};
  std::string m = RenderPoolMetrics(s);
  EXPECT_NE(m.find("tokenmgr_pool_license_unusable{license=\"lic\\\"4\",reason=\"lic/host_id is "
                   "missing\\nsecond line\"} 1\n"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("tokenmgr_pool_license_stale{license=\"license2\",claimed_by=\"gpu-9\"} 1\n"),
            std::string::npos)
      << m;
  EXPECT_EQ(m.find("license3"), std::string::npos) << m;  // held rows have no series of their own
}

TEST(RenderPoolMetrics, NoPerLicenseSeriesWhenAllIsWell) {
  PoolSnapshot s;
  s.configured = true;
  s.rows.emplace_back();
  s.rows.back().name = "license1";
  s.rows.back().state = LicenseState::kFree;
  std::string m = RenderPoolMetrics(s);
  EXPECT_EQ(m.find("tokenmgr_pool_license_unusable"), std::string::npos);
  EXPECT_EQ(m.find("tokenmgr_pool_license_stale"), std::string::npos);
}

TEST(RenderPoolMetrics, NothingWhenThePoolIsUnknown) {
  PoolSnapshot unconfigured;
  EXPECT_EQ(RenderPoolMetrics(unconfigured), "");
  PoolSnapshot unlisted;
  unlisted.configured = true;
  unlisted.error = "/pool: permission denied";
  EXPECT_EQ(RenderPoolMetrics(unlisted), "");
}

}  // namespace
}  // namespace lm::license

namespace lm::license {
namespace {

TEST(PoolSnapshotJsonTest, RowsSayWhetherAnOperatorDisabledThemWhenAsked) {
  PoolSnapshot s;
  s.configured = true;
  for (const char* name : {"license1", "license2"}) {
    LicenseRow r;
    r.name = name;
    s.rows.push_back(r);
  }
  auto plain = nlohmann::json::parse(PoolSnapshotJson(s));
  EXPECT_FALSE(plain["licenses"][0].contains("disabled"));
  auto j = nlohmann::json::parse(
      PoolSnapshotJson(s, [](const std::string& l) { return l == "license2"; }));
  EXPECT_EQ(j["licenses"][0]["disabled"], false);
  EXPECT_EQ(j["licenses"][1]["disabled"], true);
  EXPECT_EQ(j["totals"]["disabled"], 1);
}

}  // namespace
}  // namespace lm::license
