// servers.conf from the seed's ConfigMap: GPUTYPES lists groups, `<group>_<n>` (n = 1, 2, ...)
// are ip:port entries, read until the first missing n. Thread-safe functions.
//
//   StatusOr<std::vector<ServerGroup>> g = ParseServerGroups(env);
//   std::string text = RenderServersConf(*g);
//   // "### K80_servers.conf\n10.0.0.1:56001\n\n"
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace lm::license {

struct ServerGroup {
  std::string name;
  std::vector<std::string> servers;  // "ip:port"
};

// Errors name the offending variable. Bounds: 64 groups, 999 servers each.
StatusOr<std::vector<ServerGroup>> ParseServerGroups(const std::map<std::string, std::string>& env);
std::string RenderServersConf(const std::vector<ServerGroup>& groups);

}  // namespace lm::license
