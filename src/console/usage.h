// Usage report (issue 17): how long each node and each license held a license in a window,
// computed from the event history. Pure function of the events; no I/O.
//
//   Usage u = ComputeUsage(log.Retained(), from, to, clock.WallNow(), trimmed);
//   std::string csv = UsageCsv(u);
//
// A hold starts at a claim or takeover of license L by node N and ends at N's next withdrawal or
// release of L, at a claim or takeover of L by another node, or at `now` while it lasts. Each
// hold is clipped to [from, to). Holds that began before the oldest retained event are not
// known: `known_from` says from when the report is complete.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "console/event_log.h"

namespace lm::console {

struct UsageRow {
  std::string name;            // node or license
  std::chrono::milliseconds held{0};
  uint64_t holds = 0;          // holds overlapping the window
};

struct Usage {
  WallTime from{}, to{};
  WallTime known_from{};  // the oldest retained event's time (or `from` when nothing was dropped)
  std::vector<UsageRow> by_node;     // by name
  std::vector<UsageRow> by_license;  // by name
};

Usage ComputeUsage(const std::deque<Event>& events, WallTime from, WallTime to, WallTime now,
                   bool history_trimmed);
// "kind,name,held_seconds,holds\n" then one line per node, then per license. Names are quoted
// as RFC 4180 says when they hold a comma, quote or line break, and a leading =, +, - or @ is
// prefixed with ' (spreadsheets run those as formulas).
std::string UsageCsv(const Usage& u);
std::string UsageJson(const Usage& u);

// A time as `from`/`to` take it: "now"; Unix seconds ("1796000000"); an RFC 3339 UTC time
// ("2026-12-01T00:00:00Z", fractions allowed); or a time before now ("-90m", "-24h", "-7d";
// units s, m, h, d). INVALID_ARGUMENT naming `what` otherwise.
StatusOr<WallTime> ParseTimeArg(std::string_view text, WallTime now, std::string_view what);

}  // namespace lm::console
