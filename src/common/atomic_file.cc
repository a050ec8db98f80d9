#include "common/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/random.h"

namespace lm {

std::string ErrnoMessage(std::string_view what, const std::string& path, int err) {
  std::string m(what);
  m += " " + path + ": " + std::strerror(err);
  return m;
}

Status ErrnoStatus(std::string_view what, const std::string& path, int err) {
  std::string m = ErrnoMessage(what, path, err);
  switch (err) {
    case ENOENT:
      return NotFound(m);
    case ENOSPC:
    case EDQUOT:
      return ResourceExhausted(m);
    case EACCES:
    case EPERM:
    case EROFS:
      return Status(StatusCode::kPermissionDenied, m);
    default:
      return Unavailable(m);
  }
}

Status WriteAll(int fd, std::string_view content, const std::string& path) {
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write", path, errno);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

namespace {

std::string DirName(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

std::string AtomicTempPath(const std::string& path) {
  char suffix[24];
  std::snprintf(suffix, sizeof suffix, ".tmp.%016llx",
                static_cast<unsigned long long>(RandomU64()));
  const size_t slash = path.rfind('/');
  const size_t base = slash == std::string::npos ? 0 : slash + 1;
  return path.substr(0, base) + "." + path.substr(base) + suffix;
}

StatusOr<int> CreateFileAtomically(const std::string& path, std::string_view content,
                                   mode_t mode, Durability durability) {
  return CreateFileAtomically(
      path, [content](int fd, const std::string& tmp) { return WriteAll(fd, content, tmp); }, mode,
      durability);
}

StatusOr<int> CreateFileAtomically(const std::string& path,
                                   const std::function<Status(int fd, const std::string& tmp)>& write,
                                   mode_t mode, Durability durability) {
  const bool sync = durability == Durability::kDurable;
  std::string tmp = AtomicTempPath(path);
  int fd = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return ErrnoStatus("create", tmp, errno);
  Status s = write(fd, tmp);
  if (s.ok() && ::fchmod(fd, mode) != 0) s = ErrnoStatus("chmod", tmp, errno);
  if (s.ok() && sync && ::fsync(fd) != 0) s = ErrnoStatus("fsync", tmp, errno);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) s = ErrnoStatus("rename", path, errno);
  if (!s.ok()) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  int dfd = sync ? ::open(DirName(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  if (dfd >= 0) {
    ::fsync(dfd);  // best effort: some filesystems refuse fsync on directories
    ::close(dfd);
  }
  return fd;
}

Status WriteFileAtomically(const std::string& path, std::string_view content, mode_t mode,
                           Durability durability) {
  StatusOr<int> fd = CreateFileAtomically(path, content, mode, durability);
  if (!fd.ok()) return fd.status();
  ::close(*fd);  // kDurable: the content is durable already, fsync'd before the rename
  return Status::Ok();
}

StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max_bytes,
                                    Symlinks symlinks) {
  const int nofollow = symlinks == Symlinks::kRefuse ? O_NOFOLLOW : 0;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | nofollow);
  if (fd < 0) return ErrnoStatus("open", path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Unavailable("open " + path + ": not a regular file");
  }
  std::string out;
  char buf[8192];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return ErrnoStatus("read", path, err);
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max_bytes) {
      ::close(fd);
      return ResourceExhausted(path + " is larger than " + std::to_string(max_bytes) + " bytes");
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace lm
