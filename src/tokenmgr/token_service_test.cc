#include "tokenmgr/token_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tokenmgr/in_process_service.h"

namespace lm::tokenmgr {
namespace {

using http::Response;

// Requests through a real TokenService on the embedded store (no network).
class TokenServiceRoutes : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(in_process_.Open().ok()); }
  Response Call(std::string method, std::string target) {
    return in_process_.Call(std::move(method), std::move(target));
  }
  std::map<std::string, uint64_t> stats() { return in_process_.router().stats(); }
  InProcessService in_process_;
};

TEST_F(TokenServiceRoutes, StatsAreKeyedByRouteNeverByRawUri) {
  EXPECT_EQ(Call("GET", "/api/token/lock/0?ttl=5&holder=a").status, 200);
  EXPECT_EQ(Call("GET", "/api/token/lock/0?holder=b").status, 409);
  EXPECT_EQ(Call("POST", "/api/tokenmgr/release/not-an-id").status, 404);
  EXPECT_EQ(Call("GET", "/no/such/path?x=1").status, 404);
  EXPECT_EQ(Call("GET", "/api/token/lock/x/y").status, 404);
  auto stats = this->stats();
  EXPECT_EQ(stats["/api/token/lock/:timeout"], 2u);
  EXPECT_EQ(stats["/api/tokenmgr/release/:id"], 1u);
  EXPECT_EQ(stats["(unmatched)"], 2u);
  EXPECT_EQ(stats.size(), 3u);  // routes never hit are not listed
}

TEST_F(TokenServiceRoutes, StatsEndpointCountsItselfAsTheSeedDid) {
  Call("GET", "/healthz");
  Response r = Call("GET", "/api/stats");
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, ::testing::HasSubstr("\"/api/stats\": 1"));
  EXPECT_THAT(r.body, ::testing::HasSubstr("\"/healthz\": 1"));
  r = Call("GET", "/api/tokenmgr/stats");
  EXPECT_THAT(r.body, ::testing::HasSubstr("\"/api/tokenmgr/stats\": 1"));
  EXPECT_THAT(r.body, ::testing::HasSubstr("\"/api/stats\": 1"));
}

TEST_F(TokenServiceRoutes, MetricsCountResponsesByRouteAndCodeAtSendTime) {
  Call("GET", "/api/token/lock/0?holder=a");
  Call("GET", "/api/token/lock/0?holder=b");
  Call("GET", "/api/token/lock/0?ttl=nope");
  Call("GET", "/api/token/release/x");  // wrong method
  std::string m = Call("GET", "/metrics").body;
  EXPECT_THAT(
      m, ::testing::HasSubstr(
             "tokenmgr_http_requests_total{route=\"/api/token/lock/:timeout\",code=\"200\"} 1\n"));
  EXPECT_THAT(
      m, ::testing::HasSubstr(
             "tokenmgr_http_requests_total{route=\"/api/token/lock/:timeout\",code=\"409\"} 1\n"));
  EXPECT_THAT(
      m, ::testing::HasSubstr(
             "tokenmgr_http_requests_total{route=\"/api/token/lock/:timeout\",code=\"400\"} 1\n"));
  EXPECT_THAT(
      m, ::testing::HasSubstr(
             "tokenmgr_http_requests_total{route=\"/api/token/release/:id\",code=\"405\"} 1\n"));
}

TEST_F(TokenServiceRoutes, GrantIsJsonWithAUuidAndAToken) {
  Response r = Call("GET", "/api/token/lock/0?holder=a");
  ASSERT_EQ(r.status, 200);
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["id"].get<std::string>().size(), 36u);
  EXPECT_GT(j["token"].get<uint64_t>(), 0u);
}

TEST_F(TokenServiceRoutes, HeadIsAnsweredAsGetOnReadOnlyRoutes) {
  for (const char* path : {"/api/token/status", "/api/stats", "/healthz", "/readyz", "/metrics"}) {
    Response get = Call("GET", path);
    Response head = Call("HEAD", path);
    EXPECT_EQ(head.status, 200) << path;
    EXPECT_EQ(head.content_type, get.content_type) << path;
  }
  Response r = Call("POST", "/api/token/status");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers[0].second, "GET, HEAD");
}

TEST_F(TokenServiceRoutes, HeadNeverTakesTheLock) {
  Response r = Call("HEAD", "/api/token/lock/0?holder=a");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers[0].second, "GET");
  EXPECT_EQ(Call("GET", "/api/token/lock/0?holder=b").status, 200);
}

TEST_F(TokenServiceRoutes, UnknownQueryParameterIsRefusedNotIgnored) {
  Response r = Call("GET", "/api/token/lock/0?TTL=300");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, ::testing::HasSubstr("'TTL'"));
  EXPECT_EQ(Call("POST", "/api/token/renew/x?ttl=5&holder=a").status, 400);
  EXPECT_EQ(Call("POST", "/api/token/release/x?force=1").status, 400);
  EXPECT_EQ(Call("GET", "/api/token/lock/0?ttl=300&holder=a").status, 200);
}

TEST_F(TokenServiceRoutes, PercentEncodedTimeoutIsDecoded) {
  EXPECT_EQ(Call("GET", "/api/token/lock/%30?holder=a").status, 200);
}

TEST_F(TokenServiceRoutes, MetricsWriteLargeRequestCountsInFullDigits) {
  for (int i = 0; i < 100000; ++i) in_process_.router().Record(ApiRoute("lock"), 200);
  EXPECT_THAT(
      Call("GET", "/metrics").body,
      ::testing::HasSubstr("tokenmgr_http_requests_total{route=\"/api/token/lock/:timeout\","
                           "code=\"200\"} 100000\n"));
}

TEST_F(TokenServiceRoutes, WrongTokenIsRefusedWith401AndABearerChallenge) {
  InProcessService secured;
  ASSERT_TRUE(secured.Open({.auth_token = "s3cret"}).ok());
  Response r =
      secured.Call("GET", "/api/token/lock/0?holder=a", "", {{"authorization", "Bearer no"}});
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(r.headers, ::testing::Contains(
                             std::pair<std::string, std::string>("WWW-Authenticate", "Bearer")));
  EXPECT_EQ(
      secured.Call("GET", "/api/token/lock/0?holder=a", "", {{"authorization", "Bearer s3cret"}})
          .status,
      200);
}

TEST(ApiRoute, NamesTheRoutePatternUnderTheFirstPrefix) {
  EXPECT_EQ(ApiRoute("lock"), "/api/token/lock/:timeout");
  EXPECT_EQ(ApiRoute("release"), "/api/token/release/:id");
}

}  // namespace
}  // namespace lm::tokenmgr
