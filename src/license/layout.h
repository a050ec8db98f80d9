// The file layout of the license pool (POOL_DIR) and of a node's host directory (HOST_DIR):
// every name the license code gives a file or directory, in one place (leveldb's filename.h is
// the model). Constants and pure functions; thread-safe.
//
//   std::string claim = ClaimPath("/mnt/bitfusionio", "license7");  // .../license7/lockedby
//   std::string hint = HintPath("/mnt/bitfusionio", "gpu-7");       // .../.holders/gpu-7
//   if (IsHiddenName(entry)) continue;  // ours or an operator's: never a license, nor in one
//
// POOL_DIR (shared by every node):
//   <license>/                 one license; Pool::CheckLicense says what qualifies
//   <license>/lic/host_id      the file every license holds (non-empty)
//   <license>/lockedby         the claim naming who holds the license (license/claim.h)
//   .holders/<node>            hint: the license <node> claimed last (not fsync'd; re-checked)
// HOST_DIR (one node's):
//   .license-holder.json       manifest of what the agent installed
//   servers.conf               rendered after every install
//   .release-requested         left by `license-holder release`: the agent claims nothing more
//   .staging-<random>/         an install being assembled; .trash-<random>/ one being removed
//   .license-holder-probe      the write probe before a claim
//   .license-holder-events.json  events not yet acknowledged by tokenmgr (holder/event_spool.h)
// Files replaced atomically get a hidden temp file `.<name>.tmp.<16 hex>` beside them for the
// moment of the write (common/atomic_file.h: AtomicTempPath).
#pragma once

#include <string>
#include <string_view>

#include "license/fs.h"

namespace lm::license {

// POOL_DIR.
inline constexpr const char* kClaimFile = "lockedby";
inline constexpr const char* kLicenseKeyDir = "lic";
inline constexpr const char* kLicenseKeyFile = "host_id";
inline constexpr const char* kLicenseKeyPath = "lic/host_id";
inline constexpr const char* kHintDir = ".holders";

// HOST_DIR.
inline constexpr const char* kManifestFile = ".license-holder.json";
inline constexpr const char* kServersConf = "servers.conf";
inline constexpr const char* kReleaseMarker = ".release-requested";
inline constexpr const char* kStagingPrefix = ".staging-";
inline constexpr const char* kTrashPrefix = ".trash-";
inline constexpr const char* kWriteProbe = ".license-holder-probe";
inline constexpr const char* kEventSpool = ".license-holder-events.json";

// A '.'-prefixed name: our own files (hints, temp and staging names) or an operator's hidden
// ones. Never a license, never part of one, never shown.
inline bool IsHiddenName(std::string_view name) { return !name.empty() && name[0] == '.'; }

inline std::string LicenseDir(const std::string& pool_dir, const std::string& license) {
  return JoinPath(pool_dir, license);
}
inline std::string ClaimPath(const std::string& pool_dir, const std::string& license) {
  return JoinPath(LicenseDir(pool_dir, license), kClaimFile);
}
inline std::string LicenseKeyPath(const std::string& pool_dir, const std::string& license) {
  return JoinPath(LicenseDir(pool_dir, license), kLicenseKeyPath);
}
inline std::string HintDir(const std::string& pool_dir) { return JoinPath(pool_dir, kHintDir); }
inline std::string HintPath(const std::string& pool_dir, const std::string& node) {
  return JoinPath(HintDir(pool_dir), node);
}
inline std::string ReleaseMarkerPath(const std::string& host_dir) {
  return JoinPath(host_dir, kReleaseMarker);
}

}  // namespace lm::license
