#include "console/console_json.h"

#include <map>
#include <nlohmann/json.hpp>

#include "common/strings.h"

namespace lm::console {
namespace {

using nlohmann::json;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

Status Field(const json& j, const char* name, std::string& out, size_t max, bool required) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) {
    if (required) return InvalidArgument(std::string("report: '") + name + "' is missing");
    return Status::Ok();
  }
  if (!it->is_string()) return InvalidArgument(std::string("report: '") + name + "' must be a string");
  const auto& s = it->get_ref<const std::string&>();
  if (s.size() > max) {
    return InvalidArgument(std::string("report: '") + name + "' is longer than " +
                           std::to_string(max) + " bytes");
  }
  out = s;
  return Status::Ok();
}

}  // namespace

StatusOr<AgentReport> ParseAgentReport(const std::string& node, std::string_view body) {
  if (body.size() > kMaxReportBytes) {
    return InvalidArgument("report: body is larger than " + std::to_string(kMaxReportBytes) +
                           " bytes");
  }
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return InvalidArgument("report: body must be a JSON object");
  AgentReport r;
  r.report.node = node;
  std::string state;
  for (Status s : {Field(j, "pod", r.report.pod, kMaxLabelLength, true),
                   Field(j, "state", state, 32, true),
                   Field(j, "license", r.report.license, kMaxLabelLength, false),
                   Field(j, "version", r.report.version, 64, false)}) {
    if (!s.ok()) return s;
  }
  auto st = ParseNodeState(state);
  if (!st || *st == NodeState::kGone) {
    return InvalidArgument("report: 'state' must be held, waiting, cordoned, released or "
                           "degraded");
  }
  r.report.state = *st;
  uint64_t origin = 0;
  if (auto o = j.find("origin"); o != j.end() && !o->is_null()) {
    if (!o->is_string()) return InvalidArgument("report: 'origin' must be a string");
    StatusOr<uint64_t> parsed = ParseOrigin(o->get_ref<const std::string&>(), "report: 'origin'");
    if (!parsed.ok()) return parsed.status();
    origin = *parsed;
  }
  auto events = j.find("events");
  if (events != j.end() && !events->is_null()) {
    if (!events->is_array()) return InvalidArgument("report: 'events' must be an array");
    for (const json& e : *events) {
      if (!e.is_object()) return InvalidArgument("report: each event must be an object");
      Event ev;
      std::string kind;
      for (Status s : {Field(e, "kind", kind, 32, true),
                       Field(e, "license", ev.license, kMaxLabelLength, false),
                       Field(e, "detail", ev.detail, 256, false)}) {
        if (!s.ok()) return s;
      }
      auto k = ParseKind(kind);
      if (!k) return InvalidArgument("report: unknown event kind '" + kind + "'");
      ev.kind = *k;
      if (auto t = e.find("token"); t != e.end() && !t->is_null()) {
        if (!t->is_number_unsigned()) return InvalidArgument("report: 'token' must be a number");
        ev.token = t->get<uint64_t>();
      }
      if (auto t = e.find("time_ms"); t != e.end() && !t->is_null()) {
        if (!t->is_number_unsigned() || t->get<uint64_t>() > kMaxEventTimeMs) {
          return InvalidArgument("report: 'time_ms' must be a number of ms up to the year 2100");
        }
        ev.time = WallTime(std::chrono::milliseconds(t->get<uint64_t>()));
      }
      if (auto n = e.find("n"); n != e.end() && !n->is_null()) {
        if (!n->is_number_unsigned()) return InvalidArgument("report: 'n' must be a number");
        // A number counts only in a stream (and from 1).
        if (origin != 0 && n->get<uint64_t>() != 0) {
          ev.origin = origin;
          ev.origin_seq = n->get<uint64_t>();
        }
      }
      ev.node = node;
      r.events.push_back(std::move(ev));
    }
  }
  return r;
}

std::string AgentReportJson(const AgentReport& r) {
  json events = json::array();
  for (const Event& e : r.events) {
    json o = {{"kind", KindName(e.kind)}, {"license", e.license}, {"token", e.token},
              {"detail", e.detail}};
    if (e.time != WallTime{}) o["time_ms"] = UnixMillis(e.time);
    if (e.origin != 0) o["n"] = e.origin_seq;
    events.push_back(std::move(o));
  }
  json out = {{"pod", r.report.pod},
              {"state", NodeStateName(r.report.state)},
              {"license", r.report.license},
              {"version", r.report.version},
              {"events", std::move(events)}};
  // One stream per report: the agent's.
  for (const Event& e : r.events) {
    if (e.origin != 0) {
      out["origin"] = OriginText(e.origin);
      break;
    }
  }
  return Dump(out);
}

std::string DirectivesJson(const Directives& d) {
  return Dump(
      {{"cordoned", d.cordoned}, {"disabled", d.disabled}, {"acknowledged", d.acknowledged}});
}

StatusOr<Directives> ParseDirectives(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  auto c = j.is_object() ? j.find("cordoned") : j.end();
  auto d = j.is_object() ? j.find("disabled") : j.end();
  if (!j.is_object() || c == j.end() || !c->is_boolean() || d == j.end() || !d->is_array()) {
    return InvalidArgument("directives: expected {\"cordoned\": bool, \"disabled\": [...]}");
  }
  Directives out;
  out.cordoned = c->get<bool>();
  if (auto a = j.find("acknowledged"); a != j.end()) {
    if (!a->is_number_unsigned()) {
      return InvalidArgument("directives: 'acknowledged' must be a non-negative integer");
    }
    out.acknowledged = a->get<size_t>();
  }
  for (const json& l : *d) {
    if (!l.is_string() || !ValidateLabel(l.get<std::string>(), "license").ok()) {
      return InvalidArgument("directives: 'disabled' must hold license names");
    }
    out.disabled.push_back(l.get<std::string>());
  }
  return out;
}

std::string NodesJson(const std::vector<NodeRow>& rows) {
  json nodes = json::array();
  std::map<std::string, int> totals;
  for (NodeState s : kNodeStates) {
    totals[std::string(NodeStateName(s))] = 0;
  }
  for (const NodeRow& r : rows) {
    ++totals[std::string(NodeStateName(r.state))];
    nodes.push_back({{"node", r.node},
                     {"pod", r.pod},
                     {"state", NodeStateName(r.state)},
                     {"last_reported", NodeStateName(r.last_reported)},
                     {"license", r.license.empty() ? json(nullptr) : json(r.license)},
                     {"since_ms", UnixMillis(r.since)},
                     {"last_seen_ms", UnixMillis(r.last_seen)},
                     {"version", r.version}});
  }
  return Dump({{"nodes", std::move(nodes)}, {"totals", totals}});
}

std::string EventsJson(const Page& page, uint64_t last_seq) {
  std::string out = "{\"events\":[";
  for (size_t i = 0; i < page.events.size(); ++i) {
    if (i > 0) out += ',';
    out += ToJson(page.events[i]);  // the stored form (event_log.h)
  }
  out += "],\"next\":" + std::to_string(page.next) + ",\"more\":" +
         (page.more ? "true" : "false") +
         ",\"first_retained\":" + std::to_string(page.first_retained) +
         ",\"last_seq\":" + std::to_string(last_seq) + "}";
  return out;
}

}  // namespace lm::console
