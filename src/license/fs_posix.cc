#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/atomic_file.h"
#include "license/fs.h"

namespace lm::license {

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  if (dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

namespace {

FileType TypeOf(mode_t mode) {
  if (S_ISREG(mode)) return FileType::kFile;
  if (S_ISDIR(mode)) return FileType::kDir;
  if (S_ISLNK(mode)) return FileType::kSymlink;
  return FileType::kOther;
}

class FlockDirLock final : public DirLock {
 public:
  explicit FlockDirLock(int fd) : fd_(fd) {}
  ~FlockDirLock() override { ::close(fd_); }  // closing the last descriptor drops the flock

 private:
  int fd_;
};

}  // namespace

StatusOr<std::vector<DirEntry>> PosixFilesystem::List(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open", dir, errno);
  DIR* d = ::fdopendir(fd);
  if (!d) {
    int err = errno;
    ::close(fd);
    return ErrnoStatus("opendir", dir, err);
  }
  std::vector<DirEntry> out;
  errno = 0;
  while (struct dirent* e = ::readdir(d)) {
    std::string name(e->d_name);
    if (name == "." || name == "..") continue;
    FileType t = FileType::kOther;
    switch (e->d_type) {  // most filesystems (NFS with READDIRPLUS too) say it for free
      case DT_REG: t = FileType::kFile; break;
      case DT_DIR: t = FileType::kDir; break;
      case DT_LNK: t = FileType::kSymlink; break;
      case DT_UNKNOWN: {
        struct stat st;
        if (::fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) t = TypeOf(st.st_mode);
        break;
      }
      default: break;
    }
    out.push_back({std::move(name), t});
  }
  int err = errno;
  ::closedir(d);
  if (err != 0) return ErrnoStatus("readdir", dir, err);
  std::sort(out.begin(), out.end(), [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
  return out;
}

StatusOr<FileInfo> PosixFilesystem::Stat(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return FileInfo{};
    return ErrnoStatus("stat", path, errno);
  }
  FileInfo info;
  info.type = TypeOf(st.st_mode);
  info.size = static_cast<uint64_t>(st.st_size);
  info.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  info.inode = st.st_ino;
  return info;
}

StatusOr<std::string> PosixFilesystem::Read(const std::string& path, size_t max_bytes) {
  return ReadSmallFile(path, max_bytes);
}

Status PosixFilesystem::WriteAtomic(const std::string& path, std::string_view content,
                                    mode_t mode) {
  return WriteFileAtomically(path, content, mode);
}

Status PosixFilesystem::WriteAtomicNoSync(const std::string& path, std::string_view content,
                                          mode_t mode) {
  return WriteFileAtomically(path, content, mode, Durability::kVisibleOnly);
}

Status PosixFilesystem::MakeDir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) == 0) return Status::Ok();
  int err = errno;
  struct stat st;
  if (err == EEXIST && ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return Status::Ok();
  }
  return ErrnoStatus("mkdir", path, err);
}

Status PosixFilesystem::Rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) == 0) return Status::Ok();
  return ErrnoStatus("rename", from + " -> " + to, errno);
}

Status PosixFilesystem::RemoveAll(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return ErrnoStatus("stat", path, errno);
  }
  if (S_ISDIR(st.st_mode)) {
    auto entries = List(path);
    if (!entries.ok()) return entries.status();
    for (const DirEntry& e : *entries) LM_RETURN_IF_ERROR(RemoveAll(JoinPath(path, e.name)));
    if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("rmdir", path, errno);
    return Status::Ok();
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("unlink", path, errno);
  return Status::Ok();
}

StatusOr<std::unique_ptr<DirLock>> PosixFilesystem::TryLockDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open", dir, errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) return FailedPrecondition(dir + " is locked by another process");
    return ErrnoStatus("flock", dir, err);
  }
  return std::unique_ptr<DirLock>(new FlockDirLock(fd));
}

}  // namespace lm::license
