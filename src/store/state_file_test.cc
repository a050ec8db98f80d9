#include "store/state_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace lm::store {
namespace {

namespace fs = std::filesystem;

class StateFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/statefile_test.XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/state.json";
  }
  void TearDown() override { fs::remove_all(dir_); }
  void WriteRaw(const std::string& text) { std::ofstream(path_) << text; }
  std::string dir_, path_;
};

lock::LockState Sample() {
  lock::LockState s;
  s.last_token = 42;
  s.lease = lock::PersistedLease{"1b4e28ba-2fa1-4d2e-883f-0016d3cca427", "node-1", 42, 10,
                                 1700000000000, 1700000010000};
  return s;
}

TEST_F(StateFileTest, MissingFileIsEmptyState) {
  auto s = StateFile(path_).Load();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->last_token, 0u);
  EXPECT_FALSE(s->lease.has_value());
}

TEST_F(StateFileTest, RoundTripsLeaseAndToken) {
  StateFile f(path_);
  ASSERT_TRUE(f.Save(Sample()).ok());
  auto s = f.Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*s, Sample());
  lock::LockState free_state;
  free_state.last_token = 43;
  ASSERT_TRUE(f.Save(free_state).ok());
  EXPECT_EQ(*f.Load(), free_state);
}

TEST_F(StateFileTest, FileIsPrivateAndNoTempFilesRemain) {
  ASSERT_TRUE(StateFile(path_).Save(Sample()).ok());
  struct stat st;
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  int entries = 0;
  for (auto& e : fs::directory_iterator(dir_)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST_F(StateFileTest, TruncatedFileIsDataLoss) {
  std::string full = SerializeState(Sample());
  for (size_t cut : {size_t{0}, size_t{1}, full.size() / 2, full.size() - 3}) {
    WriteRaw(full.substr(0, cut));
    auto s = StateFile(path_).Load();
    EXPECT_EQ(s.status().code(), StatusCode::kDataLoss) << cut;
    EXPECT_NE(s.status().message().find(path_), std::string::npos);
  }
}

TEST_F(StateFileTest, HostileContentIsDataLoss) {
  const char* bad[] = {
      "[]",
      "null",
      R"({"version":2,"last_token":1,"lease":null})",
      R"({"version":1,"last_token":-1,"lease":null})",
      R"({"version":1,"last_token":"7","lease":null})",
      R"({"version":1,"last_token":1})",
      R"({"version":1,"last_token":1,"lease":[]})",
      R"({"version":1,"last_token":1,"lease":{"id":"x","holder":"<script>","token":1,"ttl_s":10,"acquired_unix_ms":0,"expires_unix_ms":0}})",
      R"({"version":1,"last_token":1,"lease":{"id":"x","holder":"n","token":2,"ttl_s":10,"acquired_unix_ms":0,"expires_unix_ms":0}})",
      R"({"version":1,"last_token":1,"lease":{"id":"","holder":"n","token":1,"ttl_s":10,"acquired_unix_ms":0,"expires_unix_ms":0}})",
      R"({"version":1,"last_token":1,"lease":{"id":"x","holder":"n","token":1,"ttl_s":0,"acquired_unix_ms":0,"expires_unix_ms":0}})",
      "\xff\xfe garbage",
  };
  for (const char* text : bad) {
    WriteRaw(text);
    EXPECT_EQ(StateFile(path_).Load().status().code(), StatusCode::kDataLoss) << text;
  }
}

TEST_F(StateFileTest, OversizedFileIsDataLoss) {
  WriteRaw(std::string(kMaxStateFileBytes + 1, ' '));
  EXPECT_EQ(StateFile(path_).Load().status().code(), StatusCode::kDataLoss);
}

TEST_F(StateFileTest, SymlinkIsNotFollowed) {
  std::string target = dir_ + "/elsewhere.json";
  std::ofstream(target) << SerializeState(Sample());
  ASSERT_EQ(symlink(target.c_str(), path_.c_str()), 0);
  EXPECT_FALSE(StateFile(path_).Load().ok());
}

TEST_F(StateFileTest, SaveIntoMissingDirectoryFails) {
  EXPECT_FALSE(StateFile(dir_ + "/no/such/dir/state.json").Save(Sample()).ok());
}

}  // namespace
}  // namespace lm::store
