#include "holder/release.h"

#include <spdlog/spdlog.h>

#include "common/strings.h"
#include "holder/feature_file.h"
#include "license/installer.h"
#include "license/pool.h"
#include "license/rules.h"

namespace lm::holder {

StatusOr<ReleaseReport> ReleaseNode(const AgentConfig& config, license::Filesystem& fs,
                                    client::TokenmgrClient& client, const Clock& clock) {
  license::Installer installer(fs, config.host_dir);
  auto host = fs.Stat(config.host_dir);
  bool host_ok = host.ok() && host->type == license::FileType::kDir;
  // 1. Tell a running agent to stop claiming (it checks before every claim, under the mutex).
  if (host_ok) {
    Status marker = fs.WriteAtomic(license::ReleaseMarkerPath(config.host_dir),
                                   std::to_string(UnixMillis(clock.WallNow())) + "\n", 0600);
    if (!marker.ok()) spdlog::warn("cannot write release marker: {}", marker.message());
  }
  // The node label (NFD feature file) goes before the claims do, as when the agent withdraws.
  Status unlabel = FeatureFile(fs, config.nfd_feature_file, {}).Unlabel();
  if (!unlabel.ok()) {
    unlabel = Status(unlabel.code(), "NFD_FEATURE_FILE " + config.nfd_feature_file + ": " +
                                         unlabel.message());
    spdlog::error("{}", unlabel.message());
  }

  // 2. Under the mutex (if tokenmgr answers), remove every claim that names this node.
  auto grant = client.Lock(std::chrono::seconds(10), std::chrono::seconds(30), config.node);
  if (!grant.ok()) {
    spdlog::warn("releasing without the mutex ({}); a concurrent claim by this node's agent is "
                 "still prevented by the release marker", grant.status().message());
  }
  license::Pool pool(fs, config.pool_dir);
  ReleaseReport report;
  Status result = unlabel;
  auto names = pool.Entries();
  if (!names.ok()) {
    result = Status(names.status().code(),
                    "POOL_DIR " + config.pool_dir + ": " + names.status().message());
  } else {
    for (const std::string& name : *names) {
      license::ClaimView v = pool.ReadClaim(name);
      if (!license::ClaimsNode(v, config.node)) continue;
      if (Status s = fs.RemoveAll(pool.ClaimPath(name)); !s.ok()) {
        result = s;
        continue;
      }
      report.released.push_back(name);
      spdlog::info("released license '{}' (claim token {}) back to the pool", name, v.record->token);
    }
  }
  (void)fs.RemoveAll(license::HintPath(config.pool_dir, config.node));
  if (grant.ok()) (void)client.Release(grant->id);

  // 3. Take everything the agent installed off the node.
  if (!host_ok) {
    std::string why = !host.ok()                                  ? host.status().message()
                      : host->type == license::FileType::kMissing ? "does not exist"
                                                                  : "is not a directory";
    return FailedPrecondition("HOST_DIR " + config.host_dir + " " + why +
                              ": nothing removed "
                              "there (" +
                              std::to_string(report.released.size()) +
                              " claim(s) released in the pool)");
  }
  if (Status s = installer.WithdrawAll(); !s.ok()) {
    spdlog::error("cannot remove license files from {}: {}", config.host_dir, s.message());
    if (result.ok()) result = s;
  }
  if (!result.ok()) return result;
  return report;
}

ReleaseOutcome DescribeRelease(const StatusOr<ReleaseReport>& result, const AgentConfig& config) {
  if (!result.ok()) return {kReleaseFailed, "license-holder release: " + result.status().message()};
  if (result->released.empty()) {
    return {kReleaseNothing, "license-holder release: no claim in POOL_DIR " + config.pool_dir +
                                 " names node '" + config.node +
                                 "': nothing released (check NODE_NAME); files the agent "
                                 "installed in HOST_DIR " +
                                 config.host_dir + " were removed"};
  }
  std::string names;
  for (const std::string& n : result->released) names += (names.empty() ? "'" : ", '") + n + "'";
  return {kReleaseOk, "released " + std::to_string(result->released.size()) +
                          " license claim(s) of node '" + config.node + "' (" + names +
                          "); license files and servers.conf removed from " + config.host_dir};
}

}  // namespace lm::holder
