#include "store/state_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "store/state_show.h"

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
  void WriteRaw(const std::string& text) { std::ofstream(path_, std::ios::binary) << text; }
  std::string ReadRaw() {
    std::ifstream in(path_, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  ino_t Inode() {
    struct stat st;
    return stat(path_.c_str(), &st) == 0 ? st.st_ino : 0;
  }
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

lock::LockState Free(uint64_t last_token) {
  lock::LockState s;
  s.last_token = last_token;
  return s;
}

TEST_F(StateFileTest, UpdatesInPlaceAlternatingTwoSlots) {
  StateFile f(path_);
  ASSERT_TRUE(f.Save(Free(1)).ok());  // the first save creates the file (temp + rename)
  ino_t inode = Inode();
  for (uint64_t t = 2; t <= 5; ++t) {
    ASSERT_TRUE(f.Save(Free(t)).ok());
    std::string raw = ReadRaw();
    ASSERT_EQ(raw.size(), 2 * kStateSlotBytes);
    // The newest state is in slot t % 2, the previous one in the other slot.
    EXPECT_EQ(raw.substr((t % 2) * kStateSlotBytes, 33),
              "lmstate2 seq=" + std::string(19, '0') + std::to_string(t));
    EXPECT_NE(raw.find("\"last_token\":" + std::to_string(t - 1)), std::string::npos);
  }
  EXPECT_EQ(Inode(), inode);  // no new inode: pwrite + fdatasync
  EXPECT_EQ(*StateFile(path_).Load(), Free(5));
}

TEST_F(StateFileTest, TornNewestSlotFallsBackToThePreviousState) {
  StateFile f(path_);
  ASSERT_TRUE(f.Save(Free(7)).ok());
  ASSERT_TRUE(f.Save(Sample()).ok());  // seq 2: slot 0
  std::string raw = ReadRaw();
  for (size_t at : {size_t{0}, size_t{20}, size_t{70}, size_t{200}}) {
    std::string torn = raw;
    torn[at] ^= 0x20;  // a crash mid-write leaves a slot whose CRC does not match
    WriteRaw(torn);
    auto s = StateFile(path_).Load();
    ASSERT_TRUE(s.ok()) << at << ": " << s.status().ToString();
    EXPECT_EQ(*s, Free(7)) << at;
  }
  // Both slots torn: nothing is trusted.
  std::string both = raw;
  both[70] ^= 0x20;
  both[kStateSlotBytes + 70] ^= 0x20;
  WriteRaw(both);
  EXPECT_EQ(StateFile(path_).Load().status().code(), StatusCode::kDataLoss);
  // Cut anywhere: refused, never reset.
  for (size_t cut : {size_t{10}, kStateSlotBytes, 2 * kStateSlotBytes - 1}) {
    WriteRaw(raw.substr(0, cut));
    EXPECT_EQ(StateFile(path_).Load().status().code(), StatusCode::kDataLoss) << cut;
  }
}

TEST_F(StateFileTest, FallingBackToTheOlderSlotIsReportedWithTheReason) {
  StateFile f(path_);
  ASSERT_TRUE(f.Save(Free(7)).ok());
  ASSERT_TRUE(f.Save(Sample()).ok());  // seq 2: slot 0
  std::string raw = ReadRaw();
  raw[70] ^= 0x20;
  WriteRaw(raw);
  StatusOr<DecodedStateFile> d = DecodeStateFile(raw);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->slot, 1);
  ASSERT_EQ(d->problems.size(), 1u);
  EXPECT_NE(d->problems[0].find("slot 0 torn"), std::string::npos) << d->problems[0];
  EXPECT_NE(d->problems[0].find("used slot 1 (sequence 1)"), std::string::npos);
  StateFile g(path_);
  ASSERT_TRUE(g.Load().ok());
  EXPECT_EQ(g.last_load().problems, d->problems);
}

TEST_F(StateFileTest, ASlotNeverWrittenIsNotAProblem) {
  ASSERT_TRUE(StateFile(path_).Save(Free(3)).ok());  // one slot written, the other padding
  StatusOr<DecodedStateFile> d = DecodeStateFile(ReadRaw());
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->problems.empty());
  EXPECT_EQ(d->slot, 1);
  EXPECT_EQ(d->seq, 1u);
}

TEST_F(StateFileTest, DataLossSaysHowToRecover) {
  WriteRaw("{\"version\": 1, \"last_tok");
  Status s = StateFile(path_).Load().status();
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("move the file aside and restart"), std::string::npos) << s.message();
}

TEST_F(StateFileTest, DescribeShowsTheSlotTheLeaseAndTheTornSlot) {
  StateFile f(path_);
  ASSERT_TRUE(f.Save(Free(7)).ok());
  ASSERT_TRUE(f.Save(Sample()).ok());  // seq 2, slot 0: lease of node-1, token 42
  std::string raw = ReadRaw();
  const WallTime now{std::chrono::milliseconds(1700000005000)};
  StatusOr<std::string> shown = DescribeStateFile(raw, "/x/tokenmgr.state", now);
  ASSERT_TRUE(shown.ok()) << shown.status().ToString();
  nlohmann::json j = nlohmann::json::parse(*shown);
  EXPECT_EQ(j["format"], 2);
  EXPECT_EQ(j["slot_used"], 0);
  EXPECT_EQ(j["sequence"], 2);
  EXPECT_EQ(j["last_token"], 42);
  EXPECT_EQ(j["next_token_if_started_now"], lock::ClockTokenFloor(now));
  EXPECT_EQ(j["lease"]["holder"], "node-1");
  EXPECT_EQ(j["lease"]["expires_in_ms"], 5000);
  EXPECT_EQ(j["lease"]["expired"], false);
  EXPECT_EQ(j["lease"]["id"].get<std::string>().find("1b4e28ba-2fa1-4d2e-883f-0016d3cca427"),
            std::string::npos);  // the capability to release is not printed
  EXPECT_TRUE(j["problems"].empty());
  raw[70] ^= 0x20;
  j = nlohmann::json::parse(*DescribeStateFile(raw, "/x/tokenmgr.state", now));
  EXPECT_EQ(j["slot_used"], 1);
  EXPECT_EQ(j["lease"], nullptr);
  ASSERT_EQ(j["problems"].size(), 1u);
  raw[kStateSlotBytes + 70] ^= 0x20;
  StatusOr<std::string> corrupt = DescribeStateFile(raw, "/x/tokenmgr.state", now);
  EXPECT_EQ(corrupt.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(corrupt.status().message().find("/x/tokenmgr.state"), std::string::npos);
}

TEST_F(StateFileTest, SlotWithMatchingCrcButBadStateIsDataLoss) {
  lock::LockState bad = Sample();
  bad.lease->token = 99;  // above last_token: tokenmgr never writes this
  auto slot = EncodeStateSlot(3, bad);
  ASSERT_TRUE(slot.ok());
  WriteRaw(*slot + *EncodeStateSlot(2, Free(1)));
  auto s = StateFile(path_).Load();
  EXPECT_EQ(s.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(s.status().message().find("slot 0"), std::string::npos) << s.status().ToString();
  WriteRaw(*EncodeStateSlot(2, Free(1)) + *EncodeStateSlot(2, Free(2)));
  EXPECT_EQ(StateFile(path_).Load().status().code(), StatusCode::kDataLoss);
  WriteRaw(*EncodeStateSlot(0, Free(1)) + std::string(kStateSlotBytes, '\n'));
  EXPECT_EQ(StateFile(path_).Load().status().code(), StatusCode::kDataLoss);
}

TEST_F(StateFileTest, StateTooLargeForASlotIsRefused) {
  lock::LockState big = Sample();
  big.lease->id = std::string(kStateSlotBytes, 'a');
  EXPECT_EQ(EncodeStateSlot(1, big).status().code(), StatusCode::kResourceExhausted);
}

TEST_F(StateFileTest, FormatOneIsReadAndConvertedOnTheFirstSave) {
  WriteRaw(SerializeState(Sample()));
  StateFile f(path_);
  auto s = f.Load();
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*s, Sample());
  EXPECT_EQ(ReadRaw(), SerializeState(Sample()));  // loading never writes
  ASSERT_TRUE(f.Save(*s).ok());
  EXPECT_EQ(ReadRaw().size(), 2 * kStateSlotBytes);
  EXPECT_EQ(ReadRaw().substr(kStateSlotBytes, 9), "lmstate2 ");  // seq 1: slot 1
  EXPECT_EQ(*StateFile(path_).Load(), Sample());
}

TEST_F(StateFileTest, FileDeletedOrReplacedWhileOpenIsRecreated) {
  StateFile f(path_);
  ASSERT_TRUE(f.Save(Free(1)).ok());
  ASSERT_EQ(unlink(path_.c_str()), 0);
  ASSERT_TRUE(f.Save(Free(2)).ok());  // not into the orphaned inode
  EXPECT_EQ(*StateFile(path_).Load(), Free(2));
  WriteRaw("replaced");  // truncates in place: same inode, still linked
  std::string other = dir_ + "/other";
  std::ofstream(other) << "x";
  ASSERT_EQ(rename(other.c_str(), path_.c_str()), 0);  // renamed over: the old inode is gone
  ASSERT_TRUE(f.Save(Free(3)).ok());
  EXPECT_EQ(*StateFile(path_).Load(), Free(3));
}

TEST_F(StateFileTest, SaveAfterTheDirectoryVanishedFailsThenRecovers) {
  std::string sub = dir_ + "/sub";
  ASSERT_EQ(mkdir(sub.c_str(), 0700), 0);
  StateFile f(sub + "/state.json");
  ASSERT_TRUE(f.Save(Free(1)).ok());
  fs::remove_all(sub);
  EXPECT_FALSE(f.Save(Free(2)).ok());
  ASSERT_EQ(mkdir(sub.c_str(), 0700), 0);
  ASSERT_TRUE(f.Save(Free(3)).ok());
  EXPECT_EQ(*StateFile(sub + "/state.json").Load(), Free(3));
}

TEST_F(StateFileTest, SaveIntoMissingDirectoryFails) {
  EXPECT_FALSE(StateFile(dir_ + "/no/such/dir/state.json").Save(Sample()).ok());
}

}  // namespace
}  // namespace lm::store
