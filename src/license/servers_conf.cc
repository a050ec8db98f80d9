#include "license/servers_conf.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <set>

#include "common/strings.h"

namespace lm::license {

namespace {

constexpr int kMaxServers = 999;

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

bool IsDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

// OK, or what is wrong with `s` as host:port (host: IPv4 address, DNS name, or [IPv6 literal]).
std::string ServerProblem(std::string_view s) {
  constexpr std::string_view kExpected = "expected host:port";
  if (s.size() > 260) return std::string(kExpected) + " of at most 260 characters";
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::string(kExpected);
  std::string_view host = s.substr(0, colon), port = s.substr(colon + 1);
  auto p = ParseWholeNumber(port, "port", 65535);
  if (!p.ok() || *p == 0) return std::string(kExpected) + " with a port from 1 to 65535";
  if (host.front() == '[') {
    in6_addr addr;
    bool bracketed = host.size() > 2 && host.back() == ']';
    std::string literal(bracketed ? host.substr(1, host.size() - 2) : "");
    if (!bracketed || inet_pton(AF_INET6, literal.c_str(), &addr) != 1) {
      return std::string(kExpected) + " with an IPv6 address in brackets, e.g. [fd00::1]:56001";
    }
    return "";
  }
  if (host.find(':') != std::string_view::npos) {
    return "an IPv6 address needs brackets, e.g. [fd00::1]:56001";
  }
  for (char c : host) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '-')) {
      return std::string(kExpected) + " (host: an IPv4 address, DNS name or [IPv6 address])";
    }
  }
  return "";
}

// The variables that look like entries of `group` under another spelling (case differs).
std::string OtherSpellings(const std::map<std::string, std::string>& env,
                           const std::string& group) {
  std::string found;
  std::string want = Lower(group) + "_1";
  for (const auto& [var, value] : env) {
    if (Lower(var) == want && var != group + "_1") found += (found.empty() ? "" : ", ") + var;
  }
  return found;
}

// An entry variable of `group` that the numbering 1..count did not reach, if any.
std::string StrayEntry(const std::map<std::string, std::string>& env, const std::string& group,
                       size_t count) {
  std::string prefix = group + "_";
  for (auto it = env.lower_bound(prefix); it != env.end() && it->first.starts_with(prefix); ++it) {
    std::string_view suffix = std::string_view(it->first).substr(prefix.size());
    if (!IsDigits(suffix)) continue;
    bool canonical = suffix[0] != '0' && suffix.size() <= 3;
    if (!canonical || std::stoul(std::string(suffix)) > count) return it->first;
  }
  return "";
}

}  // namespace

StatusOr<std::vector<ServerGroup>> ParseServerGroups(
    const std::map<std::string, std::string>& env) {
  std::vector<ServerGroup> groups;
  auto it = env.find("GPUTYPES");
  if (it == env.end()) return groups;
  std::set<std::string> seen;
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
    if (!seen.insert(std::string(name)).second) {
      return InvalidArgument("GPUTYPES lists '" + std::string(name) + "' twice");
    }
    if (groups.size() >= 64) return InvalidArgument("GPUTYPES: more than 64 groups");
    ServerGroup g{std::string(name), {}};
    for (int n = 1; n <= kMaxServers; ++n) {
      std::string var = g.name + "_" + std::to_string(n);
      auto e = env.find(var);
      if (e == env.end()) break;
      std::string server(Trim(e->second));
      if (std::string problem = ServerProblem(server); !problem.empty()) {
        return InvalidArgument(var + ": " + problem + ", got '" + server.substr(0, 64) + "'");
      }
      g.servers.push_back(std::move(server));
    }
    if (g.servers.empty()) {
      std::string others = OtherSpellings(env, g.name);
      return InvalidArgument(
          "GPUTYPES lists '" + g.name + "' but " + g.name + "_1 is not set" +
          (others.empty() ? "" : " (" + others + " is: names are case-sensitive)"));
    }
    if (std::string stray = StrayEntry(env, g.name, g.servers.size()); !stray.empty()) {
      return InvalidArgument(stray + " is set but " + g.name + "_" +
                             std::to_string(g.servers.size() + 1) +
                             " is not: number the entries 1, 2, 3, ... without gaps or leading "
                             "zeros (at most " +
                             std::to_string(kMaxServers) + ")");
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
