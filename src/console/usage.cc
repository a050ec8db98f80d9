#include "console/usage.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/strings.h"

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

StatusOr<WallTime> ParseTimeArg(std::string_view text, WallTime now, std::string_view what) {
  auto bad = [&] {
    return InvalidArgument(std::string(what) + " must be now, Unix seconds, an RFC 3339 UTC time "
                           "(2026-12-01T00:00:00Z) or -N followed by s, m, h or d (got '" +
                           std::string(text.substr(0, 40)) + "')");
  };
  if (text == "now") return now;
  if (text.empty() || text.size() > 40) return bad();
  if (text[0] == '-') {
    auto n = ParseWholeNumber(text.substr(1, text.size() - 2), what, 100L * 365 * 86400);
    if (!n.ok() || text.size() < 3) return bad();
    int64_t unit = 0;
    switch (text.back()) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      default: return bad();
    }
    return now - std::chrono::seconds(*n * unit);
  }
  if (text.find_first_not_of("0123456789") == std::string_view::npos) {
    auto n = ParseWholeNumber(text, what, 32503680000);  // up to the year 3000
    if (!n.ok()) return bad();
    return WallTime(std::chrono::seconds(*n));
  }
  // YYYY-MM-DDTHH:MM:SS[.fraction]Z
  std::string t(text);
  int y, mo, d, h, mi, sec, used = 0;
  if (std::sscanf(t.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &used) != 6 ||
      used != 19 || t.back() != 'Z') {
    return bad();
  }
  std::string_view frac = std::string_view(t).substr(19, t.size() - 20);
  if (!frac.empty() && (frac[0] != '.' || frac.size() < 2 ||
                        frac.substr(1).find_first_not_of("0123456789") != std::string_view::npos)) {
    return bad();
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return bad();
  const auto ymd = std::chrono::year(y) / mo / d;
  if (!ymd.ok()) return bad();
  WallTime out = std::chrono::sys_days(ymd) + std::chrono::hours(h) + std::chrono::minutes(mi) +
                 std::chrono::seconds(sec);
  if (frac.size() > 1) {
    std::string ms(frac.substr(1, 3));
    ms.resize(3, '0');
    out += std::chrono::milliseconds(std::stoi(ms));
  }
  return out;
}

}  // namespace lm::console
