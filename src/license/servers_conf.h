// servers.conf from the seed's ConfigMap: GPUTYPES lists groups, `<group>_<n>` (n = 1, 2, ...)
// are host:port entries numbered without gaps. Thread-safe functions.
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
  std::vector<std::string> servers;  // "host:port"; an IPv6 host in brackets: "[fd00::1]:56001"
};

// Every mistake is INVALID_ARGUMENT naming the variable: a group listed twice, a group with no
// `<group>_1` (with a hint when only another spelling of it is set: names are case-sensitive),
// an entry numbered past a gap or with a leading zero (`K80_3` without `K80_2`), and a server
// that is not host:port (host: IPv4, DNS name or a bracketed IPv6 literal; port 1..65535).
// No GPUTYPES means no groups. Bounds: 64 groups, 999 servers each.
StatusOr<std::vector<ServerGroup>> ParseServerGroups(const std::map<std::string, std::string>& env);
std::string RenderServersConf(const std::vector<ServerGroup>& groups);

}  // namespace lm::license
