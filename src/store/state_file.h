// StateFile: the embedded store's durable half: the last fencing token and the current lease.
// Thread-compatible; one StateFile per path.
//
//   StateFile f("/var/lib/tokenmgr/tokenmgr.state");
//   StatusOr<lock::LockState> s = f.Load();   // empty state if the file does not exist yet
//   LM_RETURN_IF_ERROR(f.Save(state));
//
// Format 2 (written since 1.1): two fixed 4 KiB slots written alternately, so a change costs one
// pwrite + fdatasync of an already allocated block (no new inode, no rename, no directory
// flush). Each slot is a text header, then the state as JSON, then newline padding:
//
//   lmstate2 seq=00000000000000000007 len=00163 crc=1c291ca3\n{"last_token":...}\n\n\n...
//
// The slot with the highest sequence whose CRC-32 (over header prefix and JSON) matches wins;
// a slot torn by a crash while it was written fails its CRC and the other slot, one change
// older and never acknowledged as newer, is used. Format 1 (one JSON object, as written by
// 1.0) is still read and converted atomically on the first save. A file with no valid slot, a
// slot whose CRC matches but whose content breaks the state's invariants, or a hostile file is
// DATA_LOSS: start-up stops, nothing is reset.
//
// The file is created, converted or re-created (when it was deleted or replaced while open)
// with temp file + fsync + rename + directory fsync.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "lock/lock_state.h"

namespace lm::store {

inline constexpr size_t kMaxStateFileBytes = 64 * 1024;
inline constexpr size_t kStateSlotBytes = 4096;
// Appended to every DATA_LOSS from Load(): what an operator does about it.
inline constexpr std::string_view kStateRecoveryHint =
    "Inspect it with `tokenmgr state show FILE`; to recover, move the file aside and restart "
    "(tokens then start from the clock, above every earlier token; see docs/operations.md)";

// The state as one JSON object (format 1's whole file; format 2's slot payload).
std::string SerializeState(const lock::LockState& state);
StatusOr<lock::LockState> ParseState(std::string_view text);

// One format-2 slot: exactly kStateSlotBytes, or RESOURCE_EXHAUSTED if the JSON does not fit.
StatusOr<std::string> EncodeStateSlot(uint64_t seq, const lock::LockState& state);

struct DecodedStateFile {
  lock::LockState state;
  uint64_t seq = 0;     // sequence of the slot used; 0 for format 1
  int slot = -1;        // index of the slot used (0 or 1); -1 for format 1
  bool legacy = false;  // format 1
  // Torn slots that were skipped, each with the reason (never-written slots are not listed).
  std::vector<std::string> problems;
};
// Decodes a whole file's content, either format.
StatusOr<DecodedStateFile> DecodeStateFile(std::string_view content);

class StateFile {
 public:
  explicit StateFile(std::string path) : path_(std::move(path)) {}
  ~StateFile();
  StateFile(const StateFile&) = delete;
  StateFile& operator=(const StateFile&) = delete;

  StatusOr<lock::LockState> Load();
  // What the last successful Load() decoded (slot used, torn slots skipped); empty before.
  const DecodedStateFile& last_load() const { return last_load_; }
  Status Save(const lock::LockState& state);
  const std::string& path() const { return path_; }

 private:
  Status Recreate(const lock::LockState& state);
  void CloseFd();

  std::string path_;
  int fd_ = -1;       // open on a format-2 file this process wrote or verified
  uint64_t seq_ = 0;  // sequence of the newest slot on disk
  DecodedStateFile last_load_;
};

}  // namespace lm::store
