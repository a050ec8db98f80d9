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

// The error for `env` must name every string in `names`.
void ExpectErrorNaming(const std::map<std::string, std::string>& env,
                       std::initializer_list<const char*> names) {
  auto g = ParseServerGroups(env);
  ASSERT_FALSE(g.ok()) << RenderServersConf(*g);
  EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument);
  for (const char* name : names) {
    EXPECT_NE(g.status().message().find(name), std::string::npos)
        << name << " not in: " << g.status().message();
  }
}

TEST(ServersConf, AGapInTheNumberingIsAnError) {
  ExpectErrorNaming({{"GPUTYPES", "K80"}, {"K80_1", "1.1.1.1:1"}, {"K80_3", "3.3.3.3:3"}},
                    {"K80_3", "K80_2"});
}

TEST(ServersConf, ALeadingZeroIsAnError) {
  ExpectErrorNaming({{"GPUTYPES", "K80"}, {"K80_1", "1.1.1.1:1"}, {"K80_01", "3.3.3.3:3"}},
                    {"K80_01"});
}

TEST(ServersConf, AGroupWithoutEntriesIsAnError) {
  ExpectErrorNaming({{"GPUTYPES", "K80"}}, {"GPUTYPES", "K80_1"});
}

TEST(ServersConf, ACaseMismatchIsAnErrorThatSaysSo) {
  ExpectErrorNaming({{"GPUTYPES", "K80"}, {"k80_1", "1.1.1.1:1"}},
                    {"GPUTYPES", "K80_1", "k80_1", "case-sensitive"});
}

TEST(ServersConf, AGroupListedTwiceIsAnError) {
  ExpectErrorNaming({{"GPUTYPES", "K80 K80"}, {"K80_1", "1.1.1.1:1"}}, {"GPUTYPES", "'K80' twice"});
}

TEST(ServersConf, OtherGroupsWithSharedPrefixesAreNotStrays) {
  auto g = ParseServerGroups({{"GPUTYPES", "K80 K80_servers"},
                              {"K80_1", "1.1.1.1:1"},
                              {"K80_servers_1", "2.2.2.2:2"},
                              {"K80_servers_2", "3.3.3.3:3"}});
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(RenderServersConf(*g),
            "### K80.conf\n1.1.1.1:1\n\n### K80_servers.conf\n2.2.2.2:2\n3.3.3.3:3\n\n");
}

TEST(ServersConf, AcceptsBracketedIpv6AndDnsNames) {
  auto g = ParseServerGroups({{"GPUTYPES", "g"},
                              {"g_1", "[fd00::1]:56001"},
                              {"g_2", "[::1]:1"},
                              {"g_3", "gpu-server.example.com:56001"}});
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(RenderServersConf(*g),
            "### g.conf\n[fd00::1]:56001\n[::1]:1\ngpu-server.example.com:56001\n\n");
}

TEST(ServersConf, RejectsMalformedIpv6) {
  for (const char* v : {"fd00::1:56001", "[fd00::1]", "[fd00::1:56001", "[]:1", "[:1",
                        "[fd00::g]:1", "[1.2.3.4]:1", "[fd00::1]x:1"}) {
    auto r = ParseServerGroups({{"GPUTYPES", "g"}, {"g_1", v}});
    ASSERT_FALSE(r.ok()) << v;
    EXPECT_NE(r.status().message().find("g_1"), std::string::npos) << r.status().message();
  }
  auto bare = ParseServerGroups({{"GPUTYPES", "g"}, {"g_1", "fd00::1:56001"}});
  EXPECT_NE(bare.status().message().find("brackets"), std::string::npos);
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
