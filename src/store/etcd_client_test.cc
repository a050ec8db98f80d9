#include "store/etcd_client.h"

#include <gtest/gtest.h>

#include <vector>

namespace lm::store {
namespace {

TEST(EtcdClient, Base64RoundTripsEveryLength) {
  for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", "/t/lock",
                                                       std::string("\0\xff", 2)}) {
    auto back = Base64Decode(Base64Encode(s));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(Base64Encode("/t/lock"), "L3QvbG9jaw==");
}

TEST(EtcdClient, Base64DecodeRejectsGarbage) { EXPECT_FALSE(Base64Decode("a$b=").ok()); }

TEST(EtcdClient, PrefixEndIsTheNextKey) {
  EXPECT_EQ(PrefixEnd("/tokenmgr/"), "/tokenmgr0");
  EXPECT_EQ(PrefixEnd(std::string("a\xff", 2)), "b");
}

TEST(EtcdClient, JsonIntReadsGatewayStringsAndMissingFields) {
  nlohmann::json j = {{"revision", "42"}, {"n", 7}};
  EXPECT_EQ(JsonInt(j, "revision"), 42);
  EXPECT_EQ(JsonInt(j, "n"), 7);
  EXPECT_EQ(JsonInt(j, "absent"), 0);
}

TEST(EtcdClient, ParsesEndpointUrls) {
  auto e = ParseEtcdEndpoint("http://127.0.0.1:2379/");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, "2379");
  EXPECT_TRUE(ParseEtcdEndpoint("etcd.kube-system:2379").ok());
  EXPECT_EQ(ParseEtcdEndpoint("http://[::1]:2379")->host, "::1");
  EXPECT_FALSE(ParseEtcdEndpoint("https://etcd:2379").ok());  // TLS: not supported yet
  EXPECT_FALSE(ParseEtcdEndpoint("http://etcd").ok());
  EXPECT_FALSE(ParseEtcdEndpoint("http://etcd:23x9").ok());
}

}  // namespace
}  // namespace lm::store
