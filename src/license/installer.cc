#include "license/installer.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>

#include "common/random.h"

namespace lm::license {

using nlohmann::json;

std::string SerializeManifest(const Manifest& m) {
  json j = {{"v", 1}, {"license", m.license}, {"hash", m.hash}, {"entries", m.entries}};
  return j.dump() + "\n";
}

StatusOr<Manifest> ParseManifest(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("manifest: malformed JSON");
  Manifest m;
  auto lic = j.find("license");
  auto hash = j.find("hash");
  auto entries = j.find("entries");
  if (lic == j.end() || !lic->is_string() || hash == j.end() || !hash->is_string() ||
      entries == j.end() || !entries->is_array()) {
    return InvalidArgument("manifest: missing fields");
  }
  m.license = lic->get<std::string>();
  m.hash = hash->get<std::string>();
  for (const auto& e : *entries) {
    if (!e.is_string()) return InvalidArgument("manifest: bad entry");
    std::string name = e.get<std::string>();
    // Only plain names: a hostile manifest must not make us delete outside the host dir.
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
      return InvalidArgument("manifest: bad entry name");
    }
    m.entries.push_back(std::move(name));
  }
  return m;
}

namespace {
std::string RandomSuffix() {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(RandomU64()));
  return buf;
}
}  // namespace

StatusOr<std::optional<Manifest>> Installer::ReadManifest() {
  auto text = fs_.Read(JoinPath(host_, kManifestFile), 64 * 1024);
  if (!text.ok()) {
    if (text.status().code() == StatusCode::kNotFound) return std::optional<Manifest>();
    return text.status();
  }
  auto m = ParseManifest(*text);
  if (!m.ok()) return m.status();
  return std::optional<Manifest>(std::move(*m));
}

Status Installer::WriteManifest(const Manifest& m) {
  return fs_.WriteAtomic(JoinPath(host_, kManifestFile), SerializeManifest(m), 0600);
}

Status Installer::CollectInstalled(const std::string& abs, const std::string& rel,
                                   std::string& all, int depth) {
  if (depth > kMaxLicenseDepth) return InvalidArgument("installed tree too deep");
  auto info = fs_.Stat(abs);
  if (!info.ok()) return info.status();
  if (info->type == FileType::kMissing) return NotFound(abs + " is missing");
  if (info->type == FileType::kFile) {
    auto content = fs_.Read(abs, kMaxLicenseFileBytes);
    if (!content.ok()) return content.status();
    all += rel;
    all.push_back('\0');
    all += *content;
    all.push_back('\0');
    return Status::Ok();
  }
  if (info->type != FileType::kDir) return InvalidArgument(abs + " is not a file or directory");
  all += rel;
  all.push_back('\0');
  all += "d";
  all.push_back('\0');
  auto entries = fs_.List(abs);
  if (!entries.ok()) return entries.status();
  for (const DirEntry& e : *entries) {
    if (e.name.empty() || IsHiddenName(e.name)) continue;
    LM_RETURN_IF_ERROR(CollectInstalled(JoinPath(abs, e.name), rel + "/" + e.name, all, depth + 1));
  }
  return Status::Ok();
}

StatusOr<std::string> Installer::HashInstalled(const std::vector<std::string>& entries) {
  std::vector<std::string> sorted = entries;
  std::sort(sorted.begin(), sorted.end());
  std::string all;
  for (const std::string& e : sorted) {
    LM_RETURN_IF_ERROR(CollectInstalled(JoinPath(host_, e), e, all, 0));
  }
  return HashHex(all);
}

StatusOr<bool> Installer::Matches(const LicenseFiles& files) {
  auto m = ReadManifest();
  if (!m.ok()) return m.status();
  if (!*m || (*m)->hash != files.hash) return false;
  auto installed = HashInstalled((*m)->entries);
  if (!installed.ok()) return installed.status().code() == StatusCode::kNotFound
                                 ? StatusOr<bool>(false)
                                 : StatusOr<bool>(installed.status());
  return *installed == files.hash;
}

Status Installer::CleanLeftovers() {
  auto entries = fs_.List(host_);
  if (!entries.ok()) return entries.status();
  for (const DirEntry& e : *entries) {
    if (e.name.rfind(kStagingPrefix, 0) == 0 || e.name.rfind(kTrashPrefix, 0) == 0) {
      LM_RETURN_IF_ERROR(fs_.RemoveAll(JoinPath(host_, e.name)));
    }
  }
  return Status::Ok();
}

Status Installer::Install(const std::string& license, const LicenseFiles& files) {
  LM_RETURN_IF_ERROR(CheckHostDir());
  auto same = Matches(files);
  if (same.ok() && *same) {
    auto m = ReadManifest();
    if (m.ok() && *m && (*m)->license == license) return Status::Ok();
  }
  LM_RETURN_IF_ERROR(CleanLeftovers());
  auto old = ReadManifest();
  std::set<std::string> old_entries;
  if (old.ok() && *old) old_entries.insert((*old)->entries.begin(), (*old)->entries.end());

  // 1. Stage the complete new tree.
  std::string staging = JoinPath(host_, kStagingPrefix + RandomSuffix());
  LM_RETURN_IF_ERROR(fs_.MakeDir(staging, 0700));
  std::set<std::string> top;
  for (const LicenseFile& f : files.files) {
    top.insert(f.path.substr(0, f.path.find('/')));
    std::string target = JoinPath(staging, f.path);
    Status s = f.is_dir ? fs_.MakeDir(target, kLicenseDirMode)
                        : fs_.WriteAtomic(target, f.content, kLicenseFileMode);
    if (!s.ok()) {
      (void)fs_.RemoveAll(staging);
      return s;
    }
  }
  // 2. Record intent first, so a crash mid-swap still knows every entry that may be ours.
  Manifest pending{license, "", {}};
  std::set<std::string> all = old_entries;
  all.insert(top.begin(), top.end());
  pending.entries.assign(all.begin(), all.end());
  if (Status s = WriteManifest(pending); !s.ok()) {
    (void)fs_.RemoveAll(staging);
    return s;
  }
  // 3. Remove what the previous license had that the new one does not, and a seed-era lockedby.
  std::vector<std::string> gone;
  for (const std::string& e : old_entries) {
    if (!top.count(e)) gone.push_back(e);
  }
  LM_RETURN_IF_ERROR(RemoveEntries(gone));
  LM_RETURN_IF_ERROR(fs_.RemoveAll(JoinPath(host_, kClaimFile)));
  // 4. Swap each top-level entry in by rename.
  std::string trash = JoinPath(host_, kTrashPrefix + RandomSuffix());
  LM_RETURN_IF_ERROR(fs_.MakeDir(trash, 0700));
  for (const std::string& e : top) {
    std::string dest = JoinPath(host_, e);
    auto info = fs_.Stat(dest);
    if (!info.ok()) return info.status();
    if (info->type != FileType::kMissing) {
      LM_RETURN_IF_ERROR(fs_.Rename(dest, JoinPath(trash, e)));
    }
    LM_RETURN_IF_ERROR(fs_.Rename(JoinPath(staging, e), dest));
  }
  (void)fs_.RemoveAll(trash);
  (void)fs_.RemoveAll(staging);
  return WriteManifest(Manifest{license, files.hash, std::vector<std::string>(top.begin(), top.end())});
}

Status Installer::RemoveEntries(const std::vector<std::string>& entries) {
  if (entries.empty()) return Status::Ok();
  std::string trash = JoinPath(host_, kTrashPrefix + RandomSuffix());
  bool use_trash = fs_.MakeDir(trash, 0700).ok();
  for (const std::string& e : entries) {
    std::string path = JoinPath(host_, e);
    if (use_trash) {
      auto info = fs_.Stat(path);
      if (!info.ok()) return info.status();
      if (info->type == FileType::kMissing || fs_.Rename(path, JoinPath(trash, e)).ok()) continue;
    }
    LM_RETURN_IF_ERROR(fs_.RemoveAll(path));
  }
  return use_trash ? fs_.RemoveAll(trash) : Status::Ok();
}

Status Installer::Withdraw() {
  auto m = ReadManifest();
  if (!m.ok()) return m.status();
  if (*m) LM_RETURN_IF_ERROR(RemoveEntries((*m)->entries));
  LM_RETURN_IF_ERROR(fs_.RemoveAll(JoinPath(host_, kClaimFile)));
  (void)CleanLeftovers();
  return fs_.RemoveAll(JoinPath(host_, kManifestFile));
}

Status Installer::CheckHostDir() {
  auto info = fs_.Stat(host_);
  if (!info.ok())
    return Status(info.status().code(), "HOST_DIR " + host_ + ": " + info.status().message());
  switch (info->type) {
    case FileType::kDir:
      return Status::Ok();
    case FileType::kMissing:
      return NotFound("HOST_DIR " + host_ + " does not exist");
    case FileType::kSymlink:
      return FailedPrecondition("HOST_DIR " + host_ +
                                " is a symlink (refused: mount the real "
                                "directory)");
    default:
      return FailedPrecondition("HOST_DIR " + host_ + " is not a directory");
  }
}

Status Installer::PrepareHostDir() {
  Status s = CheckHostDir();
  if (s.code() == StatusCode::kNotFound) {
    if (Status m = fs_.MakeDir(host_, 0755); !m.ok()) {
      return Status(m.code(), "HOST_DIR " + host_ +
                                  " does not exist and cannot be created (its "
                                  "parent must exist): " +
                                  m.message());
    }
    s = CheckHostDir();
  }
  LM_RETURN_IF_ERROR(s);
  std::string probe = JoinPath(host_, kWriteProbe);
  if (Status w = fs_.WriteAtomicNoSync(probe, "", 0600); !w.ok()) {
    return Status(w.code(), "HOST_DIR " + host_ + " cannot be written: " + w.message());
  }
  return fs_.RemoveAll(probe);
}

Status Installer::WithdrawAll() {
  LM_RETURN_IF_ERROR(Withdraw());
  return fs_.RemoveAll(JoinPath(host_, kServersConf));
}

Status Installer::WriteServersConf(const std::string& content) {
  return fs_.WriteAtomic(JoinPath(host_, kServersConf), content, kLicenseFileMode);
}

}  // namespace lm::license
