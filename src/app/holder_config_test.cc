#include "app/holder_config.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <vector>

namespace lm::app {
namespace {

StatusOr<HolderConfig> ParseHolder(std::vector<const char*> args, EnvMap env) {
  args.insert(args.begin(), "license-holder");
  return ParseHolderConfig(static_cast<int>(args.size()), args.data(), env);
}

TEST(HolderConfig, SeedConfigMapWorks) {
  auto c = ParseHolder({}, {{"NODE_NAME", "gpu-1"}, {"TOKENMGR_URL", "http://tokenmgr.bitfusion:8080/api/token"},
                      {"GPUTYPES", "K80_servers"}, {"K80_servers_1", "172.16.31.42:56001"}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->command, HolderCommand::kRun);
  EXPECT_EQ(c->agent.node, "gpu-1");
  EXPECT_EQ(c->agent.pool_dir, "/mnt/bitfusionio");
  EXPECT_EQ(c->agent.host_dir, "/etc/bitfusionio");
  EXPECT_EQ(c->agent.heartbeat.count(), 10);
  EXPECT_EQ(c->agent.claim_ttl.count(), 60);
  EXPECT_EQ(c->health_port, 8081);
  EXPECT_EQ(c->agent.servers_conf, "### K80_servers.conf\n172.16.31.42:56001\n\n");
}

TEST(HolderConfig, SubcommandsAndSeedAlias) {
  EXPECT_EQ(ParseHolder({"release"}, {{"NODE_NAME", "n"}})->command, HolderCommand::kRelease);
  EXPECT_EQ(ParseHolder({"daemonset"}, {{"NODE_NAME", "n"}})->command, HolderCommand::kRun);
  EXPECT_FALSE(ParseHolder({"bogus"}, {{"NODE_NAME", "n"}}).ok());
}

TEST(HolderConfig, FlagsWinOverEnv) {
  auto c = ParseHolder({"--node-name", "flag-node", "--heartbeat-seconds", "2", "--claim-ttl-seconds", "6"},
                 {{"NODE_NAME", "env-node"}, {"HEARTBEAT_SECONDS", "5"}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->agent.node, "flag-node");
  EXPECT_EQ(c->agent.heartbeat.count(), 2);
}

TEST(HolderConfig, MissingNodeNameIsAClearError) {
  auto c = ParseHolder({}, {});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("NODE_NAME"), std::string::npos);
}

TEST(HolderConfig, BadValuesNameTheVariable) {
  const std::pair<const char*, const char*> bad[] = {
      {"NODE_NAME", "bad node"},      {"POD_NAME", "<script>"},     {"HEARTBEAT_SECONDS", "0"},
      {"HEARTBEAT_SECONDS", "ten"},   {"CLAIM_TTL_SECONDS", "5"},   {"HEALTH_PORT", "65536"},
      {"LOG_FORMAT", "yaml"},         {"POOL_DIR", "relative/dir"}, {"HOST_DIR", "/a/../etc"},
      {"RELEASE_ON_EXIT", "maybe"},   {"GPUTYPES", "bad/group"},    {"TOKENMGR_AUTH_TOKEN_FILE", "/nonexistent"},
      {"REPORT_STATUS", "yes"},       {"REPORT_STATUS", "off"},
  };
  for (auto [var, value] : bad) {
    EnvMap env = {{"NODE_NAME", "n"}};
    env[var] = value;
    auto c = ParseHolder({}, env);
    ASSERT_FALSE(c.ok()) << var << "=" << value;
    EXPECT_NE(c.status().message().find(std::string(var).substr(0, 8)), std::string::npos)
        << c.status().message();
  }
}

TEST(HolderConfig, ServerGroupMistakesFailAtStartUpNamingTheVariable) {
  const std::pair<EnvMap, const char*> bad[] = {
      {{{"GPUTYPES", "K80"}}, "K80_1"},
      {{{"GPUTYPES", "K80"}, {"k80_1", "10.0.0.1:56001"}}, "k80_1"},
      {{{"GPUTYPES", "K80 K80"}, {"K80_1", "10.0.0.1:56001"}}, "GPUTYPES"},
      {{{"GPUTYPES", "K80"}, {"K80_1", "10.0.0.1:56001"}, {"K80_3", "10.0.0.3:56001"}}, "K80_3"},
      {{{"GPUTYPES", "K80"}, {"K80_1", "fd00::1:56001"}}, "K80_1"},
  };
  for (const auto& [vars, name] : bad) {
    EnvMap env = vars;
    env["NODE_NAME"] = "n";
    auto c = ParseHolder({}, env);
    ASSERT_FALSE(c.ok()) << name;
    EXPECT_NE(c.status().message().find(name), std::string::npos) << c.status().message();
  }
}

TEST(HolderConfig, Ipv6ServersAreWrittenAsGiven) {
  auto c = ParseHolder({}, {{"NODE_NAME", "n"}, {"GPUTYPES", "K80"}, {"K80_1", "[fd00::1]:56001"}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->agent.servers_conf, "### K80.conf\n[fd00::1]:56001\n\n");
}

TEST(HolderConfig, ClaimTtlMustCoverThreeHeartbeats) {
  EXPECT_FALSE(ParseHolder({}, {{"NODE_NAME", "n"}, {"HEARTBEAT_SECONDS", "10"}, {"CLAIM_TTL_SECONDS", "29"}}).ok());
  EXPECT_TRUE(ParseHolder({}, {{"NODE_NAME", "n"}, {"HEARTBEAT_SECONDS", "10"}, {"CLAIM_TTL_SECONDS", "30"}}).ok());
}

TEST(HolderConfig, ReleaseOnExitFromFlagOrEnv) {
  EXPECT_TRUE(ParseHolder({"--release-on-exit"}, {{"NODE_NAME", "n"}})->agent.release_on_exit);
  EXPECT_TRUE(ParseHolder({}, {{"NODE_NAME", "n"}, {"RELEASE_ON_EXIT", "true"}})->agent.release_on_exit);
  EXPECT_FALSE(ParseHolder({}, {{"NODE_NAME", "n"}})->agent.release_on_exit);
}

TEST(HolderConfig, ReportingIsOnByDefaultAndTurnsOffByFlagOrEnv) {
  auto on = ParseHolder({}, {{"NODE_NAME", "n"}});
  ASSERT_TRUE(on.ok()) << on.status().ToString();
  EXPECT_TRUE(on->agent.report);
  EXPECT_FALSE(on->agent.version.empty());
  EXPECT_TRUE(ParseHolder({}, {{"NODE_NAME", "n"}, {"REPORT_STATUS", "true"}})->agent.report);
  EXPECT_FALSE(ParseHolder({}, {{"NODE_NAME", "n"}, {"REPORT_STATUS", "false"}})->agent.report);
  EXPECT_FALSE(ParseHolder({}, {{"NODE_NAME", "n"}, {"REPORT_STATUS", "0"}})->agent.report);
  EXPECT_FALSE(ParseHolder({"--no-report"}, {{"NODE_NAME", "n"}})->agent.report);
  // The flag wins over the variable, as everywhere.
  EXPECT_FALSE(ParseHolder({"--no-report"}, {{"NODE_NAME", "n"}, {"REPORT_STATUS", "true"}})
                   ->agent.report);
  auto bad = ParseHolder({}, {{"NODE_NAME", "n"}, {"REPORT_STATUS", "enabled"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("REPORT_STATUS must be true or false (got 'enabled')"),
            std::string::npos)
      << bad.status().message();
}

TEST(HolderConfig, NfdFeatureFileIsOffUnlessSetAndBadValuesNameTheVariable) {
  EXPECT_EQ(ParseHolder({}, {{"NODE_NAME", "n"}})->agent.nfd_feature_file, "");
  std::string dir = ::testing::TempDir() + "nfd-features-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir + "/a-directory");
  std::string good = dir + "/bitfusion-license";
  auto c = ParseHolder({}, {{"NODE_NAME", "n"}, {"NFD_FEATURE_FILE", good}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->agent.nfd_feature_file, good);
  auto flag = ParseHolder({"--nfd-feature-file", good.c_str()}, {{"NODE_NAME", "n"}});
  ASSERT_TRUE(flag.ok()) << flag.status().ToString();
  EXPECT_EQ(flag->agent.nfd_feature_file, good);
  for (const std::string& bad :
       {std::string("features.d/bitfusion-license"), dir + "/missing/bitfusion-license",
        dir + "/a-directory", dir + "/", dir + "/.bitfusion-license", dir + "/x/../y"}) {
    auto r = ParseHolder({}, {{"NODE_NAME", "n"}, {"NFD_FEATURE_FILE", bad}});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("NFD_FEATURE_FILE"), std::string::npos)
        << r.status().message();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lm::app
