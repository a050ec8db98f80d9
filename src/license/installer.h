// Installer: puts one license into the node's host directory (/etc/bitfusionio) and takes it
// away again, through a Filesystem. Not thread-safe (one agent owns the host directory).
//
//   Installer inst(fs, "/etc/bitfusionio");
//   LM_RETURN_IF_ERROR(inst.Install("license7", files));  // replaces any previous license
//   LM_RETURN_IF_ERROR(inst.WriteServersConf(text));
//   LM_RETURN_IF_ERROR(inst.Withdraw());                   // license files gone
//
// Install is complete and never a mix: the new tree is staged in a hidden directory, then each
// top-level entry is swapped in by rename. Entries of the previous license (from the manifest),
// a seed-copied `lockedby`, and same-named entries are removed; unknown files are left alone
// (HOST_DIR might be misconfigured; we never delete what we did not install).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "license/fs.h"
#include "license/layout.h"
#include "license/pool.h"

namespace lm::license {

inline constexpr mode_t kLicenseFileMode = 0640;  // not world-readable
inline constexpr mode_t kLicenseDirMode = 0750;

struct Manifest {
  std::string license;               // pool directory name
  std::string hash;                  // LicenseFiles::hash of what was installed
  std::vector<std::string> entries;  // top-level names we put into the host dir
};

class Installer {
 public:
  Installer(Filesystem& fs, std::string host_dir) : fs_(fs), host_(std::move(host_dir)) {}

  // Replaces the installed license with `files`. A no-op when the same content is in place.
  Status Install(const std::string& license, const LicenseFiles& files);
  // Makes sure the host dir can take an install: creates it (mode 0755) if missing, as kubelet's
  // DirectoryOrCreate would (its parent must exist), refuses a symlink or non-directory, and
  // writes and removes a probe file. Errors name HOST_DIR, the path and the cause.
  Status PrepareHostDir();
  // Removes the installed license's files and the manifest; servers.conf stays.
  Status Withdraw();
  // Withdraw(), and servers.conf too: everything the agent ever put there (`release`).
  Status WithdrawAll();
  // The seed's exact servers.conf format; written atomically.
  Status WriteServersConf(const std::string& content);
  // The manifest, if a license is installed (nullopt if none; error if unreadable).
  StatusOr<std::optional<Manifest>> ReadManifest();
  // True if the host dir holds exactly `files` under the manifest's entries.
  StatusOr<bool> Matches(const LicenseFiles& files);
  // Removes leftovers of an interrupted install (.staging-*, .trash-*).
  Status CleanLeftovers();

  const std::string& host_dir() const { return host_; }

 private:
  Status WriteManifest(const Manifest& m);
  Status CheckHostDir();  // OK if the host dir is a real directory
  // Deletes top-level entries of the host dir. Each is first moved out of sight into a .trash-
  // dir by one rename, so a reader sees the whole entry or nothing (deleting in place removes
  // files one by one); if that dir cannot be made (a full disk), deletes in place.
  Status RemoveEntries(const std::vector<std::string>& entries);
  StatusOr<std::string> HashInstalled(const std::vector<std::string>& entries);
  Status CollectInstalled(const std::string& abs, const std::string& rel, std::string& all,
                          int depth);
  Filesystem& fs_;
  std::string host_;
};

std::string SerializeManifest(const Manifest& m);
StatusOr<Manifest> ParseManifest(std::string_view text);

}  // namespace lm::license
