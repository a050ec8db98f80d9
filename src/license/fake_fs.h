// FakeFilesystem: an in-memory Filesystem for unit tests, with fault injection. Thread-safe.
//
//   FakeFilesystem fs;
//   fs.AddFile("/pool/license1/lic/host_id", "abc");
//   fs.FailReads("/pool/license2", Unavailable("EIO"));  // every read under that prefix fails
#pragma once

#include <map>
#include <mutex>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "license/fs.h"

namespace lm::license {

class FakeFilesystem final : public Filesystem {
 public:
  void AddFile(const std::string& path, std::string content);
  void AddDir(const std::string& path);
  void AddSymlink(const std::string& path);
  // Faults: every operation of that kind on a path starting with `prefix` returns `error`.
  void FailReads(const std::string& prefix, Status error);
  void FailWrites(const std::string& prefix, Status error);
  // Only Read (a file's content) fails; List and Stat still answer (EIO on a file's data).
  void FailContentReads(const std::string& prefix, Status error);
  void ClearFaults();
  bool Exists(const std::string& path) const;
  std::optional<std::string> Content(const std::string& path) const;
  int writes() const;
  int unsynced_writes() const;
  int lists() const;

  StatusOr<std::vector<DirEntry>> List(const std::string& dir) override;
  StatusOr<FileInfo> Stat(const std::string& path) override;
  StatusOr<std::string> Read(const std::string& path, size_t max_bytes) override;
  Status WriteAtomic(const std::string& path, std::string_view content, mode_t mode) override;
  // Counted apart in unsynced_writes() (and not in writes()).
  Status WriteAtomicNoSync(const std::string& path, std::string_view content, mode_t mode) override;
  Status MakeDir(const std::string& path, mode_t mode) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status RemoveAll(const std::string& path) override;
  // Locks are kept in this object (which must outlive them); LockHeld tells whether one is held.
  StatusOr<std::unique_ptr<DirLock>> TryLockDir(const std::string& dir) override;
  bool LockHeld(const std::string& dir) const;

 private:
  friend class FakeDirLock;
  struct Node {
    FileType type = FileType::kFile;
    std::string content;
    int64_t mtime_ns = 0;
    uint64_t inode = 0;
  };
  Status Fault(const std::map<std::string, Status>& faults, const std::string& path) const;
  void AddParents(const std::string& path);
  Node& Put(const std::string& path, FileType type, std::string content);
  Status Replace(const std::string& path, std::string_view content);  // mu_ held

  mutable std::mutex mu_;
  std::map<std::string, Node> nodes_;  // Guarded by mu_
  std::map<std::string, Status> read_faults_, write_faults_;  // Guarded by mu_
  std::map<std::string, Status> content_faults_;              // Guarded by mu_
  int64_t tick_ = 0;     // Guarded by mu_
  uint64_t inodes_ = 0;  // Guarded by mu_
  int writes_ = 0;           // Guarded by mu_
  int unsynced_writes_ = 0;  // Guarded by mu_
  int lists_ = 0;            // Guarded by mu_
  std::set<std::string> locks_;  // held directory locks; Guarded by mu_
};

}  // namespace lm::license
