// GPUTYPES and `<group>_<n>` entries (the seed's ConfigMap, via env) -> servers.conf.
// Input: lines "NAME=VALUE" (the env as the container sees it).
//   - ParseServerGroups never crashes; bounds hold (64 groups, 999 servers each);
//   - RenderServersConf of what it accepts is exactly "### <group>.conf", one line per
//     server, and a blank line per group: no value can inject extra lines into servers.conf.
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>

#include "license/servers_conf.h"

#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lm::license;
  std::string in(reinterpret_cast<const char*>(data), size);
  std::map<std::string, std::string> env;
  size_t at = 0;
  while (at <= in.size()) {
    size_t nl = in.find('\n', at);
    std::string line = in.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
    auto eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
    if (nl == std::string::npos) break;
    at = nl + 1;
  }
  auto g = ParseServerGroups(env);
  if (!g.ok()) return 0;
  Check(g->size() <= 64, "more than 64 groups");
  size_t lines = 0;
  for (const auto& grp : *g) {
    Check(grp.servers.size() <= 999, "more than 999 servers");
    lines += grp.servers.size() + 2;
  }
  std::string text = RenderServersConf(*g);
  size_t newlines = 0;
  for (char c : text) newlines += c == '\n';
  Check(newlines == lines, "servers.conf has more lines than groups and servers");
  Check(text.find('\r') == std::string::npos && text.find('\0') == std::string::npos,
        "servers.conf contains CR or NUL");
  return 0;
}
