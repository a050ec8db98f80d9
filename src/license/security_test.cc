// Security properties of the pool and installer that are not covered beside their code
// (see docs/security.md for the whole list and where each is tested).
#include <gtest/gtest.h>

#include "license/fake_fs.h"
#include "license/installer.h"
#include "license/pool.h"

namespace lm::license {
namespace {

// Regression (fuzz/manifest_fuzzer): a pool directory or license file whose name is not UTF-8
// reached SerializeManifest, whose JSON writer threw, and the uncaught exception killed the
// agent on every node that picked that license. Such names are now refused like control chars.
TEST(PoolSecurity, NonUtf8LicenseNameIsSkipped) {
  FakeFilesystem fs;
  fs.AddFile("/pool/good/lic", "a");
  fs.AddFile("/pool/bad\x85name/lic", "b");
  fs.AddFile("/pool/caf\xc3\xa9/lic", "c");  // real UTF-8 is fine
  Pool pool(fs, "/pool");
  auto names = pool.Names();
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"caf\xc3\xa9", "good"}));
}

TEST(PoolSecurity, NonUtf8FileNameMakesLicenseUnusable) {
  FakeFilesystem fs;
  fs.AddFile("/pool/l1/ok", "a");
  fs.AddFile("/pool/l1/x\xed\xa0\x80y", "b");  // an encoded surrogate: not UTF-8
  Pool pool(fs, "/pool");
  EXPECT_EQ(pool.ReadLicense("l1").status().code(), StatusCode::kInvalidArgument);
}

TEST(PoolSecurity, ManifestOfAnyAcceptedLicenseSerialises) {
  FakeFilesystem fs;
  fs.AddFile("/pool/caf\xc3\xa9/\xe2\x82\xac.lic", "a");
  fs.AddFile("/pool/caf\xc3\xa9/lic/host_id", "id");
  fs.AddDir("/host");
  Pool pool(fs, "/pool");
  auto files = pool.ReadLicense("caf\xc3\xa9");
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  Installer inst(fs, "/host");
  ASSERT_TRUE(inst.Install("caf\xc3\xa9", *files).ok());
  auto m = inst.ReadManifest();
  ASSERT_TRUE(m.ok() && *m);
  EXPECT_EQ((*m)->entries, (std::vector<std::string>{"lic", "\xe2\x82\xac.lic"}));
}

TEST(InstallerSecurity, InstalledFilesAreNotWorldReadable) {
  EXPECT_EQ(kLicenseFileMode & 0007, 0);
  EXPECT_EQ(kLicenseDirMode & 0007, 0);
}

}  // namespace
}  // namespace lm::license
