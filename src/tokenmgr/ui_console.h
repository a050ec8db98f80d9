// The console parts of the web page (issue 17): the nodes table, the events timeline, the admin
// buttons (cordon/uncordon a node, disable/enable a license) with their confirmation, and the
// chart of licenses held, free and nodes waiting. Pure rendering to HTML/SVG text plus a bounded
// ring of chart samples; no I/O. Every outside value (node, pod, license, actor, detail) is
// escaped here. Thread-compatible.
//
//   SampleRing ring(720, std::chrono::hours(6));
//   ring.Add({.at = time.WallNow(), .held = 3, .free = 1, .waiting = 2});
//   std::string svg = RenderChart(ring.samples(), time.WallNow(), ring.window());
#pragma once

#include <chrono>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "console/console.h"

namespace lm::tokenmgr {

// One point of the chart.
struct ChartSample {
  WallTime at{};
  size_t held = 0;
  size_t free = 0;
  size_t waiting = 0;
};

// The last `window` of samples, at most `max_samples` of them (the oldest go first).
class SampleRing {
 public:
  SampleRing(size_t max_samples, std::chrono::seconds window)
      : max_samples_(max_samples < 1 ? 1 : max_samples), window_(window) {}
  // Appends `s` and drops samples older than s.at - window and beyond max_samples.
  void Add(ChartSample s);
  const std::deque<ChartSample>& samples() const { return samples_; }
  std::chrono::seconds window() const { return window_; }

 private:
  size_t max_samples_;
  std::chrono::seconds window_;
  std::deque<ChartSample> samples_;  // by time, ascending
};

// GET /api/console/samples:
// {"now_ms": t, "window_s": n, "samples": [{"at_ms": t, "held": n, "free": n, "waiting": n}]}
std::string SamplesJson(const SampleRing& ring, WallTime now);

using console::AdminAction;  // and AdminActionName, ParseAdminAction, AdminTarget (console.h)
using console::AdminActionName;
using console::AdminTarget;
using console::ParseAdminAction;
std::string_view AdminActionLabel(AdminAction a);  // "Cordon", ... (a button's text)
// What happens, after the verb and the name: "Its agent gives ..." (one place for the page,
// the confirmation page and the script's confirm() dialog).
std::string_view AdminConsequence(AdminAction a);
// "Cordon node-7? " + consequence. Plain text (escape it for HTML).
std::string ConfirmQuestion(AdminAction a, std::string_view name);
// The flash after success: "node-7 is cordoned: ...". Plain text.
std::string AdminDoneMessage(AdminAction a, std::string_view name);

// A small POST form with one button; the script asks for confirmation, without it the server
// does. `name` is escaped here.
std::string AdminForm(AdminAction a, std::string_view name, std::string_view csrf);

// What the console parts of the page show.
struct ConsoleModel {
  std::vector<console::NodeRow> nodes;  // waiting first (NodeTable's order)
  std::vector<console::Event> events;   // newest first
  console::AdminState admin;
  const std::deque<ChartSample>* samples = nullptr;
  std::chrono::seconds chart_window{std::chrono::hours(6)};
};
inline constexpr size_t kTimelineEvents = 50;

void RenderChartCard(const ConsoleModel& m, WallTime now, std::string& h);
void RenderNodesCard(const ConsoleModel& m, std::string_view csrf, WallTime now, std::string& h);
void RenderEventsCard(const ConsoleModel& m, std::string& h);
// The inline SVG: three lines over the window ending at `now`, axis labels, <title> and <desc>.
std::string RenderChart(const std::deque<ChartSample>& samples, WallTime now,
                        std::chrono::seconds window);

}  // namespace lm::tokenmgr
