// Console: the operator's day-2 view and actions (issue 17) as one typed API over the node
// table, the event history and the admin marks (cordoned nodes, disabled licenses). The HTTP
// routes, the web page and the CLI call it; it does no I/O itself: what must survive a restart
// goes through the ConsoleJournal seam before the call succeeds. Thread-compatible (tokenmgr's
// event-loop thread).
//
//   Console console(clock, options, journal);
//   console.Report(report, agent_events, [](StatusOr<Directives> d) { ... });  // each heartbeat
//   console.Cordon("node-7", "alice", [](Status s) { ... });                   // 404 if unknown
//   Page p = console.Events(/*after=*/0, /*limit=*/100);
#pragma once

#include <array>
#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "console/event_log.h"
#include "console/node_table.h"
#include "console/usage.h"

namespace lm::console {

struct AdminMark {
  std::string actor;
  WallTime at{};
};

// Operator decisions that outlive every process: stored whole by the journal on each change.
struct AdminState {
  std::map<std::string, AdminMark> cordoned;  // by node
  std::map<std::string, AdminMark> disabled;  // by license
};
std::string ToJson(const AdminState& s);
// One mark, {"actor": ..., "at_ms": ...}, as a whole state holds it (and etcd, one key per mark).
nlohmann::json MarkToJson(const AdminMark& m);
// Strict: `name` must pass ValidateLabel (as `field`), the actor be a string of at most 256
// bytes and at_ms an integer; INVALID_ARGUMENT otherwise.
StatusOr<AdminMark> AdminMarkFromJson(const std::string& name, const nlohmann::json& mark,
                                      std::string_view field);
// Strict: malformed JSON or names that fail ValidateLabel are INVALID_ARGUMENT.
StatusOr<AdminState> AdminStateFromJson(std::string_view json);

// What an agent must do, in the answer to its report.
struct Directives {
  bool cordoned = false;              // withdraw and give the claim back; claim nothing
  std::vector<std::string> disabled;  // licenses nobody may hold (withdraw if holding one)
  size_t acknowledged = 0;            // events of the report now stored (the agent drops them)
};

enum class MarkKind { kCordon, kDisable };

// An operator's action, as the API paths, the CLI and the page's forms name it.
enum class AdminAction { kCordon, kUncordon, kDisable, kEnable };
inline constexpr AdminAction kAdminActions[] = {AdminAction::kCordon, AdminAction::kUncordon,
                                                AdminAction::kDisable, AdminAction::kEnable};
std::string_view AdminActionName(AdminAction a);  // "cordon", ...
std::optional<AdminAction> ParseAdminAction(std::string_view name);
// "node" for cordon/uncordon, "license" for disable/enable: what the action names.
std::string_view AdminTarget(AdminAction a);

// Receives what a journal stored, whoever wrote it (this process or another replica on a shared
// store): events in ascending seq, each once; marks with their new value (nullopt: lifted).
// Console is one.
class ConsoleSink {
 public:
  virtual ~ConsoleSink() = default;
  virtual void ApplyEvents(std::vector<Event> stored) = 0;
  virtual void ApplyMark(MarkKind kind, const std::string& name,
                         std::optional<AdminMark> mark) = 0;
};

// Where the console's durable state goes. Asynchronous: `done` runs exactly once, inside the
// call (a local file) or later on the caller's event-loop thread (a shared store), with OK once
// the data is stored, or an error (UNAVAILABLE also when the outcome is unknown) having stored
// nothing that the caller is told about. What is stored reaches the attached sink: before done
// for a local journal; for a shared store, through its watch, possibly just after done.
class ConsoleJournal {
 public:
  using Done = std::function<void(Status)>;
  virtual ~ConsoleJournal() = default;
  // Numbers `events` after every event stored so far (by any writer), stores them, and passes
  // them to the sink. Their time is set; their seq is the journal's to assign.
  virtual void AppendEvents(std::vector<Event> events, Done done) = 0;
  // Stores one mark (nullopt: lifts it) and passes it to the sink.
  virtual void SetMark(MarkKind kind, const std::string& name, std::optional<AdminMark> mark,
                       Done done) = 0;
  void Attach(ConsoleSink* sink) { sink_ = sink; }
  // A node's row after each report (a shared store passes it to the other replicas, which
  // Console::MergeNode it). Best effort, no answer; local journals ignore it.
  virtual void NoteNode(const NodeRow& /*row*/) {}

 protected:
  ConsoleSink* sink_ = nullptr;
};

// A journal that keeps nothing beyond the process (tokenmgr without a state file): it numbers
// and passes on, inline.
class MemoryJournal final : public ConsoleJournal {
 public:
  void AppendEvents(std::vector<Event> events, Done done) override;
  void SetMark(MarkKind kind, const std::string& name, std::optional<AdminMark> mark,
               Done done) override;
  void set_last_seq(uint64_t seq) { last_seq_ = seq; }

 private:
  uint64_t last_seq_ = 0;
};

struct ConsoleOptions {
  Limits events;
  NodeOptions nodes;
  size_t max_events_per_report = 64;
  // Whether a license of this name is in the pool (for disable/enable: 404 otherwise).
  std::function<bool(const std::string&)> license_exists = [](const std::string&) { return true; };
};

class Console final : public ConsoleSink {
 public:
  using Done = std::function<void(Status)>;
  // Attaches itself to `journal` as its sink.
  Console(const Clock& clock, ConsoleOptions options, ConsoleJournal& journal);

  // Restores what a local journal read back at start-up.
  void Restore(std::vector<Event> events, uint64_t last_seq, AdminState admin);

  // An agent's heartbeat: its state and the events it saw since its last acknowledged report
  // (their seq is assigned by the journal; node is forced to the reporter's). A cordoned node
  // that reports waiting or released is listed as cordoned. `done` gets the directives once the
  // events are stored (acknowledged = all of them), or the error (nothing acknowledged).
  // Events with an origin at or below the highest origin_seq already stored from that origin
  // for this node (a resend after a lost acknowledgement) are acknowledged, not stored again:
  // at most kMaxOrigins nodes are remembered, from the events stored (and restored) since
  // start, so a resend is stored twice only after that is forgotten, or on a shared store
  // while the first copy is still on its way.
  void Report(const NodeReport& report, std::vector<Event> agent_events,
              std::function<void(StatusOr<Directives>)> done);
  // Events tokenmgr itself sees (lease expiries). `done` may be empty.
  void Record(std::vector<Event> events, Done done = nullptr);

  // Admin actions: INVALID_ARGUMENT for a malformed name, NOT_FOUND for an unknown node or
  // license, OK (and no new event) when the mark is already as asked. The mark is stored
  // before it is in force; if only its event fails to be stored, the error is returned and the
  // mark stays (an operator retrying changes nothing).
  void Cordon(const std::string& node, const std::string& actor, Done done) {
    NodeMark(node, true, actor, std::move(done));
  }
  void Uncordon(const std::string& node, const std::string& actor, Done done) {
    NodeMark(node, false, actor, std::move(done));
  }
  void Disable(const std::string& license, const std::string& actor, Done done) {
    LicenseMark(license, true, actor, std::move(done));
  }
  void Enable(const std::string& license, const std::string& actor, Done done) {
    LicenseMark(license, false, actor, std::move(done));
  }
  // One of the four above, by action (`name` is the node or the license, see AdminTarget).
  void Act(AdminAction a, const std::string& name, const std::string& actor, Done done);

  // A node's row as another replica stored it (it is newer when its last_seen is).
  void MergeNode(const NodeRow& row) { (void)nodes_.Merge(row); }

  // The current directives for `node` (as the answer to its report would carry them).
  Directives DirectivesFor(const std::string& node) const;
  std::vector<NodeRow> Nodes();
  Page Events(uint64_t after, size_t limit);
  uint64_t last_seq() const { return events_.last_seq(); }
  Usage UsageReport(WallTime from, WallTime to);
  const AdminState& admin() const { return admin_; }
  static constexpr size_t kMaxOrigins = 100000;
  // Events of this kind the journal passed on since start (tokenmgr_events_total).
  uint64_t events_stored(EventKind k) const { return stored_by_kind_[static_cast<size_t>(k)]; }
  bool IsDisabled(const std::string& license) const { return admin_.disabled.count(license); }

  // ConsoleSink: what the journal stored.
  void ApplyEvents(std::vector<Event> stored) override;
  void ApplyMark(MarkKind kind, const std::string& name, std::optional<AdminMark> mark) override;

 private:
  void NodeMark(const std::string& node, bool on, const std::string& actor, Done done);
  void LicenseMark(const std::string& license, bool on, const std::string& actor, Done done);
  void SetMark(MarkKind kind, const std::string& name, bool on, const std::string& actor,
               const char* verb, Done done);
  // Remembers the newest agent event of each node's stream (for Report's resend check).
  void NoteOrigins(const std::vector<Event>& stored);
  bool AlreadyStored(const std::string& node, const Event& e) const;

  const Clock& clock_;
  ConsoleOptions options_;
  ConsoleJournal& journal_;
  NodeTable nodes_;
  EventLog events_;
  AdminState admin_;
  std::array<uint64_t, std::size(kEventKinds)> stored_by_kind_{};
  struct StreamPos {
    uint64_t origin = 0, seq = 0;
  };
  std::unordered_map<std::string, StreamPos> streams_;  // by node
};

}  // namespace lm::console
