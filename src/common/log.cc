#include "common/log.h"

#include <spdlog/formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "common/real_time.h"
#include "common/strings.h"

namespace lm {

namespace {
// One line per event: "<ts> <level> <message>" or {"ts":"<ts>","level":"<level>","msg":"<message>"},
// <ts> being UTC with milliseconds (2026-11-28T01:27:46.360Z). spdlog's pattern formatter can
// say the same, but walks its pattern for every line and re-derives the time fields; this one
// keeps the text up to the second and redoes it only when the second changes. On tokenmgr's hot
// path (a line per grant and per release) that was ~3% of a 1-client lock+release cycle.
class LineFormatter final : public spdlog::formatter {
 public:
  explicit LineFormatter(bool json) : json_(json) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    using std::chrono::duration_cast;
    const auto since_epoch = msg.time.time_since_epoch();
    const auto secs = std::chrono::floor<std::chrono::seconds>(since_epoch);  // ms >= 0
    if (secs != cached_secs_) Cache(secs);
    const auto ms = static_cast<unsigned>(
        duration_cast<std::chrono::milliseconds>(since_epoch - secs).count());
    const char frac[3] = {static_cast<char>('0' + ms / 100), static_cast<char>('0' + ms / 10 % 10),
                          static_cast<char>('0' + ms % 10)};
    const spdlog::string_view_t level = spdlog::level::to_string_view(msg.level);
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    if (json_) {
      Append(dest, R"({"ts":")");
      Append(dest, seconds_text_);
      Append(dest, std::string_view(frac, 3));
      Append(dest, R"(Z","level":")");
      Append(dest, std::string_view(level.data(), level.size()));
      Append(dest, R"(","msg":")");
      JsonEscapeInto(payload, [&dest](std::string_view piece) { Append(dest, piece); });
      Append(dest, "\"}\n");
    } else {
      Append(dest, seconds_text_);
      Append(dest, std::string_view(frac, 3));
      Append(dest, "Z ");
      Append(dest, std::string_view(level.data(), level.size()));
      Append(dest, " ");
      Append(dest, payload);
      Append(dest, "\n");
    }
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<LineFormatter>(json_);
  }

 private:
  static void Append(spdlog::memory_buf_t& dest, std::string_view s) {
    dest.append(s.data(), s.data() + s.size());
  }

  // seconds_text_ = "YYYY-MM-DDTHH:MM:SS." for `secs` since the epoch, in UTC.
  void Cache(std::chrono::seconds secs) {
    const std::time_t t = static_cast<std::time_t>(secs.count());
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                          tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    seconds_text_.assign(buf, n > 0 ? static_cast<size_t>(std::min<int>(n, sizeof buf - 1)) : 0);
    cached_secs_ = secs;
  }

  bool json_;
  std::chrono::seconds cached_secs_{-1};
  std::string seconds_text_;
};

// Formats into memory; flush() writes everything pending to stderr in one write(2).
class BufferedStderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  ~BufferedStderrSink() override {
    std::lock_guard<std::mutex> lock(mutex_);
    flush_();
  }

 protected:
  // The line is formatted straight onto the pending ones (the formatter appends).
  void sink_it_(const spdlog::details::log_msg& msg) override {
    formatter_->format(msg, pending_);
    if (pending_.size() >= kMaxPending) flush_();
  }
  void flush_() override {
    size_t done = 0;
    while (done < pending_.size()) {
      ssize_t n = ::write(STDERR_FILENO, pending_.data() + done, pending_.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // stderr gone: drop the lines rather than block or spin
      done += static_cast<size_t>(n);
    }
    pending_.clear();  // keeps its capacity
  }

 private:
  static constexpr size_t kMaxPending = 64 * 1024;
  spdlog::memory_buf_t pending_;
};

// Flushes the default logger every 100 ms until stopped (spdlog's own flush_every counts in
// whole seconds). Stopped and joined by ShutdownLogging or at exit.
class Flusher {
 public:
  Flusher() : thread_([this] { Run(); }) {}
  ~Flusher() {
    sleeper_.Stop();
    thread_.join();
  }

 private:
  void Run() {
    while (sleeper_.SleepFor(std::chrono::milliseconds(100))) {
      if (auto logger = spdlog::default_logger()) logger->flush();
    }
  }
  RealSleeper sleeper_;  // the real wait lives in the time seam (common/real_time.h)
  std::thread thread_;   // last: starts after the fields it uses exist
};

// Created after spdlog's registry (InitLogging uses it first), so destroyed before it at exit.
std::unique_ptr<Flusher>& TheFlusher() {
  static std::unique_ptr<Flusher> f;
  return f;
}

}  // namespace

std::unique_ptr<spdlog::formatter> MakeLineFormatter(std::string_view format) {
  if (format == "json") return std::make_unique<LineFormatter>(true);
  if (format == "text" || format.empty()) return std::make_unique<LineFormatter>(false);
  return nullptr;
}

StatusOr<spdlog::level::level_enum> ParseLogLevel(std::string_view text, std::string_view source) {
  std::string lower(Trim(text));
  for (char& c : lower) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  static constexpr std::pair<std::string_view, spdlog::level::level_enum> kLevels[] = {
      {"trace", spdlog::level::trace},
      {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},
      {"warn", spdlog::level::warn},
      {"error", spdlog::level::err}};
  for (const auto& [name, level] : kLevels) {
    if (lower == name) return level;
  }
  return InvalidArgument(std::string(source) +
                         " must be one of trace, debug, info, warn, error; got '" +
                         std::string(text.substr(0, 32)) + "'");
}

bool RateLimitedLog::Allow(std::chrono::steady_clock::time_point now, uint64_t& held_back) {
  if (last_ && now - *last_ < interval_) {
    ++held_back_;
    return false;
  }
  last_ = now;
  held_back = std::exchange(held_back_, 0);
  return true;
}

Status InitLogging(std::string_view format, LogFlush flush, spdlog::level::level_enum level) {
  std::shared_ptr<spdlog::logger> logger;
  if (flush == LogFlush::kBuffered) {
    logger = std::make_shared<spdlog::logger>("lm", std::make_shared<BufferedStderrSink>());
    spdlog::register_logger(logger);
  } else {
    logger = spdlog::stderr_logger_mt("lm");
  }
  auto formatter = MakeLineFormatter(format);
  if (!formatter) {
    spdlog::drop("lm");
    return InvalidArgument("LOG_FORMAT must be 'text' or 'json', got '" +
                           std::string(format.substr(0, 32)) + "'");
  }
  logger->set_formatter(std::move(formatter));
  logger->set_level(level);
  logger->flush_on(flush == LogFlush::kBuffered ? spdlog::level::warn : spdlog::level::info);
  spdlog::set_default_logger(logger);
  if (flush == LogFlush::kBuffered) TheFlusher() = std::make_unique<Flusher>();
  return Status::Ok();
}

void ShutdownLogging() {
  TheFlusher().reset();
  if (auto logger = spdlog::default_logger()) logger->flush();
  spdlog::shutdown();
}

}  // namespace lm
