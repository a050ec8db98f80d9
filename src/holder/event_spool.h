// EventSpool: the agent's events for tokenmgr's history that tokenmgr has not acknowledged yet,
// kept in a file in the host dir (HOST_DIR/.license-holder-events.json), so that an agent killed
// or restarted before its next report still delivers them (issue 17: no event is lost while
// tokenmgr is up). Each agent's events form a stream: a random origin, and numbers from 1 that
// go on across restarts, by which tokenmgr stores an event it is sent twice only once.
// Not thread-safe (the agent's loop owns it).
//
//   FileSpool spool(fs, "/etc/bitfusionio/.license-holder-events.json");
//   StatusOr<SpoolContents> c = spool.Load();   // NOT_FOUND: none yet
//   spool.Save({.origin = o, .next_seq = 8, .events = pending});
//
// The file is JSON, replaced atomically (fsync'ed): {"origin": "<16 hex>", "next_seq": n,
// "events": [<event as console::ToJson writes it>...]}; it exists only while events wait (a
// Save without events removes it; the next run then starts a new stream). Load is strict and bounded (kMaxBytes):
// anything malformed, oversized, or an event of another stream is INVALID_ARGUMENT naming the
// path, and the agent starts a new stream (losing only what it could not read).
// One agent per host dir: FileSpool takes the lock of the file's directory (Filesystem::
// TryLockDir) at its first Load or Save and keeps it. While another process holds it (two agents
// with one NODE_NAME share the node's host dir: a copied manifest, a rolling update with
// maxSurge), Load and Save are FAILED_PRECONDITION and never touch the file, so that agent's
// events stay in its memory only, for the rest of its life, and the other agent's spool is kept.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "console/event_log.h"
#include "license/fs.h"

namespace lm::holder {

struct SpoolContents {
  uint64_t origin = 0;    // never 0 in a valid spool
  uint64_t next_seq = 1;  // the number the next event gets
  std::vector<console::Event> events;  // oldest first, numbered below next_seq
};

class EventSpool {
 public:
  virtual ~EventSpool() = default;
  virtual StatusOr<SpoolContents> Load() = 0;
  virtual Status Save(const SpoolContents& contents) = 0;
};

class FileSpool final : public EventSpool {
 public:
  // 1,000 events of at most ~1.3 KiB each (the agent buffers at most 1,000).
  static constexpr size_t kMaxBytes = 2 * 1024 * 1024;
  FileSpool(license::Filesystem& fs, std::string path) : fs_(fs), path_(std::move(path)) {}
  StatusOr<SpoolContents> Load() override;
  Status Save(const SpoolContents& contents) override;
  const std::string& path() const { return path_; }
  // Takes the directory's lock if it can (as Load and Save do); true while another process
  // holds it: another agent works in this host dir.
  bool HeldElsewhere() { return Lock().code() == StatusCode::kFailedPrecondition; }

 private:
  // OK once this spool holds its directory's lock, or when the lock cannot be taken for another
  // reason than another holder (a missing dir: tried again next time; Save reports it itself).
  Status Lock();

  license::Filesystem& fs_;
  std::string path_;
  std::unique_ptr<license::DirLock> lock_;
  Status busy_ = Status::Ok();  // FAILED_PRECONDITION for good once another process held the lock
};

// For tests: keeps the contents in memory (or fails).
class MemorySpool final : public EventSpool {
 public:
  StatusOr<SpoolContents> Load() override;
  Status Save(const SpoolContents& contents) override;
  std::optional<SpoolContents> contents;
  Status save_status = Status::Ok();
  int saves = 0;
};

}  // namespace lm::holder
