// Pool: the shared license volume, one license per subdirectory, read through a Filesystem.
// StalenessObserver: decides staleness from what this process saw change over time on its own
// monotonic clock, never by comparing anyone's wall clocks. Neither is thread-safe.
//
//   Pool pool(fs, "/mnt/bitfusionio");
//   StatusOr<std::vector<std::string>> names = pool.Names();  // usable-looking license dirs
//   ClaimView c = pool.ReadClaim("license7");                   // free / claimed / unreadable
//   StatusOr<LicenseFiles> files = pool.ReadLicense("license7"); // what to install
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "license/claim.h"
#include "license/fs.h"

namespace lm::license {

inline constexpr size_t kMaxLicenseFiles = 64;
inline constexpr size_t kMaxLicenseFileBytes = 1 << 20;
inline constexpr size_t kMaxLicenseTotalBytes = 4 << 20;
inline constexpr int kMaxLicenseDepth = 8;

struct LicenseFile {
  std::string path;  // relative to the license directory, e.g. "lic/host_id"
  bool is_dir = false;
  std::string content;
};

struct LicenseFiles {
  std::vector<LicenseFile> files;  // parents before children
  std::string hash;                // of paths and contents, hex
};

enum class ClaimState { kFree, kClaimed, kUnreadable };

struct ClaimView {
  ClaimState state = ClaimState::kUnreadable;
  std::optional<ClaimRecord> record;  // when kClaimed
  std::string error;                  // when kUnreadable (garbage, EIO, too large, symlink)
  // Changes whenever the claim file is rewritten (content, mtime or inode): the observer's input.
  std::string fingerprint;
};

class Pool {
 public:
  Pool(Filesystem& fs, std::string dir) : fs_(fs), dir_(std::move(dir)) {}

  // Names of entries that look like licenses: real directories (never symlinks), not hidden,
  // no control characters. Sorted. Skipped entries are reported through `skipped`, if given.
  StatusOr<std::vector<std::string>> Names(std::vector<std::string>* skipped = nullptr);

  ClaimView ReadClaim(const std::string& name);

  // The license's files, excluding the claim and hidden files. Refuses symlinks anywhere,
  // empty licenses, and anything over the size/count/depth bounds.
  StatusOr<LicenseFiles> ReadLicense(const std::string& name);

  std::string LicenseDir(const std::string& name) const { return JoinPath(dir_, name); }
  std::string ClaimPath(const std::string& name) const {
    return JoinPath(LicenseDir(name), kClaimFile);
  }
  const std::string& dir() const { return dir_; }
  Filesystem& fs() { return fs_; }

 private:
  Status Collect(const std::string& abs, const std::string& rel, int depth, LicenseFiles& out,
                 size_t& total);
  Filesystem& fs_;
  std::string dir_;
};

// Orders names for `node` by rendezvous hashing: deterministic for a node, different across
// nodes, so simultaneous agents rarely contend for the same free license.
std::vector<std::string> RendezvousOrder(std::vector<std::string> names, const std::string& node);

// 64-bit FNV-1a, hex.
std::string HashHex(std::string_view data);

class StalenessObserver {
 public:
  // Records the fingerprint seen now for `name`.
  void Observe(const std::string& name, const std::string& fingerprint, SteadyTime now);
  // True if `fingerprint` is what we saw and it has not changed for at least `ttl`.
  bool IsStale(const std::string& name, const std::string& fingerprint, SteadyTime now,
               std::chrono::nanoseconds ttl) const;
  // How long the current fingerprint has been unchanged, if known.
  std::optional<std::chrono::nanoseconds> UnchangedFor(const std::string& name,
                                                       SteadyTime now) const;
  void Forget(const std::string& name) { seen_.erase(name); }

 private:
  struct Seen {
    std::string fingerprint;
    SteadyTime since;
  };
  std::map<std::string, Seen> seen_;
};

}  // namespace lm::license
