#include "holder/feature_file.h"

#include <gtest/gtest.h>

#include "license/fake_fs.h"

namespace lm::holder {
namespace {

using license::FakeFilesystem;
using std::chrono::seconds;

constexpr const char* kPath = "/nfd/features.d/bitfusion-license";
constexpr const char* kTemp = "/nfd/features.d/.bitfusion-license";

class FeatureFileTest : public ::testing::Test {
 protected:
  void SetUp() override { fs_.AddDir("/nfd/features.d"); }
  FakeFilesystem fs_;
  FakeClock clock_;  // 2026-01-01T00:00:00Z
  FeatureFile label_{fs_, kPath, seconds(10)};
};

TEST_F(FeatureFileTest, FormatsRfc3339InUtc) {
  EXPECT_EQ(FormatRfc3339(clock_.WallNow() + std::chrono::milliseconds(61999)),
            "2026-01-01T00:01:01Z");
}

TEST_F(FeatureFileTest, LabelIsTheNfdLocalFormatWithItsExpiry) {
  ASSERT_TRUE(label_.Label(clock_.WallNow() + seconds(60)).ok());
  std::string text = fs_.Content(kPath).value_or("");
  EXPECT_NE(text.find("\n# +expiry-time=2026-01-01T00:01:00Z\n"
                      "feature.node.kubernetes.io/bitfusion-license=true\n"),
            std::string::npos)
      << text;
  // Every other line is a comment: NFD would turn it into a label otherwise.
  size_t start = 0, lines = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    std::string line = text.substr(start, end - start);
    if (line.rfind("feature.node.kubernetes.io/", 0) != 0) {
      EXPECT_EQ(line[0], '#') << line;
    }
    ++lines;
    start = end + 1;
  }
  EXPECT_EQ(lines, 4u);
  EXPECT_FALSE(fs_.Exists(kTemp));  // written as a dot file (ignored by NFD), then renamed
}

TEST_F(FeatureFileTest, RewrittenOnlyWhenTheExpiryMovedMoreThanTheSlack) {
  WallTime t = clock_.WallNow();
  ASSERT_TRUE(label_.Label(t + seconds(60)).ok());
  int writes = fs_.unsynced_writes();
  ASSERT_TRUE(label_.Label(t + seconds(70)).ok());  // moved by the slack exactly: kept
  EXPECT_EQ(fs_.unsynced_writes(), writes);
  ASSERT_TRUE(label_.Label(t + seconds(71)).ok());
  EXPECT_EQ(fs_.unsynced_writes(), writes + 1);
  EXPECT_NE(fs_.Content(kPath)->find("expiry-time=2026-01-01T00:01:11Z"), std::string::npos);
  ASSERT_TRUE(label_.Label(t + seconds(50)).ok());  // a clock stepped back moves it too
  EXPECT_EQ(fs_.unsynced_writes(), writes + 2);
}

TEST_F(FeatureFileTest, FileRemovedBySomeoneElseIsWrittenAgain) {
  ASSERT_TRUE(label_.Label(clock_.WallNow() + seconds(60)).ok());
  ASSERT_TRUE(fs_.RemoveAll(kPath).ok());
  ASSERT_TRUE(label_.Label(clock_.WallNow() + seconds(61)).ok());
  EXPECT_TRUE(fs_.Exists(kPath));
}

TEST_F(FeatureFileTest, FailedWriteIsReportedAndRetried) {
  fs_.FailWrites("/nfd", Unavailable("Input/output error"));
  EXPECT_FALSE(label_.Label(clock_.WallNow() + seconds(60)).ok());
  EXPECT_FALSE(fs_.Exists(kPath));
  fs_.ClearFaults();
  ASSERT_TRUE(label_.Label(clock_.WallNow() + seconds(60)).ok());
  EXPECT_TRUE(fs_.Exists(kPath));
}

TEST_F(FeatureFileTest, UnlabelRemovesTheFileAndALeftoverDotFile) {
  ASSERT_TRUE(label_.Label(clock_.WallNow() + seconds(60)).ok());
  fs_.AddFile(kTemp, "half");
  ASSERT_TRUE(label_.Unlabel().ok());
  EXPECT_FALSE(fs_.Exists(kPath));
  EXPECT_FALSE(fs_.Exists(kTemp));
  EXPECT_TRUE(label_.Unlabel().ok());  // nothing to remove
  // After an unlabel the next label writes even with the same expiry.
  ASSERT_TRUE(label_.Label(clock_.WallNow() + seconds(60)).ok());
  EXPECT_TRUE(fs_.Exists(kPath));
}

TEST_F(FeatureFileTest, UnlabelNeverRemovesADirectory) {
  fs_.AddFile(std::string(kPath) + "/precious", "x");
  Status s = label_.Unlabel();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find(kPath), std::string::npos);
  EXPECT_TRUE(fs_.Exists(std::string(kPath) + "/precious"));
}

TEST_F(FeatureFileTest, DisabledTouchesNothing) {
  FeatureFile off(fs_, "", seconds(10));
  EXPECT_FALSE(off.enabled());
  EXPECT_TRUE(off.Label(clock_.WallNow()).ok());
  EXPECT_TRUE(off.Unlabel().ok());
  EXPECT_EQ(fs_.unsynced_writes() + fs_.writes(), 0);
}

}  // namespace
}  // namespace lm::holder
