// Console: the operator's day-2 view and actions (issue 17) as one typed API over the node
// table, the event history and the admin marks (cordoned nodes, disabled licenses). The HTTP
// routes, the web page and the CLI call it; it does no I/O itself: what must survive a restart
// goes through the ConsoleJournal seam before the call succeeds. Thread-compatible (tokenmgr's
// event-loop thread).
//
//   Console console(clock, options, journal);
//   StatusOr<Directives> d = console.Report(report, agent_events);  // an agent, each heartbeat
//   Status s = console.Cordon("node-7", "alice");                    // 404 if unknown
//   Page p = console.Events(/*after=*/0, /*limit=*/100);
#pragma once

#include <functional>
#include <map>
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
// Strict: malformed JSON or names that fail ValidateLabel are INVALID_ARGUMENT.
StatusOr<AdminState> AdminStateFromJson(std::string_view json);

// What an agent must do, in the answer to its report.
struct Directives {
  bool cordoned = false;              // withdraw and give the claim back; claim nothing
  std::vector<std::string> disabled;  // licenses nobody may hold (withdraw if holding one)
};

// Where the console's durable state goes. Each call returns only once the data is stored (or
// fails); the console then changes nothing and the caller gets the error (503).
class ConsoleJournal {
 public:
  virtual ~ConsoleJournal() = default;
  virtual Status AppendEvents(const std::vector<Event>& events) = 0;
  virtual Status SaveAdmin(const AdminState& state) = 0;
};

struct ConsoleOptions {
  Limits events;
  NodeOptions nodes;
  size_t max_events_per_report = 64;
  // Whether a license of this name is in the pool (for disable/enable: 404 otherwise).
  std::function<bool(const std::string&)> license_exists = [](const std::string&) { return true; };
};

class Console {
 public:
  Console(const Clock& clock, ConsoleOptions options, ConsoleJournal& journal);

  // Restores what the journal read back at start-up.
  void Restore(std::vector<Event> events, uint64_t last_seq, AdminState admin);

  // An agent's heartbeat: its state and the events it saw since its last acknowledged report
  // (their seq and time are assigned here; node is forced to the reporter's). A cordoned node
  // that reports waiting or released is listed as cordoned.
  StatusOr<Directives> Report(const NodeReport& report, std::vector<Event> agent_events);
  // Events tokenmgr itself sees (lease expiries). Numbered, stored by the journal, then kept.
  Status Record(std::vector<Event> events);

  // Admin actions: INVALID_ARGUMENT for a malformed name, NOT_FOUND for an unknown node or
  // license, OK (and no new event) when the mark is already as asked. The mark is stored
  // before it is in force; if only its event fails to be stored, the error is returned and the
  // mark stays (an operator retrying changes nothing).
  Status Cordon(const std::string& node, const std::string& actor) {
    return NodeMark(node, true, actor);
  }
  Status Uncordon(const std::string& node, const std::string& actor) {
    return NodeMark(node, false, actor);
  }
  Status Disable(const std::string& license, const std::string& actor) {
    return LicenseMark(license, true, actor);
  }
  Status Enable(const std::string& license, const std::string& actor) {
    return LicenseMark(license, false, actor);
  }

  std::vector<NodeRow> Nodes();
  Page Events(uint64_t after, size_t limit);
  Usage UsageReport(WallTime from, WallTime to);
  const AdminState& admin() const { return admin_; }
  bool IsDisabled(const std::string& license) const { return admin_.disabled.count(license); }

 private:
  enum class Mark { kCordon, kDisable };
  Status NodeMark(const std::string& node, bool on, const std::string& actor);
  Status LicenseMark(const std::string& license, bool on, const std::string& actor);
  Status SetMark(Mark kind, const std::string& name, bool on, const std::string& actor,
                 const char* verb);

  const Clock& clock_;
  ConsoleOptions options_;
  ConsoleJournal& journal_;
  NodeTable nodes_;
  EventLog events_;
  AdminState admin_;
};

}  // namespace lm::console
