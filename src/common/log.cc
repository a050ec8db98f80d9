#include "common/log.h"

#include <unistd.h>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/strings.h"

namespace lm {

namespace {
// %j: the message, escaped for a JSON string.
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string escaped = JsonEscape(std::string_view(msg.payload.data(), msg.payload.size()));
    dest.append(escaped.data(), escaped.data() + escaped.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};
// Formats into memory; flush() writes everything pending to stderr in one write(2).
class BufferedStderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  ~BufferedStderrSink() override {
    std::lock_guard<std::mutex> lock(mutex_);
    flush_();
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    pending_.append(formatted.data(), formatted.size());
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
    pending_.clear();
  }

 private:
  static constexpr size_t kMaxPending = 64 * 1024;
  std::string pending_;
};

// Flushes the default logger every 100 ms until stopped (spdlog's own flush_every counts in
// whole seconds). Stopped and joined by ShutdownLogging or at exit.
class Flusher {
 public:
  Flusher() : thread_([this] { Run(); }) {}
  ~Flusher() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(100), [this] { return stop_; })) {
      if (auto logger = spdlog::default_logger()) logger->flush();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;  // last: starts after the fields it uses exist
};

// Created after spdlog's registry (InitLogging uses it first), so destroyed before it at exit.
std::unique_ptr<Flusher>& TheFlusher() {
  static std::unique_ptr<Flusher> f;
  return f;
}

}  // namespace

Status InitLogging(std::string_view format, LogFlush flush) {
  std::shared_ptr<spdlog::logger> logger;
  if (flush == LogFlush::kBuffered) {
    logger = std::make_shared<spdlog::logger>("lm", std::make_shared<BufferedStderrSink>());
    spdlog::register_logger(logger);
  } else {
    logger = spdlog::stderr_logger_mt("lm");
  }
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  if (format == "json") {
    formatter->add_flag<JsonMessageFlag>('j').set_pattern(
        R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","msg":"%j"})");
  } else if (format == "text" || format.empty()) {
    formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %l %v");
  } else {
    spdlog::drop("lm");
    return InvalidArgument("LOG_FORMAT must be 'text' or 'json', got '" +
                           std::string(format.substr(0, 32)) + "'");
  }
  logger->set_formatter(std::move(formatter));
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
