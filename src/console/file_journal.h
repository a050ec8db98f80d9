// FileJournal: the console's durable state on local disk, for the embedded store (issue 17).
// Two files in one directory (tokenmgr's state directory):
//   console-events.jsonl  one event per line (event_log.h's JSON form), appended and
//                         fdatasync'ed before the event counts as kept; rewritten (streamed
//                         into a temp file + rename) when it holds twice what the limits keep,
//                         dropping what they no longer allow (count and age), with a first
//                         line {"last_seq": N} so numbering never restarts.
//   console-admin.json    the admin marks, replaced atomically on each change.
// Open() reads both back. A torn last line (a crash while appending) is dropped with a warning;
// any other unreadable line is skipped and counted; an unreadable admin file stops start-up
// (starting without an operator's cordons would hand licenses to nodes being drained).
// Thread-compatible.
//
//   auto j = FileJournal::Open("/var/lib/tokenmgr", limits, clock);
//   Console console(clock, options, **j);
//   console.Restore((*j)->TakeEvents(), (*j)->last_seq(), (*j)->admin());
//
// Events are numbered here, on from the highest seq the file ever held.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "console/console.h"

namespace lm::console {

class FileJournal final : public ConsoleJournal {
 public:
  // `clock`: for the age limit when the file is compacted.
  static StatusOr<std::unique_ptr<FileJournal>> Open(const std::string& dir, Limits limits,
                                                     const Clock& clock);
  ~FileJournal() override;

  // Both store, pass to the sink and call done inside the call.
  void AppendEvents(std::vector<Event> events, Done done) override;
  void SetMark(MarkKind kind, const std::string& name, std::optional<AdminMark> mark,
               Done done) override;

  // What Open() read back (events oldest first).
  std::vector<Event> TakeEvents() { return std::move(events_); }
  uint64_t last_seq() const { return last_seq_; }
  const AdminState& admin() const { return admin_; }
  size_t skipped_lines() const { return skipped_; }

 private:
  FileJournal(std::string dir, Limits limits, const Clock& clock)
      : dir_(std::move(dir)), limits_(limits), clock_(clock) {}
  Status Load();
  Status Append(const std::vector<Event>& numbered);
  Status SaveAdmin(const AdminState& state);
  Status Compact();
  std::string EventsPath() const { return dir_ + "/console-events.jsonl"; }
  std::string AdminPath() const { return dir_ + "/console-admin.json"; }

  std::string dir_;
  Limits limits_;
  const Clock& clock_;
  int fd_ = -1;                // events file, O_APPEND
  size_t lines_ = 0;           // event lines in the file
  std::vector<Event> events_;  // read back by Load, until TakeEvents
  uint64_t last_seq_ = 0;
  AdminState admin_;
  size_t skipped_ = 0;
};

}  // namespace lm::console
