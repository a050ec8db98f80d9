#include "license/servers_conf.h"

#include <gtest/gtest.h>

namespace lm::license {
namespace {

TEST(ServersConf, SeedExactFormat) {
  std::map<std::string, std::string> env = {{"GPUTYPES", "K80_servers v100_servers"},
                                            {"K80_servers_1", "10.0.0.1:56001"},
                                            {"K80_servers_2", "10.0.0.2:56001"},
                                            {"v100_servers_1", "10.0.0.3:53334"}};
  auto g = ParseServerGroups(env);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(RenderServersConf(*g),
            "### K80_servers.conf\n10.0.0.1:56001\n10.0.0.2:56001\n\n### v100_servers.conf\n"
            "10.0.0.3:53334\n\n");
}

TEST(ServersConf, StopsAtFirstMissingIndex) {
  std::map<std::string, std::string> env = {
      {"GPUTYPES", "g"}, {"g_1", "1.1.1.1:1"}, {"g_3", "3.3.3.3:3"}};
  auto g = ParseServerGroups(env);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ((*g)[0].servers.size(), 1u);
}

TEST(ServersConf, NoGputypesMeansEmpty) {
  auto g = ParseServerGroups({});
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(RenderServersConf(*g), "");
}

TEST(ServersConf, BadValuesNameTheVariable) {
  auto bad_group = ParseServerGroups({{"GPUTYPES", "ok bad/name"}});
  ASSERT_FALSE(bad_group.ok());
  EXPECT_NE(bad_group.status().message().find("GPUTYPES"), std::string::npos);
  for (const char* v : {"1.2.3.4", "1.2.3.4:0", "1.2.3.4:70000", "1.2.3.4:80\nX", ":80", "a b:1"}) {
    auto r = ParseServerGroups({{"GPUTYPES", "g"}, {"g_1", v}});
    ASSERT_FALSE(r.ok()) << v;
    EXPECT_NE(r.status().message().find("g_1"), std::string::npos);
  }
}

}  // namespace
}  // namespace lm::license
