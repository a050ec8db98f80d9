// ReleaseNode: the `license-holder release` subcommand. Gives this node's license back to the
// pool and removes it from the host directory, whether or not the agent runs on the node.
// A running agent sees the release marker and does not claim again until it restarts.
//
//   Status s = ReleaseNode(config, fs, client, RealClock::Get());
#pragma once

#include "client/tokenmgr_client.h"
#include "common/clock.h"
#include "holder/agent.h"
#include "license/fs.h"

namespace lm::holder {

// Returns the number of claims removed, or an error (the host files are withdrawn regardless).
StatusOr<int> ReleaseNode(const AgentConfig& config, license::Filesystem& fs,
                          client::TokenmgrClient& client, const Clock& clock);

}  // namespace lm::holder
