#include "console/usage.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

namespace lm::console {
namespace {

struct Open {
  std::string node;
  WallTime since;
};

void Add(std::map<std::string, UsageRow>& rows, const std::string& name, WallTime a, WallTime b,
         WallTime from, WallTime to) {
  const bool overlaps = a < to && (b > from || (a == b && a >= from));
  if (!overlaps) return;
  const WallTime s = std::max(a, from), e = std::min(b, to);
  UsageRow& r = rows[name];
  r.name = name;
  if (e > s) r.held += std::chrono::duration_cast<std::chrono::milliseconds>(e - s);
  ++r.holds;
}

std::vector<UsageRow> Rows(std::map<std::string, UsageRow> m) {
  std::vector<UsageRow> out;
  for (auto& [_, r] : m) out.push_back(std::move(r));
  return out;
}

std::string CsvField(const std::string& s) {
  std::string v = s;
  if (!v.empty() && (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@')) v = "'" + v;
  if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
  std::string q = "\"";
  for (char c : v) {
    if (c == '"') q += '"';
    q += c;
  }
  return q + "\"";
}

std::string Seconds(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

}  // namespace

Usage ComputeUsage(const std::deque<Event>& events, WallTime from, WallTime to, WallTime now,
                   bool history_trimmed) {
  Usage u;
  u.from = from;
  u.to = to;
  u.known_from = history_trimmed && !events.empty() ? std::max(from, events.front().time) : from;
  std::map<std::string, Open> open;  // by license
  std::map<std::string, UsageRow> nodes, licenses;
  auto close = [&](const std::string& license, WallTime at) {
    auto it = open.find(license);
    if (it == open.end()) return;
    Add(nodes, it->second.node, it->second.since, at, from, to);
    Add(licenses, license, it->second.since, at, from, to);
    open.erase(it);
  };
  for (const Event& e : events) {
    if (e.license.empty()) continue;
    switch (e.kind) {
      case EventKind::kClaim:
      case EventKind::kTakeover:
        close(e.license, e.time);
        open[e.license] = {e.node, e.time};
        break;
      case EventKind::kWithdraw:
      case EventKind::kRelease: {
        auto it = open.find(e.license);
        if (it != open.end() && it->second.node == e.node) close(e.license, e.time);
        break;
      }
      default:
        break;
    }
  }
  const WallTime end = std::min(now, to);
  for (auto& [license, o] : std::map<std::string, Open>(open)) close(license, std::max(end, o.since));
  u.by_node = Rows(std::move(nodes));
  u.by_license = Rows(std::move(licenses));
  return u;
}

std::string UsageCsv(const Usage& u) {
  std::string out = "kind,name,held_seconds,holds\n";
  for (const auto& [kind, rows] : {std::pair{"node", &u.by_node}, {"license", &u.by_license}}) {
    for (const UsageRow& r : *rows) {
      out += std::string(kind) + "," + CsvField(r.name) + "," + Seconds(r.held) + "," +
             std::to_string(r.holds) + "\n";
    }
  }
  return out;
}

std::string UsageJson(const Usage& u) {
  auto rows = [](const std::vector<UsageRow>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (const UsageRow& r : v) {
      a.push_back({{"name", r.name},
                   {"held_seconds", static_cast<double>(r.held.count()) / 1000.0},
                   {"holds", r.holds}});
    }
    return a;
  };
  nlohmann::json j = {{"from_ms", UnixMillis(u.from)},
                      {"to_ms", UnixMillis(u.to)},
                      {"known_from_ms", UnixMillis(u.known_from)},
                      {"nodes", rows(u.by_node)},
                      {"licenses", rows(u.by_license)}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace lm::console
