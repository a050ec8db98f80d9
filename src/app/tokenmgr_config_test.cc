#include "app/tokenmgr_config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <vector>

namespace lm::app {
namespace {

StatusOr<TokenmgrConfig> Parse(std::vector<const char*> args, EnvMap env = {}) {
  args.insert(args.begin(), "tokenmgr");
  return ParseTokenmgrConfig(static_cast<int>(args.size()), args.data(), env);
}

TEST(TokenmgrConfig, DefaultsMatchTheSeed) {
  auto c = Parse({});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->port, 8080);
  EXPECT_EQ(c->lock.default_ttl.count(), 10);
  EXPECT_EQ(c->bind_address, "0.0.0.0");
  EXPECT_TRUE(c->state_file.empty());
  EXPECT_FALSE(c->auth_token.has_value());
}

TEST(TokenmgrConfig, EnvIsRead) {
  auto c = Parse({}, {{"LISTENPORT", "9090"}, {"LOCKDURATION", "30"}, {"STATE_FILE", "/x"},
                      {"MAX_WAIT", "60"}, {"MAX_TTL", "120"}, {"LOG_FORMAT", "json"}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->port, 9090);
  EXPECT_EQ(c->lock.default_ttl.count(), 30);
  EXPECT_EQ(c->state_file, "/x");
  EXPECT_EQ(c->lock.max_wait.count(), 60);
  EXPECT_EQ(c->lock.max_ttl.count(), 120);
  EXPECT_EQ(c->log_format, "json");
}

TEST(TokenmgrConfig, FlagsWinOverEnv) {
  auto c = Parse({"--listen-port", "7000", "-d", "5"}, {{"LISTENPORT", "9090"}, {"LOCKDURATION", "30"}});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->port, 7000);
  EXPECT_EQ(c->lock.default_ttl.count(), 5);
}

TEST(TokenmgrConfig, SeedStyleFlagsAreAccepted) {
  auto c = Parse({"-listenport", "7001", "-lockduration=4", "-tplpath", "."});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->port, 7001);
  EXPECT_EQ(c->lock.default_ttl.count(), 4);
}

TEST(TokenmgrConfig, BadEnvValuesNameTheVariable) {
  const std::pair<const char*, const char*> bad[] = {
      {"LISTENPORT", "abc"},     {"LISTENPORT", "70000"}, {"LISTENPORT", "-1"},
      {"LOCKDURATION", "0"},     {"LOCKDURATION", "1.5"}, {"MAX_WAIT", "0x10"},
      {"MAX_TTL", "99999999999"}, {"LOG_FORMAT", "xml"},  {"MAX_CONNECTIONS", "0"},
      {"AUTH_TOKEN_FILE", "/nonexistent/token"},
      {"MAX_HEADER_BYTES", "100"}, {"MAX_HEADER_BYTES", "99999999"}, {"MAX_HEADER_COUNT", "2"},
      {"MAX_HEADER_COUNT", "x"},   {"MAX_BODY_BYTES", "-5"},       {"MAX_BODY_BYTES", "1e9"},
  };
  for (auto [var, value] : bad) {
    auto c = Parse({}, {{var, value}});
    ASSERT_FALSE(c.ok()) << var << "=" << value;
    EXPECT_NE(c.status().message().find(var), std::string::npos) << c.status().message();
  }
}

TEST(TokenmgrConfig, RequestLimitsAreConfigurable) {
  auto d = Parse({});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->server.max_header_bytes, 8192u);
  EXPECT_EQ(d->server.max_header_count, 64u);
  EXPECT_EQ(d->server.max_body_bytes, 65536u);
  auto c = Parse({"--max-header-count", "10"},
                 {{"MAX_HEADER_BYTES", "4096"}, {"MAX_HEADER_COUNT", "20"}, {"MAX_BODY_BYTES", "0"}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->server.max_header_bytes, 4096u);
  EXPECT_EQ(c->server.max_header_count, 10u);  // the flag wins
  EXPECT_EQ(c->server.max_body_bytes, 0u);     // no request of ours has a body
}

TEST(TokenmgrConfig, LockDurationAboveMaxTtlIsRejected) {
  auto c = Parse({}, {{"LOCKDURATION", "100"}, {"MAX_TTL", "50"}});
  EXPECT_FALSE(c.ok());
}

TEST(TokenmgrConfig, UnknownFlagIsAnError) {
  EXPECT_FALSE(Parse({"--no-such-flag"}).ok());
  EXPECT_FALSE(Parse({"--listen-port"}).ok());
}

TEST(TokenmgrConfig, AuthTokenFileIsReadAndValidated) {
  char tmpl[] = "/tmp/authtok.XXXXXX";
  int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(tmpl) << "  s3cret-token\n";
  auto c = Parse({"--auth-token-file", tmpl});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(*c->auth_token, "s3cret-token");
  std::ofstream(tmpl) << "\n";
  EXPECT_FALSE(Parse({"--auth-token-file", tmpl}).ok());
  std::ofstream(tmpl) << "two words";
  EXPECT_FALSE(Parse({"--auth-token-file", tmpl}).ok());
  unlink(tmpl);
}

TEST(TokenmgrConfig, BadBindAddressNamesItsSource) {
  auto env = Parse({}, {{"BIND_ADDRESS", "not-an-ip"}});
  ASSERT_FALSE(env.ok());
  EXPECT_NE(env.status().message().find("BIND_ADDRESS"), std::string::npos);
  auto flag = Parse({"--bind-address", "256.1.1.1"});
  ASSERT_FALSE(flag.ok());
  EXPECT_NE(flag.status().message().find("--bind-address"), std::string::npos);
  EXPECT_TRUE(Parse({"--bind-address", "::1"}).ok());
  EXPECT_TRUE(Parse({}, {{"BIND_ADDRESS", "127.0.0.1"}}).ok());
}

}  // namespace
}  // namespace lm::app
