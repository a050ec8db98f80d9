#include "console/console.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/strings.h"

namespace lm::console {

nlohmann::json MarkToJson(const AdminMark& m) {
  return {{"actor", m.actor}, {"at_ms", UnixMillis(m.at)}};
}

StatusOr<AdminMark> AdminMarkFromJson(const std::string& name, const nlohmann::json& mark,
                                      std::string_view field) {
  if (Status st = ValidateLabel(name, field); !st.ok()) return st;
  auto actor = mark.is_object() ? mark.find("actor") : mark.end();
  auto at = mark.is_object() ? mark.find("at_ms") : mark.end();
  if (!mark.is_object() || actor == mark.end() || !actor->is_string() || at == mark.end() ||
      !at->is_number_integer() || actor->get_ref<const std::string&>().size() > 256) {
    return InvalidArgument("admin state: " + std::string(field) + " '" + name +
                           "' needs a string actor and an integer at_ms");
  }
  return AdminMark{actor->get<std::string>(),
                   WallTime(std::chrono::milliseconds(at->get<int64_t>()))};
}

std::string ToJson(const AdminState& s) {
  auto marks = [](const std::map<std::string, AdminMark>& m) {
    nlohmann::json o = nlohmann::json::object();
    for (const auto& [name, mark] : m) o[name] = MarkToJson(mark);
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
      auto m = AdminMarkFromJson(name, mark, field);
      if (!m.ok()) return m.status();
      (*out)[name] = std::move(*m);
    }
  }
  return s;
}

void MemoryJournal::AppendEvents(std::vector<Event> events, Done done) {
  for (Event& e : events) e.seq = ++last_seq_;
  if (sink_) sink_->ApplyEvents(std::move(events));
  if (done) done(Status::Ok());
}

void MemoryJournal::SetMark(MarkKind kind, const std::string& name,
                            std::optional<AdminMark> mark, Done done) {
  if (sink_) sink_->ApplyMark(kind, name, std::move(mark));
  if (done) done(Status::Ok());
}

namespace {

constexpr std::string_view kActionNames[] = {"cordon", "uncordon", "disable", "enable"};

}  // namespace

std::string_view AdminActionName(AdminAction a) { return kActionNames[static_cast<size_t>(a)]; }

std::optional<AdminAction> ParseAdminAction(std::string_view name) {
  for (AdminAction a : kAdminActions) {
    if (AdminActionName(a) == name) return a;
  }
  return std::nullopt;
}

std::string_view AdminTarget(AdminAction a) {
  return a == AdminAction::kCordon || a == AdminAction::kUncordon ? "node" : "license";
}

Console::Console(const Clock& clock, ConsoleOptions options, ConsoleJournal& journal)
    : clock_(clock),
      options_(std::move(options)),
      journal_(journal),
      nodes_(clock, options_.nodes),
      events_(clock, options_.events) {
  journal_.Attach(this);
}

void Console::Restore(std::vector<Event> events, uint64_t last_seq, AdminState admin) {
  NoteOrigins(events);
  events_.Restore(std::move(events), last_seq);
  admin_ = std::move(admin);
}

void Console::Report(const NodeReport& r, std::vector<Event> agent_events,
                     std::function<void(StatusOr<Directives>)> done) {
  if (agent_events.size() > options_.max_events_per_report) {
    return done(InvalidArgument("more than " + std::to_string(options_.max_events_per_report) +
                                " events in one report"));
  }
  for (Event& e : agent_events) {
    e.node = r.node;
    e.actor.clear();
    if (e.kind == EventKind::kAdmin) return done(InvalidArgument("agents cannot report admin events"));
    if (!e.license.empty()) {
      if (Status s = ValidateLabel(e.license, "event license"); !s.ok()) return done(s);
    }
    if (e.detail.size() > 256) return done(InvalidArgument("event detail is longer than 256 bytes"));
  }
  if (Status s = nodes_.Report(r); !s.ok()) return done(s);
  if (auto row = nodes_.Get(r.node)) journal_.NoteNode(*row);
  const size_t n = agent_events.size();
  std::erase_if(agent_events, [&](const Event& e) { return AlreadyStored(r.node, e); });
  if (agent_events.empty()) {
    Directives d = DirectivesFor(r.node);
    d.acknowledged = n;
    return done(std::move(d));
  }
  // Stored first: an event is acknowledged (and dropped by its agent) only once it is kept.
  Record(std::move(agent_events), [this, node = r.node, n, done = std::move(done)](Status s) {
    if (!s.ok()) return done(s);
    Directives d = DirectivesFor(node);
    d.acknowledged = n;
    done(std::move(d));
  });
}

void Console::Record(std::vector<Event> events, Done done) {
  const WallTime now = clock_.WallNow();
  for (Event& e : events) {
    e.seq = 0;
    if (e.time == WallTime{}) e.time = now;
  }
  journal_.AppendEvents(std::move(events), [done = std::move(done)](Status s) {
    if (done) done(s);
  });
}

Directives Console::DirectivesFor(const std::string& node) const {
  Directives d;
  d.cordoned = admin_.cordoned.count(node) > 0;
  for (const auto& [license, _] : admin_.disabled) d.disabled.push_back(license);
  return d;
}

void Console::ApplyEvents(std::vector<Event> stored) {
  for (const Event& e : stored) ++stored_by_kind_[static_cast<size_t>(e.kind)];
  NoteOrigins(stored);
  events_.Commit(std::move(stored));
}

void Console::NoteOrigins(const std::vector<Event>& stored) {
  for (const Event& e : stored) {
    if (e.origin == 0) continue;
    if (streams_.size() >= kMaxOrigins && !streams_.count(e.node)) streams_.clear();
    StreamPos& p = streams_[e.node];
    // Another stream on this node (its agent lost its spool, or two pods share the name): the
    // newest event decides, so that nothing new is taken for a resend.
    if (p.origin != e.origin || e.origin_seq > p.seq) p = {e.origin, e.origin_seq};
  }
}

bool Console::AlreadyStored(const std::string& node, const Event& e) const {
  if (e.origin == 0) return false;
  auto it = streams_.find(node);
  return it != streams_.end() && it->second.origin == e.origin && e.origin_seq <= it->second.seq;
}

void Console::ApplyMark(MarkKind kind, const std::string& name, std::optional<AdminMark> mark) {
  auto& marks = kind == MarkKind::kCordon ? admin_.cordoned : admin_.disabled;
  if (mark) {
    marks[name] = std::move(*mark);
  } else {
    marks.erase(name);
  }
}

void Console::SetMark(MarkKind kind, const std::string& name, bool on, const std::string& actor,
                      const char* verb, Done done) {
  const auto& marks = kind == MarkKind::kCordon ? admin_.cordoned : admin_.disabled;
  if (on == (marks.count(name) > 0)) return done(Status::Ok());
  std::optional<AdminMark> mark;
  if (on) mark = AdminMark{actor, clock_.WallNow()};
  Event e;
  e.kind = EventKind::kAdmin;
  (kind == MarkKind::kCordon ? e.node : e.license) = name;
  e.actor = actor;
  e.detail = verb;
  journal_.SetMark(kind, name, std::move(mark),
                   [this, e = std::move(e), done = std::move(done)](Status s) mutable {
                     if (!s.ok()) return done(s);
                     // The mark is in force already; an event the journal failed to keep is
                     // reported, not retried.
                     Record({std::move(e)}, std::move(done));
                   });
}

void Console::Act(AdminAction a, const std::string& name, const std::string& actor, Done done) {
  switch (a) {
    case AdminAction::kCordon:
      return Cordon(name, actor, std::move(done));
    case AdminAction::kUncordon:
      return Uncordon(name, actor, std::move(done));
    case AdminAction::kDisable:
      return Disable(name, actor, std::move(done));
    case AdminAction::kEnable:
      return Enable(name, actor, std::move(done));
  }
}

void Console::NodeMark(const std::string& node, bool on, const std::string& actor, Done done) {
  if (Status s = ValidateLabel(node, "node"); !s.ok()) return done(s);
  if (!nodes_.Get(node) && !admin_.cordoned.count(node)) {
    return done(NotFound("no agent has reported from node '" + node + "'"));
  }
  SetMark(MarkKind::kCordon, node, on, actor, on ? "cordon" : "uncordon", std::move(done));
}

void Console::LicenseMark(const std::string& license, bool on, const std::string& actor,
                          Done done) {
  if (Status s = ValidateLabel(license, "license"); !s.ok()) return done(s);
  if (!options_.license_exists(license) && !admin_.disabled.count(license)) {
    return done(NotFound("no license '" + license + "' in the pool"));
  }
  SetMark(MarkKind::kDisable, license, on, actor, on ? "disable" : "enable", std::move(done));
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
