// Reporter: the agent's side of the operator's console (issue 17). It buffers the events the
// agent sees (claim, takeover, withdraw, release, wait_start, wait_end) with their agent-side
// time, sends this node's report to tokenmgr (PUT /api/nodes/<node>) at most every half
// heartbeat with up to 64 events, drops the events tokenmgr acknowledged, and keeps the last
// directives tokenmgr answered (none until the first answer; kept while tokenmgr is
// unreachable). It never touches the pool: the agent calls it after the step's renewal or claim
// attempt and obeys the directives itself. Loop thread only (thread-compatible).
//
//   Reporter r({.node = "n1", .pod = "p", .version = "1.0.0", .heartbeat = 10s}, client, clock);
//   r.Record(console::EventKind::kClaim, "license3", 7, "");
//   if (r.MaybeSend(console::NodeState::kHeld, "license3") && r.directives().cordoned) ...
//
// Buffer: at most max_buffered events; when full the oldest is dropped (counted, one warning per
// burst). Answers: 200 drops the acknowledged events; 400/413 drops the events sent (logged once);
// 404 (tokenmgr without the console) pauses reporting for not_found_pause (logged once); 401, 503
// and unreachable keep the events for the next report.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "client/tokenmgr_client.h"
#include "common/clock.h"
#include "console/console.h"
#include "holder/event_spool.h"

namespace lm::holder {

struct ReporterOptions {
  bool enabled = true;
  std::string node;
  std::string pod;
  std::string version;
  std::chrono::seconds heartbeat{10};
  size_t max_buffered = 1000;
  size_t max_per_report = 64;  // tokenmgr refuses a report with more (console::ConsoleOptions)
  std::chrono::nanoseconds not_found_pause = std::chrono::minutes(5);
  // How long one report may take in all: short, so that an unreachable tokenmgr costs the
  // agent's loop little (min(2 s, heartbeat / 4)).
  std::chrono::milliseconds Timeout() const;
};

struct ReporterStats {
  uint64_t buffered = 0;  // events waiting to be sent
  uint64_t dropped = 0;   // events dropped because the buffer was full
  uint64_t refused = 0;   // events dropped because tokenmgr refused the report as malformed
  uint64_t reports = 0;   // reports answered with directives
  uint64_t failures = 0;  // reports that failed (any other outcome)
  bool paused = false;    // tokenmgr has no console (404): not reporting for a while
};

class Reporter {
 public:
  // Reads back what `spool` kept (events of an earlier run of this agent, its stream's origin
  // and numbering), when given; an unreadable spool is logged and a new stream started.
  Reporter(ReporterOptions options, client::TokenmgrClient& client, const Clock& clock,
           EventSpool* spool = nullptr);

  // Buffers an event with the current wall time and the next number of this agent's stream,
  // and keeps the buffer in the spool (no-op when reporting is off).
  void Record(console::EventKind kind, const std::string& license, uint64_t token,
              const std::string& detail);
  // Sends the report if one is due: half a heartbeat after the last one, or at once when the
  // state or license differs from the last one's. True if tokenmgr answered with directives
  // (directives() may have changed); false if nothing was sent or the report failed.
  bool MaybeSend(console::NodeState state, const std::string& license);
  // Asks for the directives now, whether or not a report is due, with no events (tokenmgr then
  // has nothing to store, so the answer is quick): for an agent about to claim after waiting
  // for the mutex, during which an operator may have cordoned it or disabled a license. Same
  // result as MaybeSend; nothing is sent while reporting is off or paused. Not a report in
  // MaybeSend's count: the next one is due as before.
  bool Refresh(console::NodeState state, const std::string& license);

  // The last directives tokenmgr answered; none (nothing cordoned or disabled) before.
  const console::Directives& directives() const { return directives_; }
  bool cordoned() const { return directives_.cordoned; }
  bool Disabled(const std::string& license) const;
  ReporterStats stats() const;

 private:
  void Drop(size_t n);
  void LoadSpool();
  void Persist();
  bool Send(console::NodeState state, const std::string& license, size_t max_events);

  ReporterOptions options_;
  client::TokenmgrClient& client_;
  const Clock& clock_;
  EventSpool* spool_;
  uint64_t origin_ = 0;    // this agent's event stream (console::Event::origin)
  uint64_t next_seq_ = 1;  // the next event's number in it
  bool spool_logged_ = false;  // a failed spool write is logged once until one succeeds
  std::deque<console::Event> events_;
  console::Directives directives_;
  std::optional<SteadyTime> last_attempt_;
  console::NodeState last_state_ = console::NodeState::kGone;  // of the last due report
  std::string last_license_;
  std::optional<SteadyTime> paused_until_;
  bool drop_warned_ = false;     // one warning per burst of drops (reset by a stored report)
  bool refusal_logged_ = false;  // 400 logged once
  bool auth_logged_ = false;     // 401 logged once
  bool failure_logged_ = false;  // other failures: logged once until a report succeeds
  ReporterStats stats_;
};

}  // namespace lm::holder
