// Filesystem: every file access of the license code goes through this interface, so tests can
// use FakeFilesystem (in memory, with injectable faults). Implementations are thread-safe.
// No call follows a symlink: a symlink is reported as kSymlink and never opened or traversed.
//
//   PosixFilesystem fs;
//   StatusOr<std::vector<DirEntry>> entries = fs.List("/mnt/bitfusionio");
//   StatusOr<std::string> claim = fs.Read("/mnt/bitfusionio/license7/lockedby", 4096);
//   LM_RETURN_IF_ERROR(fs.WriteAtomic("/mnt/bitfusionio/license7/lockedby", text, 0644));
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace lm::license {

enum class FileType { kMissing, kFile, kDir, kSymlink, kOther };

struct FileInfo {
  FileType type = FileType::kMissing;
  uint64_t size = 0;
  int64_t mtime_ns = 0;  // the file server's clock: for change detection only, never compared
  uint64_t inode = 0;
};

struct DirEntry {
  std::string name;
  FileType type = FileType::kOther;
};

// An exclusive lock on a directory, held while the object lives (and by the kernel only while
// the process lives: a killed agent leaves no stale lock behind).
class DirLock {
 public:
  virtual ~DirLock() = default;
};

class Filesystem {
 public:
  virtual ~Filesystem() = default;
  // Entries of a directory (not "." or ".."), sorted by name. NOT_FOUND if absent.
  virtual StatusOr<std::vector<DirEntry>> List(const std::string& dir) = 0;
  // lstat. A missing path is OK with type kMissing.
  virtual StatusOr<FileInfo> Stat(const std::string& path) = 0;
  // A regular file's content; refuses symlinks and files over max_bytes (RESOURCE_EXHAUSTED).
  virtual StatusOr<std::string> Read(const std::string& path, size_t max_bytes) = 0;
  // Temp file in the same directory + fsync + rename. Readers see old or new, never a mix.
  virtual Status WriteAtomic(const std::string& path, std::string_view content, mode_t mode) = 0;
  // The same rename without the fsyncs: readers still see old or new, but a crash of the file
  // server may bring back the old file or an empty one. Only for hints checked when read: every
  // fsync on the pool's volume delays the claims written under the mutex.
  virtual Status WriteAtomicNoSync(const std::string& path, std::string_view content,
                                   mode_t mode) = 0;
  virtual Status MakeDir(const std::string& path, mode_t mode) = 0;  // OK if it exists as a dir
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  // Removes a file, symlink or whole tree (never following symlinks). OK if missing.
  virtual Status RemoveAll(const std::string& path) = 0;
  // Takes the exclusive lock on a directory without waiting (flock: any process of this host,
  // any container, and a second DirLock in this process all see it). FAILED_PRECONDITION while
  // someone else holds it; NOT_FOUND if the directory is missing.
  virtual StatusOr<std::unique_ptr<DirLock>> TryLockDir(const std::string& dir) = 0;
};

class PosixFilesystem final : public Filesystem {
 public:
  StatusOr<std::vector<DirEntry>> List(const std::string& dir) override;
  StatusOr<FileInfo> Stat(const std::string& path) override;
  StatusOr<std::string> Read(const std::string& path, size_t max_bytes) override;
  Status WriteAtomic(const std::string& path, std::string_view content, mode_t mode) override;
  Status WriteAtomicNoSync(const std::string& path, std::string_view content, mode_t mode) override;
  Status MakeDir(const std::string& path, mode_t mode) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status RemoveAll(const std::string& path) override;
  StatusOr<std::unique_ptr<DirLock>> TryLockDir(const std::string& dir) override;
};

// "a" + "b" -> "a/b"
std::string JoinPath(const std::string& dir, const std::string& name);

}  // namespace lm::license
