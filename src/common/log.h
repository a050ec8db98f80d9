// Logging set-up: spdlog to stderr, one line per event, as text or JSON. Call once from main().
//
//   LM_CHECK_OK(InitLogging("json"));
//   spdlog::info("granted lock to {} token={}", holder, token);
#pragma once

#include <fmt/compile.h>
#include <spdlog/formatter.h>
#include <spdlog/spdlog.h>

#include <iterator>
#include <memory>
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

// format: "text" or "json". Anything else is INVALID_ARGUMENT.
Status InitLogging(std::string_view format, LogFlush flush = LogFlush::kEachLine);

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
