#include "license/rules.h"

#include <gtest/gtest.h>

#include "license/fake_fs.h"

namespace lm::license {
namespace {

using std::chrono::seconds;

class RulesTest : public ::testing::Test {
 protected:
  void SetUp() override { fs_.AddDir("/pool"); }
  void AddLicense(const std::string& name) { fs_.AddFile("/pool/" + name + "/lic/host_id", "id"); }
  LicenseState StateOf(const std::string& name) {
    return Classify(pool_, obs_, name, clock_.Now(), seconds(60)).state;
  }
  FakeFilesystem fs_;
  Pool pool_{fs_, "/pool"};
  FakeClock clock_;
  StalenessObserver obs_;
};

TEST_F(RulesTest, ClassifyForAnAgentSkipsTheShapeOfFreshClaims) {
  FakeClock clock;
  StalenessObserver obs;
  fs_.AddFile("/pool/held/lockedby", SerializeClaim({"n1", "p1", 3, 0, 0, 0, false}));  // no lic/
  fs_.AddDir("/pool/free");  // no lic/ either
  EXPECT_EQ(Classify(pool_, obs, "held", clock.Now(), seconds(60)).state, LicenseState::kUnusable);
  EXPECT_EQ(Classify(pool_, obs, "held", clock.Now(), seconds(60), ShapeCheck::kClaimable).state,
            LicenseState::kHeld);
  EXPECT_EQ(Classify(pool_, obs, "free", clock.Now(), seconds(60), ShapeCheck::kClaimable).state,
            LicenseState::kUnusable);
  clock.Advance(seconds(60));  // stale: claimable, so its shape matters
  EXPECT_EQ(Classify(pool_, obs, "held", clock.Now(), seconds(60), ShapeCheck::kClaimable).state,
            LicenseState::kUnusable);
}

TEST_F(RulesTest, UnreadableClaimUnchangedForATtlIsStaleWithItsError) {
  AddLicense("l");
  fs_.AddFile("/pool/l/lockedby", "{garbage");
  EXPECT_EQ(StateOf("l"), LicenseState::kUnreadable);
  clock_.Advance(seconds(59));
  EXPECT_EQ(StateOf("l"), LicenseState::kUnreadable);
  clock_.Advance(seconds(1));
  LicenseStatus st = Classify(pool_, obs_, "l", clock_.Now(), seconds(60));
  EXPECT_EQ(st.state, LicenseState::kStale);
  EXPECT_TRUE(st.claimable());
  EXPECT_NE(st.problem.find("malformed"), std::string::npos);
}

TEST_F(RulesTest, UnreadableClaimThatKeepsChangingIsNeverStale) {
  AddLicense("l");
  for (int i = 0; i < 5; ++i) {
    fs_.AddFile("/pool/l/lockedby", "{garbage " + std::to_string(i));  // a writer we cannot parse
    EXPECT_EQ(StateOf("l"), LicenseState::kUnreadable);
    clock_.Advance(seconds(30));
  }
}

TEST_F(RulesTest, ClaimThatCannotBeStatedIsNeverStale) {
  AddLicense("l");
  fs_.AddFile("/pool/l/lockedby", SerializeClaim({"n1", "p1", 3, 0, 0, 0, false}));
  fs_.FailReads("/pool/l/lockedby", Unavailable("EIO"));  // stat and read fail
  for (int i = 0; i < 5; ++i) {
    LicenseStatus st = Classify(pool_, obs_, "l", clock_.Now(), seconds(60));
    EXPECT_EQ(st.state, LicenseState::kUnreadable);
    EXPECT_FALSE(st.claimable());
    clock_.Advance(seconds(60));
  }
}

TEST_F(RulesTest, ObserveStaleNeedsAFingerprint) {
  ClaimView unknown;  // kUnreadable, no fingerprint
  EXPECT_FALSE(ObserveStale(obs_, "l", unknown, clock_.Now(), seconds(0)));
  ClaimView seen;
  seen.fingerprint = "f1";
  EXPECT_FALSE(ObserveStale(obs_, "l", seen, clock_.Now(), seconds(60)));
  clock_.Advance(seconds(60));
  EXPECT_TRUE(ObserveStale(obs_, "l", seen, clock_.Now(), seconds(60)));
}

ClaimView Claimed(ClaimRecord r) {
  ClaimView v;
  v.state = ClaimState::kClaimed;
  v.record = std::move(r);
  v.fingerprint = "f";
  return v;
}

TEST(ClaimRules, MineIsThisNodesClaimInOurFormat) {
  EXPECT_TRUE(ClaimsNode(Claimed({"gpu-7", "p", 42, 0, 0, 0, false}), "gpu-7"));
  EXPECT_FALSE(ClaimsNode(Claimed({"gpu-8", "p", 42, 0, 0, 0, false}), "gpu-7"));
  ClaimRecord seed;
  seed.node = "gpu-7";
  seed.seed_format = true;
  EXPECT_FALSE(ClaimsNode(Claimed(seed), "gpu-7"));
  EXPECT_FALSE(ClaimsNode(ClaimView{}, "gpu-7"));
}

TEST(ClaimRules, OursNeedsNodeAndToken) {
  ClaimView v = Claimed({"gpu-7", "p", 42, 0, 0, 0, false});
  EXPECT_TRUE(IsOwn(v, "gpu-7", 42));
  EXPECT_FALSE(IsOwn(v, "gpu-7", 43));
  EXPECT_FALSE(IsOwn(v, "gpu-8", 42));
  ClaimRecord seed;
  seed.node = "gpu-7";
  seed.seed_format = true;
  EXPECT_FALSE(IsOwn(Claimed(seed), "gpu-7", 0));
}

TEST(ClaimRules, TheHigherTokenWins) {
  ClaimView v = Claimed({"gpu-7", "p", 42, 0, 0, 0, false});
  EXPECT_EQ(CompareClaim(v, "gpu-7", 42), ClaimRank::kOurs);
  EXPECT_EQ(CompareClaim(v, "gpu-7", 43), ClaimRank::kLower);
  EXPECT_EQ(CompareClaim(v, "gpu-1", 41), ClaimRank::kHigher);
  EXPECT_EQ(CompareClaim(v, "gpu-1", 42), ClaimRank::kSameToken);
  ClaimRecord seed;
  seed.node = "gpu-7";
  seed.seed_format = true;
  EXPECT_EQ(CompareClaim(Claimed(seed), "gpu-7", 0), ClaimRank::kSeed);
  EXPECT_EQ(CompareClaim(ClaimView{}, "gpu-7", 42), ClaimRank::kNone);
}

TEST(StalenessObserver, StaleOnlyAfterUnchangedForTtlOnOwnClock) {
  FakeClock clock;
  StalenessObserver obs;
  obs.Observe("l", "f1", clock.Now());
  clock.Advance(seconds(59));
  EXPECT_FALSE(obs.IsStale("l", "f1", clock.Now(), seconds(60)));
  clock.Advance(seconds(1));
  EXPECT_TRUE(obs.IsStale("l", "f1", clock.Now(), seconds(60)));
  EXPECT_FALSE(obs.IsStale("l", "f2", clock.Now(), seconds(60)));  // changed since
  obs.Observe("l", "f2", clock.Now());
  EXPECT_FALSE(obs.IsStale("l", "f2", clock.Now(), seconds(60)));
}

TEST(StalenessObserver, WallClockSkewDoesNotMatter) {
  FakeClock clock;
  StalenessObserver obs;
  obs.Observe("l", "f1", clock.Now());
  clock.StepWall(std::chrono::hours(24));  // a node or file server clock far off
  EXPECT_FALSE(obs.IsStale("l", "f1", clock.Now(), seconds(60)));
}

TEST(StalenessObserver, NeverSeenIsNotStale) {
  FakeClock clock;
  StalenessObserver obs;
  EXPECT_FALSE(obs.IsStale("l", "f1", clock.Now(), seconds(0)));
}

}  // namespace
}  // namespace lm::license
