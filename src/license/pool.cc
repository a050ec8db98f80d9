#include "license/pool.h"

#include <algorithm>
#include <cstdio>

namespace lm::license {

namespace {

bool HasControlChars(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
}

// Names go into JSON (the manifest, /api/licenses), whose writer throws on bytes that are not
// UTF-8; such a name in the pool crashed the agent on install (found by fuzz/manifest_fuzzer).
bool ValidUtf8(const std::string& s) {  // RFC 3629: no overlongs, surrogates or > U+10FFFF
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  for (size_t i = 0; i < s.size();) {
    unsigned char c = byte(i);
    size_t n = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // range of the second byte
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (s.size() - i - 1 < n) return false;
    if (byte(i + 1) < lo || byte(i + 1) > hi) return false;
    for (size_t k = 2; k <= n; ++k) {
      if ((byte(i + k) & 0xc0) != 0x80) return false;
    }
    i += n + 1;
  }
  return true;
}

bool BadName(const std::string& s) { return HasControlChars(s) || !ValidUtf8(s); }

uint64_t Fnv1a(std::string_view data, uint64_t h = 1469598103934665603ULL) {
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

uint64_t Mix(uint64_t x) {  // splitmix64 finaliser
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

std::string HashHex(std::string_view data) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(Fnv1a(data)));
  return buf;
}

StatusOr<std::vector<std::string>> Pool::Names(std::vector<std::string>* skipped) {
  auto entries = fs_.List(dir_);
  if (!entries.ok()) return entries.status();
  std::vector<std::string> names;
  for (const DirEntry& e : *entries) {
    bool ok =
        e.type == FileType::kDir && !e.name.empty() && !IsHiddenName(e.name) && !BadName(e.name);
    if (ok) {
      names.push_back(e.name);
    } else if (skipped && !IsHiddenName(e.name)) {
      skipped->push_back(e.name);
    }
  }
  return names;
}

StatusOr<std::vector<std::string>> Pool::Entries() {
  auto entries = fs_.List(dir_);
  if (!entries.ok()) return entries.status();
  std::vector<std::string> names;
  for (const DirEntry& e : *entries) {
    if (!e.name.empty() && !IsHiddenName(e.name)) names.push_back(e.name);
  }
  return names;
}

Status Pool::Inspect(const std::string& abs, const std::string& rel, int depth, Walk& walk) {
  if (depth > kMaxLicenseDepth) return InvalidArgument(rel + ": nested too deeply");
  auto entries = fs_.List(abs);
  if (!entries.ok()) return entries.status();
  for (const DirEntry& e : *entries) {
    if (e.name.empty() || IsHiddenName(e.name)) continue;
    if (depth == 0 && e.name == kClaimFile) continue;
    std::string child_rel = rel.empty() ? e.name : rel + "/" + e.name;
    if (BadName(e.name))
      return InvalidArgument(child_rel + ": name with control characters or not UTF-8");
    if (++walk.files > kMaxLicenseFiles) {
      return InvalidArgument("more than " + std::to_string(kMaxLicenseFiles) + " files");
    }
    std::string child_abs = JoinPath(abs, e.name);
    auto info = fs_.Stat(child_abs);
    if (!info.ok()) return info.status();
    walk.fingerprint += child_rel + ":" + std::to_string(static_cast<int>(info->type)) + ":" +
                        std::to_string(info->size) + ":" + std::to_string(info->mtime_ns) + ":" +
                        std::to_string(info->inode) + "\n";
    if (info->type == FileType::kDir) {
      LM_RETURN_IF_ERROR(Inspect(child_abs, child_rel, depth + 1, walk));
    } else if (info->type == FileType::kFile) {
      if (info->size > kMaxLicenseFileBytes) {
        return InvalidArgument(child_rel + ": larger than " + std::to_string(kMaxLicenseFileBytes) +
                               " bytes");
      }
      walk.bytes += info->size;
      if (walk.bytes > kMaxLicenseTotalBytes) {
        return InvalidArgument("larger than " + std::to_string(kMaxLicenseTotalBytes) +
                               " bytes in all");
      }
    } else if (info->type == FileType::kMissing) {
      return Unavailable(child_rel + ": changed while being read");
    } else {
      return InvalidArgument(child_rel + ": " +
                             (info->type == FileType::kSymlink ? "a symlink" : "a special file") +
                             " (a license holds only directories and regular files)");
    }
  }
  return Status::Ok();
}

LicenseCheck Pool::CheckLicense(const std::string& name) {
  LicenseCheck out;
  std::string dir = LicenseDir(name);
  if (name.empty() || IsHiddenName(name) || BadName(name)) {
    out.problem = "name is hidden, has control characters or is not UTF-8";
    return out;
  }
  auto info = fs_.Stat(dir);
  if (!info.ok()) {
    out.problem = info.status().message();
    return out;
  }
  out.fingerprint =
      std::to_string(static_cast<int>(info->type)) + ":" + std::to_string(info->inode) + "\n";
  if (info->type != FileType::kDir) {
    out.problem = info->type == FileType::kSymlink   ? "a symlink, not a license directory"
                  : info->type == FileType::kMissing ? "removed from the pool"
                                                     : "not a directory";
    return out;
  }
  Walk walk;
  Status s = Inspect(dir, "", 0, walk);
  out.fingerprint += walk.fingerprint;
  out.fingerprint = HashHex(out.fingerprint);
  if (!s.ok()) {
    out.problem = s.message();
    return out;
  }
  const std::string key = kLicenseKeyPath;
  auto key_info = fs_.Stat(JoinPath(dir, key));
  if (!key_info.ok()) {
    out.problem = key + ": " + key_info.status().message();
  } else if (key_info->type == FileType::kMissing) {
    out.problem = "no " + key + " (a license directory holds " + key + ")";
  } else if (key_info->type != FileType::kFile) {
    out.problem = key + " is not a regular file";
  } else if (key_info->size == 0) {
    out.problem = key + " is empty";
  }
  return out;
}

std::optional<std::string> Pool::LikelyPoolDir() {
  constexpr size_t kMaxProbe = 64;
  auto names = Entries();
  if (!names.ok()) return std::nullopt;
  size_t probed = 0;
  for (const std::string& name : *names) {
    if (CheckLicense(name).usable()) return std::nullopt;  // the pool has licenses
  }
  for (const std::string& name : *names) {
    if (++probed > kMaxProbe) break;
    auto info = fs_.Stat(LicenseDir(name));
    if (!info.ok() || info->type != FileType::kDir) continue;
    Pool sub(fs_, LicenseDir(name));
    auto sub_names = sub.Entries();
    if (!sub_names.ok()) continue;
    for (size_t i = 0; i < sub_names->size() && i < kMaxProbe; ++i) {
      if (sub.CheckLicense((*sub_names)[i]).usable()) return sub.dir();
    }
  }
  return std::nullopt;
}

ClaimView Pool::ReadClaim(const std::string& name) {
  ClaimView v;
  std::string path = ClaimPath(name);
  auto info = fs_.Stat(path);
  if (!info.ok()) {
    v.error = info.status().message();
    return v;
  }
  if (info->type == FileType::kMissing) {
    v.state = ClaimState::kFree;
    return v;
  }
  auto text = fs_.Read(path, kMaxClaimBytes);
  if (!text.ok()) {
    if (text.status().code() == StatusCode::kNotFound) {  // removed between stat and read
      v.state = ClaimState::kFree;
      return v;
    }
    v.error = text.status().message();
    v.fingerprint = "unreadable:" + std::to_string(info->mtime_ns) + ":" +
                    std::to_string(info->inode) + ":" + std::to_string(info->size);
    return v;
  }
  v.fingerprint = std::to_string(info->mtime_ns) + ":" + std::to_string(info->inode) + ":" +
                  HashHex(*text);
  auto record = ParseClaim(*text);
  if (!record.ok()) {
    v.error = record.status().message();
    return v;
  }
  v.state = ClaimState::kClaimed;
  v.record = std::move(*record);
  return v;
}

Status Pool::Collect(const std::string& abs, const std::string& rel, int depth, LicenseFiles& out,
                     size_t& total) {
  if (depth > kMaxLicenseDepth) return InvalidArgument(abs + ": license nested too deeply");
  auto entries = fs_.List(abs);
  if (!entries.ok()) return entries.status();
  for (const DirEntry& e : *entries) {
    if (e.name.empty() || IsHiddenName(e.name)) continue;
    if (depth == 0 && e.name == kClaimFile) continue;
    if (BadName(e.name)) {
      return InvalidArgument(abs + ": file name with control characters or not UTF-8");
    }
    std::string child_abs = JoinPath(abs, e.name);
    std::string child_rel = rel.empty() ? e.name : rel + "/" + e.name;
    if (out.files.size() >= kMaxLicenseFiles) return InvalidArgument(abs + ": too many files");
    if (e.type == FileType::kDir) {
      out.files.push_back({child_rel, true, ""});
      LM_RETURN_IF_ERROR(Collect(child_abs, child_rel, depth + 1, out, total));
    } else if (e.type == FileType::kFile) {
      auto content = fs_.Read(child_abs, kMaxLicenseFileBytes);
      if (!content.ok()) return content.status();
      total += content->size();
      if (total > kMaxLicenseTotalBytes) return InvalidArgument(abs + ": license too large");
      out.files.push_back({child_rel, false, std::move(*content)});
    } else {
      return InvalidArgument(child_abs + ": symlinks and special files are not allowed in a license");
    }
  }
  return Status::Ok();
}

StatusOr<LicenseFiles> Pool::ReadLicense(const std::string& name) {
  LicenseFiles out;
  size_t total = 0;
  LM_RETURN_IF_ERROR(Collect(LicenseDir(name), "", 0, out, total));
  bool any_file = std::any_of(out.files.begin(), out.files.end(),
                              [](const LicenseFile& f) { return !f.is_dir; });
  if (!any_file) return InvalidArgument(LicenseDir(name) + ": license directory has no files");
  const std::string key = kLicenseKeyPath;
  bool has_key = std::any_of(out.files.begin(), out.files.end(), [&](const LicenseFile& f) {
    return !f.is_dir && f.path == key && !f.content.empty();
  });
  if (!has_key) return InvalidArgument(LicenseDir(name) + ": no non-empty " + key);
  std::string all;
  for (const LicenseFile& f : out.files) {
    all += f.path;
    all.push_back('\0');
    all += f.is_dir ? "d" : f.content;
    all.push_back('\0');
  }
  out.hash = HashHex(all);
  return out;
}

std::vector<std::string> RendezvousOrder(std::vector<std::string> names, const std::string& node) {
  uint64_t seed = Fnv1a(node);
  std::vector<std::pair<uint64_t, std::string>> keyed;
  keyed.reserve(names.size());
  for (auto& n : names) keyed.emplace_back(Mix(Fnv1a(n, seed)), std::move(n));
  std::sort(keyed.begin(), keyed.end());
  std::vector<std::string> out;
  out.reserve(keyed.size());
  for (auto& [k, n] : keyed) out.push_back(std::move(n));
  return out;
}

}  // namespace lm::license
