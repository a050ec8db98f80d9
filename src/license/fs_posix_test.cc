#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "common/atomic_file.h"
#include "license/fs.h"

namespace lm::license {
namespace {

class PosixFilesystemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lm-fs-test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { (void)fs_.RemoveAll(dir_); }
  // Names in the directory, so a leftover temp file shows.
  std::vector<std::string> Names() {
    std::vector<std::string> out;
    auto entries = fs_.List(dir_);
    for (const DirEntry& e : *entries) out.push_back(e.name);
    return out;
  }
  mode_t Mode(const std::string& path) {
    struct stat st {};
    ::stat(path.c_str(), &st);
    return st.st_mode & 0777;
  }
  PosixFilesystem fs_;
  std::string dir_;
};

TEST_F(PosixFilesystemTest, BothWritesReplaceWholeFilesAndLeaveNoTempFiles) {
  const std::string synced = dir_ + "/claim", hint = dir_ + "/hint";
  ASSERT_TRUE(fs_.WriteAtomic(synced, "first, longer content\n", 0640).ok());
  ASSERT_TRUE(fs_.WriteAtomic(synced, "second\n", 0644).ok());
  ASSERT_TRUE(fs_.WriteAtomicNoSync(hint, "license7\n", 0600).ok());
  ASSERT_TRUE(fs_.WriteAtomicNoSync(hint, "license8\n", 0644).ok());
  EXPECT_EQ(*fs_.Read(synced, 100), "second\n");
  EXPECT_EQ(*fs_.Read(hint, 100), "license8\n");
  EXPECT_EQ(Mode(synced), 0644u);
  EXPECT_EQ(Mode(hint), 0644u);
  EXPECT_EQ(Names(), (std::vector<std::string>{"claim", "hint"}));
}

TEST_F(PosixFilesystemTest, WritesIntoAMissingDirectoryFailAndCreateNothing) {
  EXPECT_FALSE(fs_.WriteAtomic(dir_ + "/missing/claim", "x", 0644).ok());
  EXPECT_FALSE(fs_.WriteAtomicNoSync(dir_ + "/missing/hint", "x", 0644).ok());
  EXPECT_TRUE(Names().empty());
}

TEST_F(PosixFilesystemTest, WritesNeverFollowASymlinkOrReplaceADirectory) {
  ASSERT_EQ(::symlink("/etc/passwd", (dir_ + "/link").c_str()), 0);
  ASSERT_TRUE(fs_.WriteAtomicNoSync(dir_ + "/link", "mine\n", 0644).ok());  // replaces the link
  EXPECT_EQ(fs_.Stat(dir_ + "/link")->type, FileType::kFile);
  ASSERT_TRUE(fs_.MakeDir(dir_ + "/sub", 0755).ok());
  EXPECT_FALSE(fs_.WriteAtomicNoSync(dir_ + "/sub", "x", 0644).ok());
  EXPECT_EQ(fs_.Stat(dir_ + "/sub")->type, FileType::kDir);
  EXPECT_EQ(Names(), (std::vector<std::string>{"link", "sub"}));
}

// Every file operation of the pool, the host directory and tokenmgr's state file maps an errno to
// a Status the same way (common/atomic_file.h, ErrnoStatus).
TEST_F(PosixFilesystemTest, EveryOperationMapsAMissingParentToNotFound) {
  const std::string missing = dir_ + "/missing";
  EXPECT_EQ(fs_.List(missing).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(fs_.MakeDir(missing + "/sub", 0755).code(), StatusCode::kNotFound);
  EXPECT_EQ(fs_.Read(missing + "/claim", 100).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(fs_.WriteAtomic(missing + "/claim", "x", 0644).code(), StatusCode::kNotFound);
  EXPECT_EQ(fs_.WriteAtomicNoSync(missing + "/hint", "x", 0644).code(), StatusCode::kNotFound);
  EXPECT_EQ(WriteFileAtomically(missing + "/state", "x", 0600).code(), StatusCode::kNotFound);
}

TEST(ErrnoStatus, OneMappingForEveryFileOperation) {
  const std::pair<int, StatusCode> table[] = {
      {ENOENT, StatusCode::kNotFound},          {ENOSPC, StatusCode::kResourceExhausted},
      {EDQUOT, StatusCode::kResourceExhausted}, {EACCES, StatusCode::kPermissionDenied},
      {EPERM, StatusCode::kPermissionDenied},   {EROFS, StatusCode::kPermissionDenied},
      {EIO, StatusCode::kUnavailable},          {ELOOP, StatusCode::kUnavailable},
      {ESTALE, StatusCode::kUnavailable}};
  for (const auto& [err, code] : table) {
    Status s = ErrnoStatus("open", "/pool/license1/lockedby", err);
    EXPECT_EQ(s.code(), code) << err;
    EXPECT_EQ(s.message(), ErrnoMessage("open", "/pool/license1/lockedby", err)) << err;
  }
}

TEST_F(PosixFilesystemTest, ADirLockIsExclusiveAcrossProcessesAndGoesWithItsHolder) {
  auto lock = fs_.TryLockDir(dir_);
  ASSERT_TRUE(lock.ok()) << lock.status().ToString();
  auto again = fs_.TryLockDir(dir_);  // a second holder in this process
  ASSERT_EQ(again.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(again.status().message().find(dir_), std::string::npos);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // another process (another agent's container on this node)
    PosixFilesystem other;
    auto l = other.TryLockDir(dir_);
    ::_exit(l.ok() ? 0 : l.status().code() == StatusCode::kFailedPrecondition ? 3 : 4);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3) << status;
  lock->reset();  // the holder goes: the lock is free
  EXPECT_TRUE(fs_.TryLockDir(dir_).ok());
}

TEST_F(PosixFilesystemTest, ADirLockNeedsARealDirectory) {
  EXPECT_EQ(fs_.TryLockDir(dir_ + "/missing").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(fs_.WriteAtomic(dir_ + "/file", "x", 0644).ok());
  EXPECT_FALSE(fs_.TryLockDir(dir_ + "/file").ok());
  ASSERT_EQ(::mkdir((dir_ + "/real").c_str(), 0755), 0);
  ASSERT_EQ(::symlink((dir_ + "/real").c_str(), (dir_ + "/link").c_str()), 0);
  EXPECT_FALSE(fs_.TryLockDir(dir_ + "/link").ok());  // never through a symlink
}

}  // namespace
}  // namespace lm::license
