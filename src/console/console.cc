#include "console/console.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/strings.h"

namespace lm::console {

std::string ToJson(const AdminState& s) {
  auto marks = [](const std::map<std::string, AdminMark>& m) {
    nlohmann::json o = nlohmann::json::object();
    for (const auto& [name, mark] : m) {
      o[name] = {{"actor", mark.actor}, {"at_ms", UnixMillis(mark.at)}};
    }
    return o;
  };
  nlohmann::json j = {{"cordoned", marks(s.cordoned)}, {"disabled", marks(s.disabled)}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

StatusOr<AdminState> AdminStateFromJson(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return InvalidArgument("admin state: not a JSON object");
  AdminState s;
  for (auto [field, out] : {std::pair{"cordoned", &s.cordoned}, {"disabled", &s.disabled}}) {
    auto it = j.find(field);
    if (it == j.end() || !it->is_object()) {
      return InvalidArgument(std::string("admin state: '") + field + "' must be an object");
    }
    for (const auto& [name, mark] : it->items()) {
      if (Status st = ValidateLabel(name, field); !st.ok()) return st;
      auto actor = mark.find("actor");
      auto at = mark.find("at_ms");
      if (!mark.is_object() || actor == mark.end() || !actor->is_string() || at == mark.end() ||
          !at->is_number_integer() || actor->get_ref<const std::string&>().size() > 256) {
        return InvalidArgument(std::string("admin state: ") + field + " '" + name +
                               "' needs a string actor and an integer at_ms");
      }
      (*out)[name] = {actor->get<std::string>(), WallTime(std::chrono::milliseconds(at->get<int64_t>()))};
    }
  }
  return s;
}

Console::Console(const Clock& clock, ConsoleOptions options, ConsoleJournal& journal)
    : clock_(clock),
      options_(std::move(options)),
      journal_(journal),
      nodes_(clock, options_.nodes),
      events_(clock, options_.events) {}

void Console::Restore(std::vector<Event> events, uint64_t last_seq, AdminState admin) {
  events_.Restore(std::move(events), last_seq);
  admin_ = std::move(admin);
}

StatusOr<Directives> Console::Report(const NodeReport& report, std::vector<Event> agent_events) {
  if (agent_events.size() > options_.max_events_per_report) {
    return InvalidArgument("more than " + std::to_string(options_.max_events_per_report) +
                           " events in one report");
  }
  const NodeReport& r = report;
  const bool cordoned = admin_.cordoned.count(r.node) > 0;
  if (Status s = nodes_.Report(r); !s.ok()) return s;
  if (!agent_events.empty()) {
    for (Event& e : agent_events) {
      e.node = r.node;
      e.actor.clear();
      if (e.kind == EventKind::kAdmin) return InvalidArgument("agents cannot report admin events");
      if (!e.license.empty()) {
        if (Status s = ValidateLabel(e.license, "event license"); !s.ok()) return s;
      }
      if (e.detail.size() > 256) return InvalidArgument("event detail is longer than 256 bytes");
    }
    if (Status s = Record(std::move(agent_events)); !s.ok()) return s;
  }
  Directives d;
  d.cordoned = cordoned;
  for (const auto& [license, _] : admin_.disabled) d.disabled.push_back(license);
  return d;
}

Status Console::Record(std::vector<Event> events) {
  // Stored first: an event is acknowledged (and dropped by its agent) only once it is kept.
  std::vector<Event> stamped = events_.Stamp(std::move(events));
  if (Status s = journal_.AppendEvents(stamped); !s.ok()) return s;
  events_.Commit(std::move(stamped));
  return Status::Ok();
}

Status Console::SetMark(Mark kind, const std::string& name, bool on, const std::string& actor,
                        const char* verb) {
  auto& marks = kind == Mark::kCordon ? admin_.cordoned : admin_.disabled;
  if (on == (marks.count(name) > 0)) return Status::Ok();
  AdminState next = admin_;
  auto& next_marks = kind == Mark::kCordon ? next.cordoned : next.disabled;
  if (on) {
    next_marks[name] = {actor, clock_.WallNow()};
  } else {
    next_marks.erase(name);
  }
  if (Status s = journal_.SaveAdmin(next); !s.ok()) return s;
  admin_ = std::move(next);
  Event e;
  e.kind = EventKind::kAdmin;
  (kind == Mark::kCordon ? e.node : e.license) = name;
  e.actor = actor;
  e.detail = verb;
  // The mark is in force already; an event the journal failed to keep is reported, not retried.
  return Record({std::move(e)});
}

Status Console::NodeMark(const std::string& node, bool on, const std::string& actor) {
  if (Status s = ValidateLabel(node, "node"); !s.ok()) return s;
  if (!nodes_.Get(node) && !admin_.cordoned.count(node)) {
    return NotFound("no agent has reported from node '" + node + "'");
  }
  return SetMark(Mark::kCordon, node, on, actor, on ? "cordon" : "uncordon");
}

Status Console::LicenseMark(const std::string& license, bool on, const std::string& actor) {
  if (Status s = ValidateLabel(license, "license"); !s.ok()) return s;
  if (!options_.license_exists(license) && !admin_.disabled.count(license)) {
    return NotFound("no license '" + license + "' in the pool");
  }
  return SetMark(Mark::kDisable, license, on, actor, on ? "disable" : "enable");
}

std::vector<NodeRow> Console::Nodes() {
  std::vector<NodeRow> rows = nodes_.List();
  // A cordoned node that has let go of its license is shown as cordoned, not as waiting.
  for (NodeRow& r : rows) {
    if ((r.state == NodeState::kWaiting || r.state == NodeState::kReleased) &&
        admin_.cordoned.count(r.node)) {
      r.state = NodeState::kCordoned;
    }
  }
  std::stable_partition(rows.begin(), rows.end(),
                        [](const NodeRow& r) { return r.state == NodeState::kWaiting; });
  return rows;
}

Page Console::Events(uint64_t after, size_t limit) { return events_.After(after, limit); }

Usage Console::UsageReport(WallTime from, WallTime to) {
  const auto& all = events_.Retained();
  const bool trimmed = !all.empty() && all.front().seq > 1;
  return ComputeUsage(all, from, to, clock_.WallNow(), trimmed);
}

}  // namespace lm::console
