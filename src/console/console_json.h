// The JSON forms of the console's API (issue 17), in one place for the routes that answer them,
// the agents that send reports and the CLI that reads them. Parsers are strict and bounded: a
// malformed, oversized or hostile value is INVALID_ARGUMENT naming the field.
//
//   std::string body = NodesJson(console.Nodes());
//   StatusOr<AgentReport> r = ParseAgentReport("node-7", request_body);
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "console/console.h"

namespace lm::console {

// PUT /api/nodes/:node, sent by an agent each heartbeat.
// "origin" (optional): the agent's event stream, 16 hex digits; each event's "n" is its number in
// that stream (Event::origin, origin_seq), by which tokenmgr stores a resent event once.
struct AgentReport {
  NodeReport report;
  std::vector<Event> events;  // kind, license, token, detail, time (agent's clock), origin
};
inline constexpr size_t kMaxReportBytes = 64 * 1024;
StatusOr<AgentReport> ParseAgentReport(const std::string& node, std::string_view body);
std::string AgentReportJson(const AgentReport& r);

std::string DirectivesJson(const Directives& d);
StatusOr<Directives> ParseDirectives(std::string_view body);

// GET /api/nodes: {"nodes": [...], "totals": {"held": n, "waiting": n, ...}}
std::string NodesJson(const std::vector<NodeRow>& rows);
// GET /api/events: {"events": [...], "next": s, "more": b, "first_retained": s, "last_seq": s}
std::string EventsJson(const Page& page, uint64_t last_seq);

}  // namespace lm::console
