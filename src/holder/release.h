// ReleaseNode: the `license-holder release` subcommand. Gives this node's license back to the
// pool and removes everything the agent installed from the host directory (license files,
// manifest, servers.conf), whether or not the agent runs on the node. A running agent sees the
// release marker it leaves in the host directory and claims nothing until it restarts.
//
//   StatusOr<ReleaseReport> r = ReleaseNode(config, fs, client, RealTimeSystem::Get());
//   return ReleaseExitCode(r);  // 0 released, 3 nothing to release, 1 error
#pragma once

#include <string>
#include <vector>

#include "client/tokenmgr_client.h"
#include "common/clock.h"
#include "holder/agent.h"
#include "license/fs.h"

namespace lm::holder {

struct ReleaseReport {
  std::vector<std::string> released;  // licenses whose claim named this node, now free
};

// Exit codes of `license-holder release` (documented in docs/operations.md).
inline constexpr int kReleaseOk = 0;       // at least one claim released, host dir cleaned
inline constexpr int kReleaseFailed = 1;   // an error (pool, host dir, tokenmgr): see message
inline constexpr int kReleaseNothing = 3;  // no claim in the pool names NODE_NAME

// The claims released, or an error naming the variable and path (HOST_DIR missing, pool
// unreadable, files that could not be removed). The host files are withdrawn regardless.
StatusOr<ReleaseReport> ReleaseNode(const AgentConfig& config, license::Filesystem& fs,
                                    client::TokenmgrClient& client, const Clock& clock);

// The one line `release` prints, and its exit code.
struct ReleaseOutcome {
  int exit_code = kReleaseOk;
  std::string message;
};
ReleaseOutcome DescribeRelease(const StatusOr<ReleaseReport>& result, const AgentConfig& config);

}  // namespace lm::holder
