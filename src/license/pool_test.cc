#include "license/pool.h"

#include <gtest/gtest.h>

#include <set>

#include "common/atomic_file.h"
#include "license/fake_fs.h"

namespace lm::license {
namespace {

using std::chrono::seconds;

class PoolTest : public ::testing::Test {
 protected:
  void SetUp() override { fs_.AddDir("/pool"); }
  FakeFilesystem fs_;
  Pool pool_{fs_, "/pool"};
};

TEST_F(PoolTest, NamesSkipFilesSymlinksHiddenAndControlChars) {
  fs_.AddFile("/pool/license1/lic/host_id", "a");
  fs_.AddFile("/pool/license 2/lic/host_id", "b");
  fs_.AddFile("/pool/README", "x");
  fs_.AddSymlink("/pool/escape");
  fs_.AddDir("/pool/.hidden");
  fs_.AddDir("/pool/bad\nname");
  std::vector<std::string> skipped;
  auto names = pool_.Names(&skipped);
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"license 2", "license1"}));
  EXPECT_EQ(skipped.size(), 3u);
}

TEST_F(PoolTest, MissingPoolIsAnError) {
  Pool p(fs_, "/nope");
  EXPECT_EQ(p.Names().status().code(), StatusCode::kNotFound);
}

TEST_F(PoolTest, ClaimStates) {
  fs_.AddFile("/pool/free/lic/host_id", "a");
  fs_.AddFile("/pool/held/lic/host_id", "a");
  fs_.AddFile("/pool/held/lockedby", SerializeClaim({"n1", "p1", 3, 0, 0, 0, false}));
  fs_.AddFile("/pool/seed/lockedby", "flexdirect-abc\n");
  fs_.AddFile("/pool/junk/lockedby", "{{{{");
  fs_.AddFile("/pool/eio/lockedby", "x");
  fs_.FailReads("/pool/eio/lockedby", Unavailable("EIO"));
  EXPECT_EQ(pool_.ReadClaim("free").state, ClaimState::kFree);
  auto held = pool_.ReadClaim("held");
  ASSERT_EQ(held.state, ClaimState::kClaimed);
  EXPECT_EQ(held.record->token, 3u);
  EXPECT_TRUE(pool_.ReadClaim("seed").record->seed_format);
  EXPECT_EQ(pool_.ReadClaim("junk").state, ClaimState::kUnreadable);
  EXPECT_FALSE(pool_.ReadClaim("junk").fingerprint.empty());
  EXPECT_EQ(pool_.ReadClaim("eio").state, ClaimState::kUnreadable);
}

TEST_F(PoolTest, SymlinkClaimIsUnreadableNotFollowed) {
  fs_.AddSymlink("/pool/l/lockedby");
  EXPECT_EQ(pool_.ReadClaim("l").state, ClaimState::kUnreadable);
}

TEST_F(PoolTest, FingerprintChangesOnRewrite) {
  fs_.AddFile("/pool/l/lockedby", SerializeClaim({"n1", "p1", 3, 0, 0, 0, false}));
  std::string a = pool_.ReadClaim("l").fingerprint;
  ASSERT_TRUE(fs_.WriteAtomic("/pool/l/lockedby", SerializeClaim({"n1", "p1", 3, 0, 0, 0, false}), 0644).ok());
  EXPECT_NE(pool_.ReadClaim("l").fingerprint, a);  // same content, new file
}

TEST_F(PoolTest, ReadLicenseSkipsClaimAndHiddenFiles) {
  fs_.AddFile("/pool/l/lic/host_id", "id");
  fs_.AddFile("/pool/l/lic/key", "k");
  fs_.AddFile("/pool/l/lockedby", "n");
  fs_.AddFile("/pool/l/.lockedby.tmp.1", "t");
  fs_.AddFile(AtomicTempPath("/pool/l/lockedby"), "left by a crash mid-write");
  auto files = pool_.ReadLicense("l");
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  std::set<std::string> paths;
  for (auto& f : files->files) paths.insert(f.path);
  EXPECT_EQ(paths, (std::set<std::string>{"lic", "lic/host_id", "lic/key"}));
  EXPECT_EQ(files->hash.size(), 16u);
}

TEST_F(PoolTest, ReadLicenseRefusesSymlinksEmptyAndHuge) {
  fs_.AddFile("/pool/sym/lic/host_id", "id");
  fs_.AddSymlink("/pool/sym/lic/passwd");
  EXPECT_FALSE(pool_.ReadLicense("sym").ok());
  fs_.AddDir("/pool/empty");
  EXPECT_FALSE(pool_.ReadLicense("empty").ok());
  fs_.AddFile("/pool/onlyclaim/lockedby", "n");
  EXPECT_FALSE(pool_.ReadLicense("onlyclaim").ok());
  fs_.AddFile("/pool/huge/lic/host_id", std::string(kMaxLicenseFileBytes + 1, 'x'));
  EXPECT_EQ(pool_.ReadLicense("huge").status().code(), StatusCode::kResourceExhausted);
}

TEST_F(PoolTest, CheckLicenseAcceptsOnlyWhatALicenseIs) {
  fs_.AddFile("/pool/good/lic/host_id", "id");
  fs_.AddFile("/pool/good/lic/key", "k");
  fs_.AddFile("/pool/good/lockedby", "n");  // the claim is not part of the license
  EXPECT_TRUE(pool_.CheckLicense("good").usable()) << pool_.CheckLicense("good").problem;
  fs_.AddDir("/pool/nokey/lic");
  fs_.AddFile("/pool/emptykey/lic/host_id", "");
  fs_.AddDir("/pool/dirkey/lic/host_id");
  fs_.AddFile("/pool/readme/README", "x");
  fs_.AddFile("/pool/huge/lic/host_id", std::string(kMaxLicenseFileBytes + 1, 'x'));
  fs_.AddFile("/pool/sym/lic/host_id", "id");
  fs_.AddSymlink("/pool/sym/lic/passwd");
  fs_.AddSymlink("/pool/link");
  fs_.AddFile("/pool/file", "x");
  fs_.AddFile("/pool/nested/license1/lic/host_id", "id");
  for (const char* name :
       {"nokey", "emptykey", "dirkey", "readme", "huge", "sym", "link", "file", "nested"}) {
    LicenseCheck c = pool_.CheckLicense(name);
    EXPECT_FALSE(c.usable()) << name;
    EXPECT_FALSE(c.problem.empty()) << name;
  }
  EXPECT_NE(pool_.CheckLicense("sym").problem.find("symlink"), std::string::npos);
  EXPECT_NE(pool_.CheckLicense("emptykey").problem.find("empty"), std::string::npos);
}

TEST_F(PoolTest, CheckLicenseFingerprintChangesWithContentNotWithTheClaim) {
  fs_.AddDir("/pool/l/lic");
  std::string before = pool_.CheckLicense("l").fingerprint;
  fs_.AddFile("/pool/l/lockedby", "n");
  EXPECT_EQ(pool_.CheckLicense("l").fingerprint, before);
  fs_.AddFile("/pool/l/lic/host_id", "id");
  EXPECT_NE(pool_.CheckLicense("l").fingerprint, before);
}

TEST_F(PoolTest, LikelyPoolDirNamesTheSubdirectoryHoldingLicenses) {
  fs_.AddFile("/pool/bitfusionio/license1/lic/host_id", "id");
  fs_.AddFile("/pool/docs/README", "x");
  EXPECT_EQ(pool_.LikelyPoolDir(), std::optional<std::string>("/pool/bitfusionio"));
  fs_.AddFile("/pool/license9/lic/host_id", "id");  // the pool has a license: no hint
  EXPECT_EQ(pool_.LikelyPoolDir(), std::nullopt);
}

TEST(Rendezvous, DeterministicPerNodeAndSpreadAcrossNodes) {
  std::vector<std::string> names;
  for (int i = 0; i < 100; ++i) names.push_back("license" + std::to_string(i));
  EXPECT_EQ(RendezvousOrder(names, "node-a"), RendezvousOrder(names, "node-a"));
  std::set<std::string> firsts;
  for (int n = 0; n < 50; ++n) firsts.insert(RendezvousOrder(names, "node-" + std::to_string(n))[0]);
  EXPECT_GT(firsts.size(), 25u);
}

}  // namespace
}  // namespace lm::license
