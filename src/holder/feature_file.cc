#include "holder/feature_file.h"

#include <ctime>

namespace lm::holder {

std::string FormatRfc3339(WallTime t) {
  std::time_t secs =
      std::chrono::system_clock::to_time_t(std::chrono::floor<std::chrono::seconds>(t));
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string RenderFeatureFile(WallTime expiry) {
  return "# Written by license-holder while this node holds a confirmed Bitfusion license;\n"
         "# removed when the license is withdrawn, and expires unless renewed.\n"
         "# +expiry-time=" +
         FormatRfc3339(expiry) + "\n" + std::string(kLicenseFeature) + "=true\n";
}

FeatureFile::FeatureFile(license::Filesystem& fs, std::string path, std::chrono::nanoseconds slack)
    : fs_(fs), path_(std::move(path)), slack_(slack) {
  size_t slash = path_.rfind('/');
  if (enabled()) temp_ = path_.substr(0, slash + 1) + "." + path_.substr(slash + 1);
}

Status FeatureFile::Label(WallTime expiry) {
  if (!enabled()) return Status::Ok();
  auto info = fs_.Stat(path_);
  if (!info.ok()) return info.status();
  if (info->type == license::FileType::kFile && written_) {
    auto moved = expiry > *written_ ? expiry - *written_ : *written_ - expiry;
    if (moved <= slack_) return Status::Ok();
  }
  written_.reset();
  LM_RETURN_IF_ERROR(fs_.WriteAtomicNoSync(temp_, RenderFeatureFile(expiry), 0644));
  LM_RETURN_IF_ERROR(fs_.Rename(temp_, path_));
  written_ = expiry;
  return Status::Ok();
}

Status FeatureFile::Unlabel() {
  if (!enabled()) return Status::Ok();
  written_.reset();
  auto info = fs_.Stat(path_);
  if (!info.ok()) return info.status();
  if (info->type == license::FileType::kDir || info->type == license::FileType::kOther) {
    return FailedPrecondition(path_ + " is not a file; not removing it");
  }
  if (info->type != license::FileType::kMissing) LM_RETURN_IF_ERROR(fs_.RemoveAll(path_));
  auto temp = fs_.Stat(temp_);
  if (temp.ok() && temp->type == license::FileType::kFile) (void)fs_.RemoveAll(temp_);
  return Status::Ok();
}

}  // namespace lm::holder
