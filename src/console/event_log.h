// EventLog: the history an operator reads (issue 17): claims, takeovers, withdrawals, releases,
// waits, lease expiries and admin actions, each with a sequence number. A pure, bounded
// container: no I/O (the store persists what Append returns), time from a Clock.
// Thread-compatible: tokenmgr calls it from its event-loop thread.
//
//   EventLog log(clock, {.max_events = 100000, .max_age = std::chrono::hours(24 * 30)});
//   Event e = log.Append({.kind = EventKind::kClaim, .license = "license3", .node = "n1"});
//   Page p = log.After(/*after=*/0, /*limit=*/100);  // oldest first; p.next for the next page
//
// Guarantees (each a unit test): sequence numbers only grow, also across Restore(); an event is
// dropped only when it is older than max_age or beyond the newest max_events; After(seq) never
// skips a retained event.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace lm::console {

enum class EventKind {
  kClaim,        // a node claimed a free license
  kTakeover,     // a node claimed a license whose claim was stale (detail: the former holder)
  kWithdraw,     // a node took a license off its host (detail: the reason, see below)
  kRelease,      // a node gave its claim back
  kWaitStart,    // a node started waiting for a license
  kWaitEnd,      // a node stopped waiting (it got one, or it stopped looking)
  kLeaseExpiry,  // tokenmgr: a mutex lease ended by expiry
  kAdmin,        // an operator's action (detail: cordon, uncordon, disable, enable)
};
// Why a license was withdrawn (the detail of a kWithdraw event).
inline constexpr std::string_view kWithdrawReasons[] = {"taken over", "self-fenced", "drift",
                                                        "cordoned",   "disabled",    "unusable"};

// Every kind, in declaration order.
inline constexpr EventKind kEventKinds[] = {
    EventKind::kClaim,     EventKind::kTakeover, EventKind::kWithdraw,    EventKind::kRelease,
    EventKind::kWaitStart, EventKind::kWaitEnd,  EventKind::kLeaseExpiry, EventKind::kAdmin};
std::string_view KindName(EventKind k);
// The inverse of KindName; nullopt for anything else.
std::optional<EventKind> ParseKind(std::string_view name);

struct Event {
  uint64_t seq = 0;   // assigned by Append
  WallTime time{};    // assigned by Append when left empty
  EventKind kind = EventKind::kClaim;
  std::string license;
  std::string node;
  uint64_t token = 0;  // the fencing token involved, 0 when none
  std::string actor;   // who did it (admin actions): the authenticated caller
  std::string detail;
  // Set by an agent (0: none, e.g. tokenmgr's own events): the agent's event stream and the
  // event's number in it, from 1. A resent event (its acknowledgement was lost) is recognised by
  // them and stored once (Console::Report).
  uint64_t origin = 0;
  uint64_t origin_seq = 0;
};

struct Limits {
  size_t max_events = 100000;  // at least 1 (config validates)
  std::chrono::seconds max_age{std::chrono::hours(24 * 30)};
};

struct Page {
  std::vector<Event> events;  // oldest first
  uint64_t next = 0;          // pass as `after` for the next page (the last seq returned)
  bool more = false;          // events after `next` were left out by `limit`
  uint64_t first_retained = 0;  // oldest seq still held (0: none); older ones were dropped
};

class EventLog {
 public:
  EventLog(const Clock& clock, Limits limits);

  // Appends `e` with the next sequence number (and the time now when e.time is empty), then
  // drops what the limits no longer allow. Returns the event as stored (with seq and time).
  Event Append(Event e);
  // Numbers events without storing them (seq from last_seq() + 1 on; time now when empty), so a
  // caller can persist them first and Commit them after.
  std::vector<Event> Stamp(std::vector<Event> events) const;
  // Appends events from Stamp(); ones whose seq is not above last_seq() are ignored.
  void Commit(std::vector<Event> stamped);
  // Events with seq > after, oldest first, at most `limit` (limit 0 = none).
  Page After(uint64_t after, size_t limit);
  // Replaces the content with events read back from a store (any order; duplicates by seq are
  // kept once). Later Appends continue above the highest seq seen, and above `last_seq`.
  void Restore(std::vector<Event> events, uint64_t last_seq = 0);

  uint64_t last_seq() const { return last_seq_; }
  size_t size() const { return events_.size(); }
  // Every retained event, oldest first (for the usage report), after applying the limits.
  const std::deque<Event>& Retained() {
    Trim();
    return events_;
  }

 private:
  void Trim();

  const Clock& clock_;
  Limits limits_;
  uint64_t last_seq_ = 0;
  std::deque<Event> events_;  // by seq, ascending
};

// One event as a JSON object (the API's and the stores' form) and back. FromJson is strict:
// missing or mistyped fields, an unknown kind or an oversized string are INVALID_ARGUMENT.
// An event's time read from outside (a report, a stored event) is at most this many ms after the
// Unix epoch (2100-01-01): later ones would overflow WallTime's nanoseconds (year 2262).
inline constexpr uint64_t kMaxEventTimeMs = 4102444800000;
// origin (16 hex digits) and origin_seq are written when origin is set, and optional to read.
std::string ToJson(const Event& e);
StatusOr<Event> EventFromJson(std::string_view json);
// An event stream's origin as 16 lower-case hex digits, and back (INVALID_ARGUMENT naming
// `field` unless exactly that, and not 0).
std::string OriginText(uint64_t origin);
StatusOr<uint64_t> ParseOrigin(std::string_view text, std::string_view field);

}  // namespace lm::console
