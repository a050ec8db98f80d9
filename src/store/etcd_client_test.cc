#include "store/etcd_client.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <fstream>
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
  auto tls = ParseEtcdEndpoint("https://10.1.2.3:2379");
  ASSERT_TRUE(tls.ok());
  EXPECT_TRUE(tls->tls);
  EXPECT_EQ(tls->host, "10.1.2.3");
  EXPECT_FALSE(ParseEtcdEndpoint("http://etcd:2379")->tls);
  EXPECT_FALSE(ParseEtcdEndpoint("unix://etcd:2379").ok());
  EXPECT_FALSE(ParseEtcdEndpoint("http://etcd").ok());
  EXPECT_FALSE(ParseEtcdEndpoint("http://etcd:23x9").ok());
}

// Create() loads the TLS files; what it refuses is refused before any connection is made.
class EtcdClientTls : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/etcd-client-tls-XXXXXX";
    dir_ = mkdtemp(tmpl);
    garbage_ = dir_ + "/garbage.pem";
    std::ofstream(garbage_)
        << "-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  StatusOr<std::unique_ptr<EtcdClient>> Create(std::vector<std::string> endpoints,
                                               EtcdTlsFiles tls) {
    return EtcdClient::Create(io_, {.endpoints = std::move(endpoints), .tls = std::move(tls)});
  }
  boost::asio::io_context io_;
  std::string dir_, garbage_;
};

TEST_F(EtcdClientTls, HttpsWithTheSystemCasNeedsNoFiles) {
  EXPECT_TRUE(Create({"https://127.0.0.1:2379"}, {}).ok());
}

TEST_F(EtcdClientTls, CaFileThatIsNotACertificateIsRefused) {
  auto c =
      Create({"https://127.0.0.1:2379"}, {.ca_file = garbage_, .cert_file = "", .key_file = ""});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("CA file '" + garbage_ + "'"), std::string::npos)
      << c.status().message();
}

TEST_F(EtcdClientTls, ClientCertificateThatIsNotACertificateIsRefused) {
  auto c = Create({"https://127.0.0.1:2379"},
                  {.ca_file = "", .cert_file = garbage_, .key_file = garbage_});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("client certificate '" + garbage_ + "'"), std::string::npos)
      << c.status().message();
}

TEST_F(EtcdClientTls, MissingCaFileIsRefused) {
  auto c = Create({"https://127.0.0.1:2379"},
                  {.ca_file = dir_ + "/missing.pem", .cert_file = "", .key_file = ""});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("missing.pem"), std::string::npos);
}

TEST_F(EtcdClientTls, FilesWithHttpEndpointsAndMixedSchemesAreRefused) {
  EXPECT_FALSE(
      Create({"http://127.0.0.1:2379"}, {.ca_file = garbage_, .cert_file = "", .key_file = ""})
          .ok());
  EXPECT_FALSE(Create({"https://127.0.0.1:2379", "http://127.0.0.1:2380"}, {}).ok());
}

}  // namespace
}  // namespace lm::store
