// StateFile: the embedded store's durable half, a small JSON file replaced atomically on every
// change. Thread-compatible.
//
//   StateFile f("/var/lib/tokenmgr/state.json");
//   StatusOr<LockState> s = f.Load();   // empty state if the file does not exist yet
//   LM_RETURN_IF_ERROR(f.Save(state));
//
// A corrupt, truncated or hostile file is DATA_LOSS: start-up stops, nothing is reset.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "lock/lock_state.h"

namespace lm::store {

inline constexpr size_t kMaxStateFileBytes = 64 * 1024;

std::string SerializeState(const lock::LockState& state);
StatusOr<lock::LockState> ParseState(std::string_view text);

class StateFile {
 public:
  explicit StateFile(std::string path) : path_(std::move(path)) {}
  StatusOr<lock::LockState> Load() const;
  Status Save(const lock::LockState& state) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace lm::store
