// FeatureFile: the feature file through which license-holder has Node Feature Discovery label its
// node while the node holds a confirmed license. NFD's `local` source reads every file in
// /etc/kubernetes/node-feature-discovery/features.d/ (dot files ignored) and turns each line
// `<name>=<value>` into a node label; a `# +expiry-time=<RFC3339>` line makes the features after
// it expire at that time, which bounds the label of a holder killed without clean-up.
// Not thread-safe: the agent calls it under its fence guard's lock (its loop thread, and the
// guard's thread when it withdraws). All file access goes through Filesystem.
//
//   FeatureFile label(fs, "/etc/kubernetes/node-feature-discovery/features.d/bitfusion-license",
//                     std::chrono::seconds(10));
//   Status s = label.Label(clock.WallNow() + claim_ttl);  // labelled until then at the latest
//   s = label.Unlabel();                                 // in the step that withdraws
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "license/fs.h"

namespace lm::holder {

inline constexpr std::string_view kLicenseFeature = "feature.node.kubernetes.io/bitfusion-license";

// `t` as RFC 3339 in UTC with seconds, rounded down: "2026-01-01T00:00:00Z".
std::string FormatRfc3339(WallTime t);
// The file's content: the label, expiring at `expiry`.
std::string RenderFeatureFile(WallTime expiry);

class FeatureFile {
 public:
  // `path` empty: disabled, every call returns OK and touches nothing. `slack`: how far the
  // expiry may move before the file is rewritten (keeps writes to one per few renewals).
  FeatureFile(license::Filesystem& fs, std::string path, std::chrono::nanoseconds slack);

  bool enabled() const { return !path_.empty(); }
  const std::string& path() const { return path_; }

  // Makes the file say the label holds until `expiry`: written (as a dot file renamed into
  // place, so NFD never reads half a file) when missing, or when the expiry it carries is more
  // than `slack` away from `expiry`. An error leaves the file as it was.
  Status Label(WallTime expiry);
  // Removes the file (and a dot file left by an interrupted write). OK if absent. Refuses to
  // remove a directory or anything else that is not a file or symlink at `path`.
  Status Unlabel();

 private:
  license::Filesystem& fs_;
  std::string path_;
  std::string temp_;  // ".<name>" beside it: ignored by NFD
  std::chrono::nanoseconds slack_;
  std::optional<WallTime> written_;  // expiry of the file as last written by this object
};

}  // namespace lm::holder
