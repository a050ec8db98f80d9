#include "app/cli_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace lm::app {
namespace {

using ::testing::HasSubstr;

class CliConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("cli_config_test." + std::to_string(::getpid()) + "." +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string File(const std::string& name, const std::string& content) {
    std::string path = (dir_ / name).string();
    std::ofstream(path) << content;
    return path;
  }
  static cli::Command Command(std::vector<std::string> words) { return *cli::ParseCommand(words); }
  std::filesystem::path dir_;
};

TEST_F(CliConfigTest, DefaultIsTheLocalServerOnListenPort) {
  EXPECT_EQ(ResolveCliConfig(Command({"nodes"}), {})->url, "http://127.0.0.1:8080");
  EXPECT_EQ(ResolveCliConfig(Command({"nodes"}), {{"LISTENPORT", "9000"}})->url,
            "http://127.0.0.1:9000");
  EXPECT_THAT(ResolveCliConfig(Command({"nodes"}), {{"LISTENPORT", "x"}}).status().message(),
              HasSubstr("LISTENPORT"));
}

TEST_F(CliConfigTest, UrlFromFlagWinsOverEnvAndTheAgentsFormWorks) {
  EnvMap env = {{"TOKENMGR_URL", "http://tokenmgr.bitfusion:8080/api/token"}};
  EXPECT_EQ(ResolveCliConfig(Command({"nodes"}), env)->url,
            "http://tokenmgr.bitfusion:8080/api/token");
  EXPECT_EQ(ResolveCliConfig(Command({"nodes", "--url", "http://h:1"}), env)->url, "http://h:1");
  auto bad = ResolveCliConfig(Command({"nodes"}), {{"TOKENMGR_URL", "ftp://x"}});
  EXPECT_THAT(bad.status().message(), HasSubstr("TOKENMGR_URL"));
}

TEST_F(CliConfigTest, TokenFileIsReadAndTrimmed) {
  std::string path = File("token", "  s3cret\n");
  auto c = ResolveCliConfig(Command({"nodes"}), {{"AUTH_TOKEN_FILE", path}});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->token, "s3cret");
  EXPECT_FALSE(ResolveCliConfig(Command({"nodes"}), {})->token.has_value());
}

TEST_F(CliConfigTest, UnreadableTokenFileIsAUsageErrorNamingThePath) {
  std::string missing = (dir_ / "missing").string();
  auto c = ResolveCliConfig(Command({"nodes", "--token-file", missing}), {});
  EXPECT_THAT(c.status().message(), HasSubstr("--token-file"));
  EXPECT_THAT(c.status().message(), HasSubstr(missing));
  std::ostringstream out, err;
  EXPECT_EQ(RunCli({"nodes"}, {{"AUTH_TOKEN_FILE", missing}}, out, err), cli::kUsage);
  EXPECT_THAT(err.str(), HasSubstr(missing));
}

TEST_F(CliConfigTest, UnreachableServerIsExit5NamingTheUrl) {
  std::ostringstream out, err;
  // Port 1 on the loopback: nothing listens there (connection refused at once).
  EXPECT_EQ(RunCli({"nodes"}, {{"TOKENMGR_URL", "http://127.0.0.1:1/api/token"}}, out, err),
            cli::kUnreachable);
  EXPECT_THAT(err.str(), HasSubstr("http://127.0.0.1:1/api/token"));
  EXPECT_THAT(err.str(), HasSubstr("TOKENMGR_URL"));
}

TEST_F(CliConfigTest, BadCommandLineIsExit2) {
  std::ostringstream out, err;
  EXPECT_EQ(RunCli({"cordon"}, {}, out, err), cli::kUsage);
  EXPECT_FALSE(err.str().empty());
}

}  // namespace
}  // namespace lm::app
