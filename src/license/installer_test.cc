#include "license/installer.h"

#include <gtest/gtest.h>

#include "license/fake_fs.h"

namespace lm::license {
namespace {

class InstallerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs_.AddDir("/host");
    fs_.AddFile("/pool/a/lic/host_id", "AAA");
    fs_.AddFile("/pool/a/lic/extra_a", "only in a");
    fs_.AddFile("/pool/b/lic/host_id", "BBB");
    fs_.AddFile("/pool/b/readme_b", "top-level file");
  }
  LicenseFiles Read(const std::string& name) {
    auto f = pool_.ReadLicense(name);
    EXPECT_TRUE(f.ok());
    return *f;
  }
  FakeFilesystem fs_;
  Pool pool_{fs_, "/pool"};
  Installer inst_{fs_, "/host"};
};

TEST_F(InstallerTest, InstallsFilesAndManifest) {
  ASSERT_TRUE(inst_.Install("a", Read("a")).ok());
  EXPECT_EQ(fs_.Content("/host/lic/host_id"), "AAA");
  auto m = inst_.ReadManifest();
  ASSERT_TRUE(m.ok() && *m);
  EXPECT_EQ((*m)->license, "a");
  EXPECT_TRUE(*inst_.Matches(Read("a")));
}

TEST_F(InstallerTest, ReplacingLeavesNothingOfThePreviousLicense) {
  ASSERT_TRUE(inst_.Install("a", Read("a")).ok());
  ASSERT_TRUE(inst_.Install("b", Read("b")).ok());
  EXPECT_EQ(fs_.Content("/host/lic/host_id"), "BBB");
  EXPECT_FALSE(fs_.Exists("/host/lic/extra_a"));
  EXPECT_EQ(fs_.Content("/host/readme_b"), "top-level file");
  ASSERT_TRUE(inst_.Install("a", Read("a")).ok());
  EXPECT_FALSE(fs_.Exists("/host/readme_b"));
  auto entries = fs_.List("/host");
  for (auto& e : *entries) EXPECT_EQ(e.name.find(".staging"), std::string::npos);
}

TEST_F(InstallerTest, SameContentIsANoOp) {
  ASSERT_TRUE(inst_.Install("a", Read("a")).ok());
  int writes = fs_.writes();
  ASSERT_TRUE(inst_.Install("a", Read("a")).ok());
  EXPECT_EQ(fs_.writes(), writes);
}

TEST_F(InstallerTest, DriftIsDetectedAndRepaired) {
  ASSERT_TRUE(inst_.Install("a", Read("a")).ok());
  fs_.AddFile("/host/lic/host_id", "tampered");
  EXPECT_FALSE(*inst_.Matches(Read("a")));
  ASSERT_TRUE(inst_.Install("a", Read("a")).ok());
  EXPECT_EQ(fs_.Content("/host/lic/host_id"), "AAA");
}

TEST_F(InstallerTest, SeedLeftoverLockedbyIsRemovedUnknownFilesKept) {
  fs_.AddFile("/host/lockedby", "flexdirect-old");
  fs_.AddFile("/host/operator-notes", "keep me");
  fs_.AddFile("/host/lic/stale_seed_file", "old");
  ASSERT_TRUE(inst_.Install("a", Read("a")).ok());
  EXPECT_FALSE(fs_.Exists("/host/lockedby"));
  EXPECT_FALSE(fs_.Exists("/host/lic/stale_seed_file"));  // same-named entry replaced whole
  EXPECT_TRUE(fs_.Exists("/host/operator-notes"));
}

TEST_F(InstallerTest, WithdrawRemovesLicenseKeepsServersConf) {
  ASSERT_TRUE(inst_.Install("a", Read("a")).ok());
  ASSERT_TRUE(inst_.WriteServersConf("### g.conf\n1.2.3.4:5\n\n").ok());
  ASSERT_TRUE(inst_.Withdraw().ok());
  EXPECT_FALSE(fs_.Exists("/host/lic"));
  EXPECT_FALSE(fs_.Exists(std::string("/host/") + kManifestFile));
  EXPECT_TRUE(fs_.Exists("/host/servers.conf"));
  ASSERT_TRUE(inst_.Withdraw().ok());  // idempotent
}

TEST_F(InstallerTest, WithdrawLeavesNoTrashBehind) {
  ASSERT_TRUE(inst_.Install("b", Read("b")).ok());
  ASSERT_TRUE(inst_.Withdraw().ok());
  EXPECT_EQ(fs_.List("/host")->size(), 0u);
}

TEST_F(InstallerTest, WithdrawOnAFullDiskDeletesInPlace) {
  ASSERT_TRUE(inst_.Install("b", Read("b")).ok());
  fs_.FailWrites("/host/.trash-", ResourceExhausted("No space left on device"));
  ASSERT_TRUE(inst_.Withdraw().ok());
  EXPECT_FALSE(fs_.Exists("/host/lic"));
  EXPECT_FALSE(fs_.Exists("/host/readme_b"));
  EXPECT_FALSE(fs_.Exists(std::string("/host/") + kManifestFile));
}

TEST_F(InstallerTest, FailedStagingLeavesOldLicenseIntact) {
  ASSERT_TRUE(inst_.Install("a", Read("a")).ok());
  fs_.FailWrites("/host/.staging", ResourceExhausted("No space left on device"));
  Status s = inst_.Install("b", Read("b"));
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(fs_.Content("/host/lic/host_id"), "AAA");
  EXPECT_EQ(fs_.Content("/host/lic/extra_a"), "only in a");
  fs_.ClearFaults();
  ASSERT_TRUE(inst_.Install("b", Read("b")).ok());
  EXPECT_EQ(fs_.Content("/host/lic/host_id"), "BBB");
}

TEST_F(InstallerTest, HostDirThatIsASymlinkIsRefused) {
  fs_.AddSymlink("/linkhost");
  Installer bad(fs_, "/linkhost");
  EXPECT_EQ(bad.Install("a", Read("a")).code(), StatusCode::kFailedPrecondition);
}

TEST_F(InstallerTest, HostileManifestCannotEscapeHostDir) {
  EXPECT_FALSE(ParseManifest(R"({"license":"a","hash":"","entries":["../etc"]})").ok());
  EXPECT_FALSE(ParseManifest(R"({"license":"a","hash":"","entries":["a/b"]})").ok());
  EXPECT_FALSE(ParseManifest(R"({"license":"a","hash":"","entries":[".."]})").ok());
  EXPECT_FALSE(ParseManifest("garbage").ok());
}

}  // namespace
}  // namespace lm::license
