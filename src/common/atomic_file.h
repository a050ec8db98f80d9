// Durable file replacement on POSIX: write a temp file in the same directory, fsync it,
// rename over the target, fsync the directory. Readers see the old or the new file, never a mix.
// Thread-safe for distinct paths.
//
//   LM_RETURN_IF_ERROR(WriteFileAtomically("/var/lib/tokenmgr/state.json", json, 0600));
//   StatusOr<std::string> text = ReadSmallFile(path, 64 * 1024);
//   if (::mkdir(dir.c_str(), 0755) != 0) return ErrnoStatus("mkdir", dir, errno);
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace lm {

// kDurable: as above. kVisibleOnly: the same temp file and rename, so readers still see the old
// or the new file and never a mix, but neither fsync: after a crash of the machine the old file,
// or an empty one, may be back. Only for hints that are checked whenever they are read.
enum class Durability { kDurable, kVisibleOnly };

Status WriteFileAtomically(const std::string& path, std::string_view content, mode_t mode,
                           Durability durability = Durability::kDurable);

// The same, but returns the new file's descriptor, open for reading and writing (O_CLOEXEC),
// for callers that go on updating the file in place. The caller closes it.
StatusOr<int> CreateFileAtomically(const std::string& path, std::string_view content,
                                   mode_t mode, Durability durability = Durability::kDurable);

// The same, with content too large to build in memory: `write` fills the temp file (through
// WriteAll on the descriptor it is given); an error from it leaves `path` as it was.
StatusOr<int> CreateFileAtomically(const std::string& path,
                                   const std::function<Status(int fd, const std::string& tmp)>& write,
                                   mode_t mode, Durability durability = Durability::kDurable);

// write(2) until all of `content` is written (EINTR retried); errors name `path`.
Status WriteAll(int fd, std::string_view content, const std::string& path);

// The temp file a write of `path` goes through: `.<name>.tmp.<16 hex>` beside it. Hidden (a
// leading '.'), so one a crash leaves behind is never taken for content, e.g. as a file of a
// license directory (the pool skips hidden names: license/layout.h).
std::string AtomicTempPath(const std::string& path);

enum class Symlinks { kRefuse, kFollow };

// Reads a regular file of at most max_bytes. By default a symlink at the last component is
// refused (files tokenmgr and the agent own); kFollow is for files an operator mounts, such
// as Kubernetes Secrets, which are symlinks into a `..data` directory.
// NOT_FOUND if absent; RESOURCE_EXHAUSTED if larger; system errors as ErrnoStatus maps them;
// not a regular file (a directory, a refused symlink): UNAVAILABLE.
StatusOr<std::string> ReadSmallFile(const std::string& path, size_t max_bytes,
                                    Symlinks symlinks = Symlinks::kRefuse);

// "open /x: Permission denied"
std::string ErrnoMessage(std::string_view what, const std::string& path, int err);

// The one errno -> Status mapping of file operations, with ErrnoMessage's text: NOT_FOUND
// (ENOENT), RESOURCE_EXHAUSTED (ENOSPC, EDQUOT), PERMISSION_DENIED (EACCES, EPERM, EROFS),
// otherwise UNAVAILABLE (EIO and the like: worth retrying).
Status ErrnoStatus(std::string_view what, const std::string& path, int err);

}  // namespace lm
