#include "common/log.h"

#include <gtest/gtest.h>
#include <spdlog/details/log_msg.h>
#include <spdlog/sinks/ostream_sink.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace lm {
namespace {

using std::chrono::milliseconds;

// 2026-11-28T01:27:46.360Z
constexpr int64_t kSomeMs = 1795829266360;

std::string Format(spdlog::formatter& f, int64_t unix_ms, spdlog::level::level_enum level,
                   std::string_view payload) {
  spdlog::details::log_msg msg("lm", level, spdlog::string_view_t(payload.data(), payload.size()));
  msg.time = spdlog::log_clock::time_point(milliseconds(unix_ms));
  spdlog::memory_buf_t out;
  f.format(msg, out);
  return std::string(out.data(), out.size());
}

TEST(LineFormatter, TextIsTimestampLevelMessage) {
  auto f = MakeLineFormatter("text");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(Format(*f, kSomeMs, spdlog::level::info, "lock granted to 'a'"),
            "2026-11-28T01:27:46.360Z info lock granted to 'a'\n");
  EXPECT_EQ(Format(*f, kSomeMs + 5, spdlog::level::warn, "w"),
            "2026-11-28T01:27:46.365Z warning w\n");
  EXPECT_NE(MakeLineFormatter(""), nullptr);  // the default is text
}

TEST(LineFormatter, FollowsTheClockAcrossSecondsBothWays) {
  auto f = MakeLineFormatter("text");
  EXPECT_EQ(Format(*f, kSomeMs + 1000, spdlog::level::info, "m"),
            "2026-11-28T01:27:47.360Z info m\n");
  EXPECT_EQ(Format(*f, kSomeMs + 24 * 3600 * 1000 - 360, spdlog::level::info, "m"),
            "2026-11-29T01:27:46.000Z info m\n");
  EXPECT_EQ(Format(*f, kSomeMs - 360 - 1, spdlog::level::info, "m"),  // back in time
            "2026-11-28T01:27:45.999Z info m\n");
  EXPECT_EQ(Format(*f, -500, spdlog::level::info, "m"),  // before the epoch: no garbage
            "1969-12-31T23:59:59.500Z info m\n");
}

TEST(LineFormatter, JsonEscapesTheMessageAndParses) {
  auto f = MakeLineFormatter("json");
  ASSERT_NE(f, nullptr);
  const std::string hostile = std::string("q\"b\\s\nn\rr\tt") + '\x01' + '\x1f' + "</script>é";
  std::string line = Format(*f, kSomeMs, spdlog::level::err, hostile);
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);  // one line, whatever the message holds
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["ts"], "2026-11-28T01:27:46.360Z");
  EXPECT_EQ(j["level"], "error");
  EXPECT_EQ(j["msg"], hostile);
  EXPECT_NE(line.find("\\u0001"), std::string::npos);
  EXPECT_EQ(Format(*f, kSomeMs, spdlog::level::info, "plain"),
            "{\"ts\":\"2026-11-28T01:27:46.360Z\",\"level\":\"info\",\"msg\":\"plain\"}\n");
}

TEST(LineFormatter, CloneKeepsTheFormat) {
  auto f = MakeLineFormatter("json")->clone();
  EXPECT_EQ(Format(*f, kSomeMs, spdlog::level::info, "").rfind("{\"ts\":", 0), 0u);
}

TEST(LogInfoCompiled, WritesTheLineAtInfoAndNothingWhenInfoIsOff) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  auto logger = std::make_shared<spdlog::logger>("compiled-test", sink);
  logger->set_formatter(MakeLineFormatter("text"));
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  LogInfoCompiled(FMT_COMPILE("lock granted to '{}' token={} ttl={}s"), "node-1", uint64_t{42}, 10);
  logger->set_level(spdlog::level::warn);
  LogInfoCompiled(FMT_COMPILE("not {}"), "written");
  spdlog::set_default_logger(previous);
  const std::string text = out.str();
  EXPECT_NE(text.find(" info lock granted to 'node-1' token=42 ttl=10s\n"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("written"), std::string::npos);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1);
}

TEST(InitLogging, RejectsAnUnknownFormatNamingTheVariable) {
  for (const std::string& bad : {std::string("yaml"), std::string("JSON"), std::string("text "),
                                 std::string(200, 'x')}) {
    Status s = InitLogging(bad);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("LOG_FORMAT"), std::string::npos);
    EXPECT_LT(s.message().size(), 100u);
  }
}

TEST(ParseLogLevel, AcceptsTheFiveLevelsInAnyCase) {
  EXPECT_EQ(*ParseLogLevel("trace", "LOG_LEVEL"), spdlog::level::trace);
  EXPECT_EQ(*ParseLogLevel("DEBUG", "LOG_LEVEL"), spdlog::level::debug);
  EXPECT_EQ(*ParseLogLevel("info", "LOG_LEVEL"), spdlog::level::info);
  EXPECT_EQ(*ParseLogLevel("Warn", "LOG_LEVEL"), spdlog::level::warn);
  EXPECT_EQ(*ParseLogLevel("error", "LOG_LEVEL"), spdlog::level::err);
}

TEST(ParseLogLevel, RefusesAnythingElseNamingTheSource) {
  auto bad = ParseLogLevel("verbose", "LOG_LEVEL");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("LOG_LEVEL"), std::string::npos);
  EXPECT_NE(bad.status().message().find("'verbose'"), std::string::npos);
  EXPECT_FALSE(ParseLogLevel("", "--log-level").ok());
}

TEST(RateLimitedLog, LetsOneLineThroughPerIntervalAndCountsTheRest) {
  RateLimitedLog limit(std::chrono::seconds(10));
  std::chrono::steady_clock::time_point t0{std::chrono::seconds(1000)};
  uint64_t held_back = 99;
  ASSERT_TRUE(limit.Allow(t0, held_back));
  EXPECT_EQ(held_back, 0u);
  for (int i = 1; i <= 5; ++i) EXPECT_FALSE(limit.Allow(t0 + std::chrono::seconds(i), held_back));
  EXPECT_FALSE(limit.Allow(t0 + std::chrono::milliseconds(9999), held_back));
  ASSERT_TRUE(limit.Allow(t0 + std::chrono::seconds(10), held_back));
  EXPECT_EQ(held_back, 6u);
  ASSERT_TRUE(limit.Allow(t0 + std::chrono::seconds(30), held_back));
  EXPECT_EQ(held_back, 0u);
}

}  // namespace
}  // namespace lm
