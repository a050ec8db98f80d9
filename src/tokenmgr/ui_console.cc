#include "tokenmgr/ui_console.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "tokenmgr/ui.h"

namespace lm::tokenmgr {

using console::Event;
using console::NodeRow;
using console::NodeState;

void SampleRing::Add(ChartSample s) {
  samples_.push_back(s);
  while (!samples_.empty() && samples_.front().at < s.at - window_) samples_.pop_front();
  while (samples_.size() > max_samples_) samples_.pop_front();
}

std::string SamplesJson(const SampleRing& ring, WallTime now) {
  nlohmann::json samples = nlohmann::json::array();
  for (const ChartSample& s : ring.samples()) {
    samples.push_back(
        {{"at_ms", UnixMillis(s.at)}, {"held", s.held}, {"free", s.free}, {"waiting", s.waiting}});
  }
  return nlohmann::json{{"now_ms", UnixMillis(now)},
                        {"window_s", ring.window().count()},
                        {"samples", std::move(samples)}}
      .dump();
}

namespace {

constexpr std::string_view kActionLabels[] = {"Cordon", "Uncordon", "Disable", "Enable"};

}  // namespace

std::string_view AdminActionLabel(AdminAction a) { return kActionLabels[static_cast<size_t>(a)]; }

std::string_view AdminConsequence(AdminAction a) {
  switch (a) {
    case AdminAction::kCordon:
      return "Its agent gives its license back within one heartbeat and claims none until the "
             "node is uncordoned.";
    case AdminAction::kUncordon:
      return "Its agent may claim a license again from its next heartbeat.";
    case AdminAction::kDisable:
      return "Its holder takes it off within one heartbeat and nobody claims it until it is "
             "enabled.";
    case AdminAction::kEnable:
      return "Nodes may claim it again from their next heartbeat.";
  }
  return "";
}

std::string ConfirmQuestion(AdminAction a, std::string_view name) {
  return std::string(AdminActionLabel(a)) + " " + std::string(name) + "? " +
         std::string(AdminConsequence(a));
}

std::string AdminDoneMessage(AdminAction a, std::string_view name) {
  static constexpr std::string_view kDone[] = {"cordoned", "uncordoned", "disabled", "enabled"};
  return std::string(name) + " is " + std::string(kDone[static_cast<size_t>(a)]) + ". " +
         std::string(AdminConsequence(a));
}

std::string AdminForm(AdminAction a, std::string_view name, std::string_view csrf) {
  const std::string action(AdminActionName(a));
  const std::string n = HtmlEscape(name);
  const bool danger = a == AdminAction::kCordon || a == AdminAction::kDisable;
  return "<form class=\"admin\" method=\"post\" action=\"/html/tmpl/" + action +
         "\" data-admin=\"" + action + "\" data-name=\"" + n +
         "\"><input type=\"hidden\" name=\"csrf\" value=\"" + HtmlEscape(csrf) +
         "\"><input type=\"hidden\" name=\"" + std::string(AdminTarget(a)) + "\" value=\"" + n +
         "\"><button type=\"submit\" class=\"small" + (danger ? " danger" : "") +
         "\" aria-label=\"" + std::string(AdminActionLabel(a)) + " " + n + "\">" +
         std::string(AdminActionLabel(a)) + "</button></form>";
}

// ---- chart -----------------------------------------------------------------------------------

namespace {

// The SVG's geometry (ui.js draws with the same numbers).
constexpr double kW = 480, kH = 170, kLeft = 34, kRight = 8, kTop = 10, kBottom = 22;

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// "12:05Z"
std::string ClockUtc(WallTime t) {
  std::string full = FormatUtc(UnixMillis(t));  // "2026-01-01 12:05:07Z"
  return full.size() >= 20 ? full.substr(11, 5) + "Z" : full;
}

// 1, 2, 5, 10, 20, 50, ... at least `v`.
size_t NiceCeil(size_t v) {
  size_t step = 1;
  while (true) {
    for (size_t m : {1, 2, 5}) {
      if (m * step >= v) return m * step;
    }
    step *= 10;
  }
}

}  // namespace

std::string RenderChart(const std::deque<ChartSample>& samples, WallTime now,
                        std::chrono::seconds window) {
  std::vector<const ChartSample*> in;
  for (const ChartSample& s : samples) {
    if (s.at >= now - window && s.at <= now) in.push_back(&s);
  }
  // The x axis spans the samples shown (at least 10 minutes), ending now.
  WallTime from = in.empty() ? now - std::chrono::minutes(10) : in.front()->at;
  from = std::min(from, now - std::chrono::minutes(10));
  const double span_ms = std::max<double>(1, UnixMillis(now) - UnixMillis(from));
  size_t top = 1;
  for (const ChartSample* s : in) top = std::max({top, s->held, s->free, s->waiting});
  top = NiceCeil(top);
  const double pw = kW - kLeft - kRight, ph = kH - kTop - kBottom;
  auto x = [&](WallTime t) { return kLeft + pw * (UnixMillis(t) - UnixMillis(from)) / span_ms; };
  auto y = [&](size_t v) { return kTop + ph * (1.0 - static_cast<double>(v) / top); };

  std::string title =
      "Licenses held, free and nodes waiting, last " +
      HumanDuration(std::chrono::duration_cast<std::chrono::milliseconds>(now - from));
  std::string desc;
  if (in.empty()) {
    desc = "No samples yet.";
  } else {
    const ChartSample& last = *in.back();
    size_t peak = 0;
    for (const ChartSample* s : in) peak = std::max(peak, s->waiting);
    desc = "Now " + std::to_string(last.held) + " held, " + std::to_string(last.free) + " free, " +
           std::to_string(last.waiting) + " nodes waiting; at most " + std::to_string(peak) +
           " waiting in this time.";
  }
  std::string h = "<svg id=\"chart\" class=\"chart\" viewBox=\"0 0 " + Num(kW) + " " + Num(kH) +
                  "\" role=\"img\" aria-labelledby=\"chart-title chart-desc\">";
  h += "<title id=\"chart-title\">" + HtmlEscape(title) + "</title><desc id=\"chart-desc\">" +
       HtmlEscape(desc) + "</desc>";
  // Axes: the bottom line, the top grid line, their values, the window's ends.
  h += "<line class=\"axis\" x1=\"" + Num(kLeft) + "\" y1=\"" + Num(y(0)) + "\" x2=\"" +
       Num(kW - kRight) + "\" y2=\"" + Num(y(0)) + "\"/>";
  h += "<line class=\"grid\" x1=\"" + Num(kLeft) + "\" y1=\"" + Num(y(top)) + "\" x2=\"" +
       Num(kW - kRight) + "\" y2=\"" + Num(y(top)) + "\"/>";
  auto text = [&](const char* cls, double tx, double ty, const std::string& s) {
    h += std::string("<text class=\"") + cls + "\" x=\"" + Num(tx) + "\" y=\"" + Num(ty) + "\">" +
         HtmlEscape(s) + "</text>";
  };
  text("ylabel", kLeft - 4, y(top) + 4, std::to_string(top));
  text("ylabel", kLeft - 4, y(0) + 4, "0");
  text("xlabel start", kLeft, kH - 6, ClockUtc(from));
  text("xlabel end", kW - kRight, kH - 6, ClockUtc(now));
  if (in.empty()) text("empty", kLeft + pw / 2, kTop + ph / 2, "No samples yet");
  for (auto [cls, field] :
       {std::pair{"held", &ChartSample::held}, std::pair{"free", &ChartSample::free},
        std::pair{"waiting", &ChartSample::waiting}}) {
    std::string points;
    for (const ChartSample* s : in) {
      if (!points.empty()) points += ' ';
      points += Num(x(s->at)) + "," + Num(y(s->*field));
    }
    if (in.size() == 1) {  // one point: a level line across the chart
      const std::string level = Num(y(in.front()->*field));
      points = Num(kLeft) + "," + level + " " + Num(kW - kRight) + "," + level;
    }
    h += std::string("<polyline class=\"line ") + cls + "\" points=\"" + points + "\"/>";
  }
  h += "</svg>";
  return h;
}

void RenderChartCard(const ConsoleModel& m, WallTime now, std::string& h) {
  static const std::deque<ChartSample> kNone;
  h += "<section class=\"card\" id=\"chart-card\" aria-labelledby=\"chart-h\">"
       "<div class=\"card-head\"><h2 id=\"chart-h\">Licenses and waiting nodes</h2>"
       "<ul class=\"legend\"><li class=\"held\">held</li><li class=\"free\">free</li>"
       "<li class=\"waiting\">nodes waiting</li></ul></div><figure id=\"chart-wrap\">";
  h += RenderChart(m.samples ? *m.samples : kNone, now, m.chart_window);
  h += "</figure></section>";
}

// ---- nodes -----------------------------------------------------------------------------------

namespace {

std::string Cell(const char* label, const std::string& html, const char* cls = nullptr) {
  return std::string("<td") + (cls ? std::string(" class=\"") + cls + "\"" : "") +
         " data-label=\"" + label + "\">" + html + "</td>";
}

std::string Ago(WallTime now, WallTime t) {
  if (t == WallTime{}) return "\u2014";
  return HumanDuration(std::chrono::duration_cast<std::chrono::milliseconds>(now - t)) + " ago";
}

}  // namespace

void RenderNodesCard(const ConsoleModel& m, std::string_view csrf, WallTime now, std::string& h) {
  h += "<section class=\"card\" id=\"nodes-card\" aria-labelledby=\"nodes-h\"";
  for (AdminAction a : {AdminAction::kCordon, AdminAction::kUncordon, AdminAction::kDisable,
                        AdminAction::kEnable}) {
    h += " data-confirm-" + std::string(AdminActionName(a)) + "=\"" +
         HtmlEscape(AdminConsequence(a)) + "\"";
  }
  h += "><div class=\"card-head\"><h2 id=\"nodes-h\">Nodes</h2><div class=\"totals\">";
  std::map<NodeState, size_t> totals;
  for (const NodeRow& r : m.nodes) ++totals[r.state];
  for (NodeState s : {NodeState::kWaiting, NodeState::kHeld, NodeState::kCordoned,
                      NodeState::kDegraded, NodeState::kReleased, NodeState::kGone}) {
    std::string name(console::NodeStateName(s));
    h += "<span class=\"chip " + name + "\"><b id=\"n-" + name + "\">" + std::to_string(totals[s]) +
         "</b> " + name + "</span>";
  }
  h += "</div></div><div class=\"table-wrap\"><table id=\"nodes-table\"><thead><tr>"
       "<th>Node</th><th>State</th><th class=\"num\">For</th><th>License</th><th>Pod</th>"
       "<th>Last seen</th><th>Version</th><th>Admin</th></tr></thead><tbody id=\"nodes-body\">";
  for (const NodeRow& r : m.nodes) {
    std::string state(console::NodeStateName(r.state));
    bool cordoned = r.state == NodeState::kCordoned || m.admin.cordoned.count(r.node);
    h += "<tr class=\"" + state + "\" data-node=\"" + HtmlEscape(r.node) + "\">";
    h += Cell("Node", HtmlEscape(r.node), "name");
    h += Cell("State", "<span class=\"badge " + state + "\">" + state + "</span>" +
                           (cordoned && r.state != NodeState::kCordoned
                                ? " <span class=\"badge cordoned\">cordoned</span>"
                                : ""));
    h += Cell(r.state == NodeState::kWaiting ? "Waiting for" : "In state for",
              HumanDuration(std::chrono::duration_cast<std::chrono::milliseconds>(now - r.since)),
              r.state == NodeState::kWaiting ? "num for wait" : "num for");
    h += Cell("License", HtmlOrDash(r.license));
    h += Cell("Pod", HtmlOrDash(r.pod));
    h += Cell("Last seen", Ago(now, r.last_seen));
    h += Cell("Version", HtmlOrDash(r.version));
    h += Cell("Admin",
              AdminForm(cordoned ? AdminAction::kUncordon : AdminAction::kCordon, r.node, csrf),
              "admin");
    h += "</tr>";
  }
  if (m.nodes.empty()) {
    h += "<tr><td colspan=\"8\" class=\"muted\">No agent has reported yet.</td></tr>";
  }
  h += "</tbody></table></div><p class=\"muted small\">Waiting nodes first, longest wait first. "
       "Cordon a node to move its license off it; uncordon it to let it claim again.</p>"
       "</section>";
}

// ---- events ----------------------------------------------------------------------------------

namespace {

void RenderEvent(const Event& e, std::string& h) {
  std::string kind(console::KindName(e.kind));
  h += "<li class=\"ev " + kind + "\" data-seq=\"" + std::to_string(e.seq) +
       "\"><span "
       "class=\"ev-time\">" +
       FormatUtc(UnixMillis(e.time)) + "</span> <span class=\"badge ev-kind " + kind + "\">" +
       kind + "</span>";
  auto part = [&](const char* cls, const char* label, const std::string& value) {
    if (value.empty()) return;
    h += std::string(" <span class=\"") + cls + "\"><span class=\"muted\">" + label + "</span> " +
         HtmlEscape(value) + "</span>";
  };
  part("ev-node", "node", e.node);
  part("ev-license", "license", e.license);
  part("ev-token", "token", e.token ? std::to_string(e.token) : "");
  part("ev-actor", "by", e.actor);
  if (!e.detail.empty()) h += " <q class=\"ev-detail\">" + HtmlEscape(e.detail) + "</q>";
  h += "</li>";
}

}  // namespace

void RenderEventsCard(const ConsoleModel& m, std::string& h) {
  uint64_t last = m.events.empty() ? 0 : m.events.front().seq;
  h += "<section class=\"card\" id=\"events-card\" aria-labelledby=\"events-h\">"
       "<div class=\"card-head\"><h2 id=\"events-h\">Recent events</h2><span class=\"muted "
       "small\">newest first</span></div><ol id=\"events-list\" class=\"timeline\" "
       "data-last-seq=\"" +
       std::to_string(last) + "\">";
  for (const Event& e : m.events) RenderEvent(e, h);
  h += "</ol>";
  h += std::string("<p id=\"events-empty\" class=\"muted\"") + (m.events.empty() ? "" : " hidden") +
       ">No events yet.</p></section>";
}

}  // namespace lm::tokenmgr
