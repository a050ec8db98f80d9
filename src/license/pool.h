// Pool: the shared license volume, one license per subdirectory, read through a Filesystem: what
// a license is (CheckLicense) and what its claim says (ReadClaim). Not thread-safe. The states
// built on these reads (free, held, stale, ...) are in license/rules.h; the file names in
// license/layout.h.
//
//   Pool pool(fs, "/mnt/bitfusionio");
//   StatusOr<std::vector<std::string>> names = pool.Entries();  // everything a person put there
//   LicenseCheck k = pool.CheckLicense("license7");               // a license, or why not
//   ClaimView c = pool.ReadClaim("license7");                     // free / claimed / unreadable
//   StatusOr<LicenseFiles> files = pool.ReadLicense("license7");  // what to install
//
// What a license is is decided here and nowhere else: the agent, `license-holder release` and
// tokenmgr's pool view all call CheckLicense (through Classify, license/rules.h).
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
#include "license/layout.h"

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

// The verdict of Pool::CheckLicense.
struct LicenseCheck {
  std::string problem;      // empty: an installable license; otherwise why not, for humans
  std::string fingerprint;  // changes whenever the entry's content does (names, sizes, mtimes)
  bool usable() const { return problem.empty(); }
};

class Pool {
 public:
  Pool(Filesystem& fs, std::string dir) : fs_(fs), dir_(std::move(dir)) {}

  // Names of entries that look like licenses: real directories (never symlinks), not hidden,
  // no control characters. Sorted. Skipped entries are reported through `skipped`, if given.
  StatusOr<std::vector<std::string>> Names(std::vector<std::string>* skipped = nullptr);

  // Every entry of the pool directory except hidden ones ('.'-prefixed: ours). Sorted.
  StatusOr<std::vector<std::string>> Entries();

  // The rule for what a license is: a real directory (not a symlink) with a valid name, holding
  // `lic/host_id` as a non-empty regular file, with only directories and regular files inside
  // (no symlinks, devices, ...), within kMaxLicenseFiles/FileBytes/TotalBytes/Depth. Reads
  // metadata only (no file contents), so it is cheap enough for every scan. ReadLicense
  // re-checks the contents it reads.
  LicenseCheck CheckLicense(const std::string& name);

  // When no entry of the pool is a license but a subdirectory of an entry holds licenses
  // (POOL_DIR set one level too high): that subdirectory, the POOL_DIR probably meant.
  // Looks at a bounded number of entries.
  std::optional<std::string> LikelyPoolDir();

  ClaimView ReadClaim(const std::string& name);

  // The license's files, excluding the claim and hidden files. Refuses symlinks anywhere,
  // empty licenses, and anything over the size/count/depth bounds.
  StatusOr<LicenseFiles> ReadLicense(const std::string& name);

  std::string LicenseDir(const std::string& name) const { return license::LicenseDir(dir_, name); }
  std::string ClaimPath(const std::string& name) const { return license::ClaimPath(dir_, name); }
  const std::string& dir() const { return dir_; }
  Filesystem& fs() { return fs_; }

 private:
  Status Collect(const std::string& abs, const std::string& rel, int depth, LicenseFiles& out,
                 size_t& total);
  struct Walk {
    size_t files = 0;
    uint64_t bytes = 0;
    std::string fingerprint;
  };
  Status Inspect(const std::string& abs, const std::string& rel, int depth, Walk& walk);
  Filesystem& fs_;
  std::string dir_;
};

// Orders names for `node` by rendezvous hashing: deterministic for a node, different across
// nodes, so simultaneous agents rarely contend for the same free license.
std::vector<std::string> RendezvousOrder(std::vector<std::string> names, const std::string& node);

// 64-bit FNV-1a, hex.
std::string HashHex(std::string_view data);

}  // namespace lm::license
