// Logging set-up: spdlog to stderr, one line per event, as text or JSON. Call once from main().
//
//   if (Status s = InitLogging("json", LogFlush::kEachLine, spdlog::level::info); !s.ok()) ...
//   spdlog::info("granted lock to {} token={}", holder, token);
#pragma once

#include <fmt/compile.h>
#include <spdlog/formatter.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string_view>

#include "common/status.h"

namespace lm {

enum class LogFlush {
  kEachLine,  // every line is written to stderr at once
  // Lines below warn are collected and written at most 100 ms later, or when 64 KiB are
  // pending, in one write; warn and above flush at once. For tokenmgr's hot path: saves a
  // write syscall per grant and release. A crash (not SIGTERM) may lose the last 100 ms of
  // info lines.
  kBuffered,
};

// format: "text" or "json". Anything else is INVALID_ARGUMENT. Lines below `level` are dropped.
Status InitLogging(std::string_view format, LogFlush flush = LogFlush::kEachLine,
                   spdlog::level::level_enum level = spdlog::level::info);

// A LOG_LEVEL value: "trace", "debug", "info", "warn" or "error" (any case). Anything else is
// INVALID_ARGUMENT naming `source` (the variable or flag it came from) and the allowed values.
StatusOr<spdlog::level::level_enum> ParseLogLevel(std::string_view text, std::string_view source);

// Lets at most one line through per `interval` and counts the ones held back, for events a
// client can cause at any rate (e.g. refused requests). Not thread-safe.
//
//   RateLimitedLog limit(std::chrono::seconds(10));
//   uint64_t held_back = 0;
//   if (limit.Allow(clock.Now(), held_back)) spdlog::warn("refused ({} more)", held_back);
class RateLimitedLog {
 public:
  explicit RateLimitedLog(std::chrono::steady_clock::duration interval) : interval_(interval) {}
  // True when a line may be written at `now`; `held_back` is then the number of events refused
  // since the last line. False counts this event as held back.
  bool Allow(std::chrono::steady_clock::time_point now, uint64_t& held_back);

 private:
  std::chrono::steady_clock::duration interval_;
  std::optional<std::chrono::steady_clock::time_point> last_;
  uint64_t held_back_ = 0;
};

// The formatter InitLogging installs: "text" (or "") gives `<ts> <level> <message>`, "json"
// gives {"ts":"<ts>","level":"<level>","msg":"<message, JSON-escaped>"}, <ts> being UTC to the
// millisecond (2026-11-28T01:27:46.360Z); anything else, nullptr. Exposed for tests.
std::unique_ptr<spdlog::formatter> MakeLineFormatter(std::string_view format);

// An info line whose format is compiled (FMT_COMPILE("...")): nothing is parsed per call, and
// nothing is formatted when info is off. For lines on tokenmgr's hot path (grant, release).
//   LogInfoCompiled(FMT_COMPILE("lock released id={}"), shown);
template <typename CompiledFormat, typename... Args>
void LogInfoCompiled(const CompiledFormat& format, const Args&... args) {
  spdlog::logger* logger = spdlog::default_logger_raw();
  if (!logger->should_log(spdlog::level::info)) return;
  fmt::memory_buffer line;
  fmt::format_to(std::back_inserter(line), format, args...);
  logger->log(spdlog::level::info, spdlog::string_view_t(line.data(), line.size()));
}

// Writes pending buffered lines and stops the background flusher. Call before exiting.
void ShutdownLogging();

}  // namespace lm
