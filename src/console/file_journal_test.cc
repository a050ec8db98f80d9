#include "console/file_journal.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace lm::console {
namespace {

namespace fs = std::filesystem;

class FileJournalTest : public ::testing::Test {
 protected:
  FileJournalTest() {
    dir_ = fs::temp_directory_path() / ("journal-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~FileJournalTest() override { fs::remove_all(dir_); }

  Event Ev(uint64_t seq, std::string license = "l1") {
    Event e;
    e.seq = seq;
    e.time = WallTime(std::chrono::milliseconds(1796000000000 + static_cast<int64_t>(seq)));
    e.kind = EventKind::kClaim;
    e.license = std::move(license);
    e.node = "n1";
    return e;
  }
  std::unique_ptr<FileJournal> Open(Limits l = {}) {
    auto j = FileJournal::Open(dir_.string(), l, clock_);
    EXPECT_TRUE(j.ok()) << j.status().ToString();
    return j.ok() ? std::move(*j) : nullptr;
  }
  static Status Append(ConsoleJournal& j, std::vector<Event> events) {
    Status out = Internal("done not called");
    j.AppendEvents(std::move(events), [&](Status s) { out = s; });
    return out;
  }
  void AppendRaw(const std::string& text) {
    std::ofstream(dir_ / "console-events.jsonl", std::ios::app) << text;
  }
  fs::path dir_;
  FakeClock clock_;
};

TEST_F(FileJournalTest, EventsAndMarksSurviveAReopen) {
  {
    auto j = Open();
    ASSERT_TRUE(Append(*j, {Ev(1), Ev(2)}).ok());
    Status st = Internal("done not called");
    j->SetMark(MarkKind::kCordon, "n1", AdminMark{"alice", WallTime(std::chrono::milliseconds(5))},
               [&](Status s) { st = s; });
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  auto j = Open();
  auto events = j->TakeEvents();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].seq, 2u);
  EXPECT_EQ(j->last_seq(), 2u);
  EXPECT_EQ(j->admin().cordoned.at("n1").actor, "alice");
}

TEST_F(FileJournalTest, ATornLastLineIsDroppedAndTheRestKept) {
  { ASSERT_TRUE(Append(*Open(), {Ev(1)}).ok()); }
  AppendRaw(R"({"seq":2,"time_ms":1,"kind":"cl)");
  auto j = Open();
  EXPECT_EQ(j->TakeEvents().size(), 1u);
  EXPECT_EQ(j->skipped_lines(), 0u);
}

TEST_F(FileJournalTest, UnreadableLinesAreSkippedAndCounted) {
  { ASSERT_TRUE(Append(*Open(), {Ev(1)}).ok()); }
  AppendRaw("garbage\n" + std::string(10000, 'x') + "\n");
  { ASSERT_TRUE(Append(*Open(), {Ev(2)}).ok()); }
  auto j = Open();
  EXPECT_EQ(j->TakeEvents().size(), 2u);
  EXPECT_EQ(j->skipped_lines(), 2u);
}

TEST_F(FileJournalTest, AnUnreadableAdminFileStopsStartUpWithAdvice) {
  std::ofstream(dir_ / "console-admin.json") << "{not json";
  auto j = FileJournal::Open(dir_.string(), {}, clock_);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), StatusCode::kDataLoss);
  EXPECT_NE(j.status().message().find("move it aside"), std::string::npos);
}

TEST_F(FileJournalTest, TheFileIsCompactedAndNumberingNeverRestarts) {
  Limits l{.max_events = 10, .max_age = std::chrono::hours(1)};
  {
    auto j = Open(l);
    for (uint64_t s = 1; s <= 100; ++s) ASSERT_TRUE(Append(*j, {Ev(s)}).ok());
  }
  std::ifstream in(dir_ / "console-events.jsonl");
  size_t lines = 0;
  for (std::string line; std::getline(in, line);) ++lines;
  EXPECT_LE(lines, 2 * 10 + 16 + 1u);
  auto j = Open(l);
  EXPECT_EQ(j->last_seq(), 100u);
  auto events = j->TakeEvents();
  ASSERT_EQ(events.size(), 10u);
  EXPECT_EQ(events.back().seq, 100u);
  EXPECT_EQ(events.front().seq, 91u);
}

TEST_F(FileJournalTest, CompactionAlsoDropsEventsOlderThanTheAgeLimit) {
  Limits l{.max_events = 10, .max_age = std::chrono::hours(1)};
  auto j = Open(l);
  auto at = [&](uint64_t seq) {
    Event e = Ev(seq);
    e.time = clock_.WallNow();
    return e;
  };
  // 35 lines, then the 36th (two hours later) triggers a compaction: the count limit keeps
  // 27..36, of which only 36 is young enough.
  for (uint64_t s = 1; s <= 35; ++s) ASSERT_TRUE(Append(*j, {at(s)}).ok());
  clock_.Advance(std::chrono::hours(2));
  ASSERT_TRUE(Append(*j, {at(36)}).ok());
  j.reset();
  auto back = Open(l)->TakeEvents();
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back.front().seq, 36u);
}

TEST_F(FileJournalTest, ConsoleRestoredFromTheJournalContinuesItsNumbering) {
  FakeClock& clock = clock_;
  {
    auto j = Open();
    Console c(clock, {}, *j);
    Status st = Internal("done not called");
    c.Record({Ev(0), Ev(0)}, [&](Status s) { st = s; });
    ASSERT_TRUE(st.ok()) << st.ToString();
  }
  auto j = Open();
  Console c(clock, {}, *j);
  c.Restore(j->TakeEvents(), j->last_seq(), j->admin());
  Status st = Internal("done not called");
  c.Record({Ev(0)}, [&](Status s) { st = s; });
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(c.Events(0, 10).events.back().seq, 3u);
}

}  // namespace
}  // namespace lm::console
