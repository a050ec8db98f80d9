#include "console/event_log.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace lm::console {
namespace {

constexpr std::string_view kKindNames[] = {"claim",   "takeover",   "withdraw",     "release",
                                           "wait_start", "wait_end", "lease_expiry", "admin"};
constexpr size_t kMaxField = 1024;  // bytes in any one string field of a stored event

}  // namespace

std::string_view KindName(EventKind k) { return kKindNames[static_cast<size_t>(k)]; }

std::optional<EventKind> ParseKind(std::string_view name) {
  for (size_t i = 0; i < std::size(kKindNames); ++i) {
    if (kKindNames[i] == name) return static_cast<EventKind>(i);
  }
  return std::nullopt;
}

EventLog::EventLog(const Clock& clock, Limits limits) : clock_(clock), limits_(limits) {}

Event EventLog::Append(Event e) {
  std::vector<Event> one = Stamp({std::move(e)});
  Event stored = one.front();
  Commit(std::move(one));
  return stored;
}

std::vector<Event> EventLog::Stamp(std::vector<Event> events) const {
  uint64_t seq = last_seq_;
  const WallTime now = clock_.WallNow();
  for (Event& e : events) {
    e.seq = ++seq;
    if (e.time == WallTime{}) e.time = now;
  }
  return events;
}

void EventLog::Commit(std::vector<Event> stamped) {
  for (Event& e : stamped) {
    if (e.seq <= last_seq_) continue;
    last_seq_ = e.seq;
    events_.push_back(std::move(e));
  }
  Trim();
}

void EventLog::Trim() {
  while (events_.size() > limits_.max_events) events_.pop_front();
  const WallTime oldest = clock_.WallNow() - limits_.max_age;
  while (!events_.empty() && events_.front().time < oldest) events_.pop_front();
}

Page EventLog::After(uint64_t after, size_t limit) {
  Trim();
  Page p;
  p.next = after;
  if (!events_.empty()) p.first_retained = events_.front().seq;
  auto it = std::upper_bound(events_.begin(), events_.end(), after,
                             [](uint64_t s, const Event& e) { return s < e.seq; });
  for (; it != events_.end(); ++it) {
    if (p.events.size() >= limit) {
      p.more = true;
      break;
    }
    p.events.push_back(*it);
    p.next = it->seq;
  }
  return p;
}

void EventLog::Restore(std::vector<Event> events, uint64_t last_seq) {
  std::sort(events.begin(), events.end(),
            [](const Event& a, const Event& b) { return a.seq < b.seq; });
  events.erase(std::unique(events.begin(), events.end(),
                           [](const Event& a, const Event& b) { return a.seq == b.seq; }),
               events.end());
  events_.assign(std::make_move_iterator(events.begin()), std::make_move_iterator(events.end()));
  last_seq_ = std::max(last_seq, events_.empty() ? 0 : events_.back().seq);
  Trim();
}

std::string ToJson(const Event& e) {
  nlohmann::json j = {{"seq", e.seq},
                      {"time_ms", UnixMillis(e.time)},
                      {"kind", KindName(e.kind)},
                      {"license", e.license},
                      {"node", e.node},
                      {"token", e.token},
                      {"actor", e.actor},
                      {"detail", e.detail}};
  if (e.origin != 0) {
    j["origin"] = OriginText(e.origin);
    j["origin_seq"] = e.origin_seq;
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

StatusOr<Event> EventFromJson(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return InvalidArgument("event: not a JSON object");
  Event e;
  auto number = [&](const char* name, uint64_t& out) -> Status {
    auto it = j.find(name);
    if (it == j.end() || !it->is_number_unsigned()) {
      return InvalidArgument(std::string("event: '") + name + "' must be a whole number");
    }
    out = it->get<uint64_t>();
    return Status::Ok();
  };
  auto string = [&](const char* name, std::string& out) -> Status {
    auto it = j.find(name);
    if (it == j.end() || !it->is_string()) {
      return InvalidArgument(std::string("event: '") + name + "' must be a string");
    }
    const auto& s = it->get_ref<const std::string&>();
    if (s.size() > kMaxField) {
      return InvalidArgument(std::string("event: '") + name + "' is longer than " +
                             std::to_string(kMaxField) + " bytes");
    }
    out = s;
    return Status::Ok();
  };
  uint64_t ms = 0;
  std::string kind;
  for (Status s : {number("seq", e.seq), number("time_ms", ms), number("token", e.token),
                   string("kind", kind), string("license", e.license), string("node", e.node),
                   string("actor", e.actor), string("detail", e.detail)}) {
    if (!s.ok()) return s;
  }
  auto k = ParseKind(kind);
  if (!k) return InvalidArgument("event: unknown kind '" + kind.substr(0, 64) + "'");
  e.kind = *k;
  if (ms > kMaxEventTimeMs) return InvalidArgument("event: 'time_ms' is after the year 2100");
  e.time = WallTime(std::chrono::milliseconds(ms));
  if (j.contains("origin")) {
    std::string origin;
    if (Status s = string("origin", origin); !s.ok()) return s;
    StatusOr<uint64_t> o = ParseOrigin(origin, "event: 'origin'");
    if (!o.ok()) return o.status();
    e.origin = *o;
    if (Status s = number("origin_seq", e.origin_seq); !s.ok()) return s;
  }
  return e;
}

std::string OriginText(uint64_t origin) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(origin));
  return buf;
}

StatusOr<uint64_t> ParseOrigin(std::string_view text, std::string_view field) {
  uint64_t v = 0;
  // from_chars would take upper-case digits too: the form is exactly what OriginText writes.
  const bool canonical =
      text.size() == 16 && text.find_first_not_of("0123456789abcdef") == std::string_view::npos;
  if (canonical) std::from_chars(text.data(), text.data() + text.size(), v, 16);
  if (!canonical || v == 0) {
    return InvalidArgument(std::string(field) + " must be 16 lower-case hex digits, not all 0");
  }
  return v;
}

}  // namespace lm::console
