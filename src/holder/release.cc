#include "holder/release.h"

#include <spdlog/spdlog.h>

#include "common/strings.h"
#include "license/installer.h"
#include "license/pool.h"

namespace lm::holder {

StatusOr<int> ReleaseNode(const AgentConfig& config, license::Filesystem& fs,
                          client::TokenmgrClient& client, const Clock& clock) {
  // 1. Tell a running agent to stop claiming (it checks before every claim, under the mutex).
  Status marker = fs.WriteAtomic(license::JoinPath(config.host_dir, ".release-requested"),
                                 std::to_string(UnixMillis(clock.WallNow())) + "\n", 0600);
  if (!marker.ok()) spdlog::warn("cannot write release marker: {}", marker.message());

  // 2. Under the mutex (if tokenmgr answers), remove every claim that names this node.
  auto grant = client.Lock(std::chrono::seconds(10), std::chrono::seconds(30), config.node);
  if (!grant.ok()) {
    spdlog::warn("releasing without the mutex ({}); a concurrent claim by this node's agent is "
                 "still prevented by the release marker", grant.status().message());
  }
  license::Pool pool(fs, config.pool_dir);
  int removed = 0;
  Status result = Status::Ok();
  auto names = pool.Names();
  if (!names.ok()) {
    result = names.status();
  } else {
    for (const std::string& name : *names) {
      license::ClaimView v = pool.ReadClaim(name);
      if (v.state != license::ClaimState::kClaimed || v.record->seed_format ||
          v.record->node != config.node) {
        continue;
      }
      if (Status s = fs.RemoveAll(pool.ClaimPath(name)); !s.ok()) {
        result = s;
        continue;
      }
      ++removed;
      spdlog::info("released license '{}' (claim token {}) back to the pool", name, v.record->token);
    }
  }
  (void)fs.RemoveAll(license::JoinPath(license::JoinPath(config.pool_dir, ".holders"), config.node));
  if (grant.ok()) (void)client.Release(grant->id);

  // 3. Take the license off the node.
  license::Installer installer(fs, config.host_dir);
  if (Status s = installer.Withdraw(); !s.ok()) {
    spdlog::error("cannot remove license files from {}: {}", config.host_dir, s.message());
    if (result.ok()) result = s;
  }
  if (!result.ok()) return result;
  return removed;
}

}  // namespace lm::holder
