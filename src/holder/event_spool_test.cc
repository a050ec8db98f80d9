#include "holder/event_spool.h"

#include <gtest/gtest.h>

#include <optional>

#include "license/fake_fs.h"

namespace lm::holder {
namespace {

constexpr char kSpoolPath[] = "/host/.license-holder-events.json";

console::Event Numbered(uint64_t origin, uint64_t n, std::string detail = "") {
  console::Event e;
  e.kind = console::EventKind::kWithdraw;
  e.license = "license" + std::to_string(n);
  e.node = "n1";
  e.token = n * 10;
  e.detail = std::move(detail);
  e.time = WallTime(std::chrono::milliseconds(1796000000000 + n));
  e.origin = origin;
  e.origin_seq = n;
  return e;
}

class FileSpoolTest : public ::testing::Test {
 protected:
  FileSpoolTest() { fs_.AddDir("/host"); }
  StatusOr<SpoolContents> LoadText(const std::string& text) {
    EXPECT_TRUE(fs_.WriteAtomic(kSpoolPath, text, 0600).ok());
    return spool_.Load();
  }
  license::FakeFilesystem fs_;
  FileSpool spool_{fs_, kSpoolPath};
};

TEST_F(FileSpoolTest, NoneIsNotFound) {
  EXPECT_EQ(spool_.Load().status().code(), StatusCode::kNotFound);
}

TEST_F(FileSpoolTest, SavesAndLoadsEveryFieldOfEveryEvent) {
  SpoolContents c{0xabcdef0123456789, 4, {Numbered(0xabcdef0123456789, 2, "drift \"x\" <b>"),
                                          Numbered(0xabcdef0123456789, 3)}};
  ASSERT_TRUE(spool_.Save(c).ok());
  auto back = spool_.Load();
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->origin, c.origin);
  EXPECT_EQ(back->next_seq, 4u);
  ASSERT_EQ(back->events.size(), 2u);
  EXPECT_EQ(back->events[0].detail, "drift \"x\" <b>");
  EXPECT_EQ(back->events[0].origin_seq, 2u);
  EXPECT_EQ(back->events[1].token, 30u);
  EXPECT_EQ(UnixMillis(back->events[1].time), 1796000000003);
  EXPECT_EQ(back->events[1].kind, console::EventKind::kWithdraw);
}

TEST_F(FileSpoolTest, NothingWaitingIsNoFile) {
  ASSERT_TRUE(spool_.Save({0x11, 2, {Numbered(0x11, 1)}}).ok());
  ASSERT_TRUE(fs_.Exists(kSpoolPath));
  ASSERT_TRUE(spool_.Save({0x11, 2, {}}).ok());
  EXPECT_FALSE(fs_.Exists(kSpoolPath));
  EXPECT_EQ(spool_.Load().status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(spool_.Save({0x11, 2, {}}).ok());  // none to remove: fine
}

TEST_F(FileSpoolTest, RefusesMalformedOversizedForeignAndHostileFilesNamingThePath) {
  const std::string ok_event = console::ToJson(Numbered(0x11, 1));
  const std::string other_stream = console::ToJson(Numbered(0x22, 1));
  for (std::string bad : {
           std::string(""), std::string("null"), std::string("[]"), std::string("{}"),
           std::string(R"({"origin":"0000000000000011","next_seq":2})"),
           std::string(R"({"origin":17,"next_seq":2,"events":[]})"),
           std::string(R"({"origin":"0000000000000000","next_seq":2,"events":[]})"),
           std::string(R"({"origin":"0000000000000011","next_seq":-1,"events":[]})"),
           std::string(R"({"origin":"0000000000000011","next_seq":2,"events":[{}]})"),
           R"({"origin":"0000000000000011","next_seq":2,"events":[)" + other_stream + "]}",
           R"({"origin":"0000000000000011","next_seq":1,"events":[)" + ok_event + "]}",
           R"({"origin":"0000000000000011","next_seq":5,"events":[)" + ok_event + "," +
               ok_event + "]}",
           std::string(FileSpool::kMaxBytes + 1, ' ')}) {
    auto c = LoadText(bad);
    ASSERT_FALSE(c.ok()) << bad.substr(0, 80);
    EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument) << bad.substr(0, 80);
    EXPECT_NE(c.status().message().find(kSpoolPath), std::string::npos) << c.status().message();
  }
}

TEST_F(FileSpoolTest, RefusesASymlinkAndAnUnreadableFile) {
  fs_.AddSymlink(kSpoolPath);
  auto c = spool_.Load();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(fs_.RemoveAll(kSpoolPath).ok());
  fs_.AddFile(kSpoolPath, "{}");
  fs_.FailContentReads(kSpoolPath, Unavailable("EIO"));
  c = spool_.Load();
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("EIO"), std::string::npos);
}

// Two agents with one NODE_NAME share the node's host dir: only the first keeps a spool there.
TEST_F(FileSpoolTest, ASecondAgentOnTheHostDirNeverTouchesTheFirstOnesSpool) {
  std::optional<FileSpool> first_agent(std::in_place, fs_, kSpoolPath);
  EXPECT_FALSE(fs_.LockHeld("/host"));
  EXPECT_EQ(first_agent->Load().status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(fs_.LockHeld("/host"));  // taken at the first call, kept
  ASSERT_TRUE(first_agent->Save({0x11, 3, {Numbered(0x11, 1), Numbered(0x11, 2)}}).ok());
  std::string first = *fs_.Content(kSpoolPath);
  {
    FileSpool second(fs_, kSpoolPath);
    auto c = second.Load();
    ASSERT_EQ(c.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(c.status().message().find("/host is in use by another license-holder"),
              std::string::npos)
        << c.status().message();
    EXPECT_NE(c.status().message().find(kSpoolPath), std::string::npos);
    EXPECT_EQ(second.Save({0x22, 2, {Numbered(0x22, 1)}}).code(),
              StatusCode::kFailedPrecondition);
    EXPECT_EQ(second.Save({0x22, 2, {}}).code(), StatusCode::kFailedPrecondition);  // no remove
    EXPECT_EQ(*fs_.Content(kSpoolPath), first);
    // The first agent goes away: the second stays in memory only (it never read that spool).
    first_agent.reset();
    EXPECT_FALSE(fs_.LockHeld("/host"));
    EXPECT_EQ(second.Save({0x22, 2, {Numbered(0x22, 1)}}).code(),
              StatusCode::kFailedPrecondition);
    EXPECT_EQ(*fs_.Content(kSpoolPath), first);
  }
  FileSpool next_run(fs_, kSpoolPath);  // the node's next agent finds the first one's events
  auto c = next_run.Load();
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->origin, 0x11u);
  EXPECT_EQ(c->events.size(), 2u);
}

TEST_F(FileSpoolTest, AHostDirThatIsNotThereYetIsLockedOnceItIs) {
  FileSpool spool(fs_, "/later/.license-holder-events.json");
  EXPECT_EQ(spool.Load().status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(spool.Save({0x11, 2, {Numbered(0x11, 1)}}).ok());  // no dir to write in
  fs_.AddDir("/later");
  ASSERT_TRUE(spool.Save({0x11, 2, {Numbered(0x11, 1)}}).ok());
  EXPECT_TRUE(fs_.LockHeld("/later"));
}

}  // namespace
}  // namespace lm::holder
