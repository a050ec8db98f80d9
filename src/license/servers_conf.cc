#include "license/servers_conf.h"

#include "common/strings.h"

namespace lm::license {

namespace {

bool ValidGroupName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-')) {
      return false;
    }
  }
  return true;
}

// host:port where host is an IPv4 address or DNS name, port 1..65535.
bool ValidServer(std::string_view s) {
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || s.size() > 260) return false;
  std::string_view host = s.substr(0, colon), port = s.substr(colon + 1);
  auto p = ParseWholeNumber(port, "port", 65535);
  if (!p.ok() || *p == 0) return false;
  for (char c : host) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '-')) {
      return false;
    }
  }
  return true;
}

}  // namespace

StatusOr<std::vector<ServerGroup>> ParseServerGroups(
    const std::map<std::string, std::string>& env) {
  std::vector<ServerGroup> groups;
  auto it = env.find("GPUTYPES");
  if (it == env.end()) return groups;
  std::string_view rest = it->second;
  while (!rest.empty()) {
    rest = Trim(rest);
    if (rest.empty()) break;
    auto space = rest.find_first_of(" \t\n");
    std::string_view name = rest.substr(0, space);
    rest = space == std::string_view::npos ? "" : rest.substr(space);
    if (!ValidGroupName(name)) {
      return InvalidArgument("GPUTYPES: group name '" + std::string(name.substr(0, 64)) +
                             "' may contain only letters, digits, _ and -");
    }
    if (groups.size() >= 64) return InvalidArgument("GPUTYPES: more than 64 groups");
    ServerGroup g{std::string(name), {}};
    for (int n = 1; n <= 999; ++n) {
      std::string var = g.name + "_" + std::to_string(n);
      auto e = env.find(var);
      if (e == env.end()) break;
      std::string server(Trim(e->second));
      if (!ValidServer(server)) {
        return InvalidArgument(var + ": expected host:port, got '" + server.substr(0, 64) + "'");
      }
      g.servers.push_back(std::move(server));
    }
    groups.push_back(std::move(g));
  }
  return groups;
}

std::string RenderServersConf(const std::vector<ServerGroup>& groups) {
  std::string out;
  for (const ServerGroup& g : groups) {
    out += "### " + g.name + ".conf\n";
    for (const std::string& s : g.servers) out += s + "\n";
    out += "\n";
  }
  return out;
}

}  // namespace lm::license
