#include "http/token_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "http/in_process_api.h"

namespace lm::http {
namespace {

TEST(ParseQuery, DecodesPairs) {
  auto q = ParseQuery("ttl=10&holder=node%2D1&flag");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->at("ttl"), "10");
  EXPECT_EQ(q->at("holder"), "node-1");
  EXPECT_EQ(q->at("flag"), "");
}

TEST(ParseQuery, RejectsMalformedRepeatedAndTooMany) {
  EXPECT_FALSE(ParseQuery("a=%zz").ok());
  EXPECT_FALSE(ParseQuery("a=1&a=2").ok());
  std::string many;
  for (int i = 0; i < 40; ++i) {
    many += "k";  // appended piece by piece: GCC 12 warns (-Wrestrict) on "k" + to_string(i)
    many += std::to_string(i);
    many += "=1&";
  }
  EXPECT_FALSE(ParseQuery(many).ok());
  EXPECT_TRUE(ParseQuery("").ok());
  EXPECT_TRUE(ParseQuery("&&").ok());
}

TEST(HttpStatusFor, MapsEveryCode) {
  EXPECT_EQ(HttpStatusFor(StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(StatusCode::kFailedPrecondition), 409);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnauthenticated), 401);
}

// Requests through a real TokenService on the embedded store (no network).
class TokenServiceRoutes : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(in_process_.Open().ok());
    api_ = &in_process_.api();
  }
  Response Call(std::string method, std::string target) {
    return in_process_.Call(std::move(method), std::move(target));
  }
  InProcessApi in_process_;
  TokenService* api_ = nullptr;
};

TEST_F(TokenServiceRoutes, StatsAreKeyedByRouteNeverByRawUri) {
  EXPECT_EQ(Call("GET", "/api/token/lock/0?ttl=5&holder=a").status, 200);
  EXPECT_EQ(Call("GET", "/api/token/lock/0?holder=b").status, 409);
  EXPECT_EQ(Call("POST", "/api/tokenmgr/release/not-an-id").status, 404);
  EXPECT_EQ(Call("GET", "/no/such/path?x=1").status, 404);
  EXPECT_EQ(Call("GET", "/api/token/lock/x/y").status, 404);
  auto stats = api_->stats();
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
  EXPECT_THAT(m, ::testing::HasSubstr(
                     "tokenmgr_http_requests_total{route=\"/api/token/lock/:timeout\",code=\"200\"} 1\n"));
  EXPECT_THAT(m, ::testing::HasSubstr(
                     "tokenmgr_http_requests_total{route=\"/api/token/lock/:timeout\",code=\"409\"} 1\n"));
  EXPECT_THAT(m, ::testing::HasSubstr(
                     "tokenmgr_http_requests_total{route=\"/api/token/lock/:timeout\",code=\"400\"} 1\n"));
  EXPECT_THAT(m, ::testing::HasSubstr(
                     "tokenmgr_http_requests_total{route=\"/api/token/release/:id\",code=\"405\"} 1\n"));
}

TEST_F(TokenServiceRoutes, ExtraRoutesHaveTheirOwnKeyAndAllowHeader) {
  api_->AddGetRoute("/x", [](const Request&, std::shared_ptr<Responder> r) {
    r->Send(JsonResponse(200, "{}"));
  });
  api_->AddRoute("POST", "/x", [](const Request&, std::shared_ptr<Responder> r) {
    r->Send(JsonResponse(201, "{}"));
  });
  EXPECT_EQ(Call("GET", "/x").status, 200);
  EXPECT_EQ(Call("POST", "/x").status, 201);
  Response r = Call("DELETE", "/x");
  EXPECT_EQ(r.status, 405);
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].second, "GET, POST");
  EXPECT_EQ(api_->stats()["/x"], 3u);
}

TEST_F(TokenServiceRoutes, GrantIsJsonWithAUuidAndAToken) {
  Response r = Call("GET", "/api/token/lock/0?holder=a");
  ASSERT_EQ(r.status, 200);
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["id"].get<std::string>().size(), 36u);
  EXPECT_GT(j["token"].get<uint64_t>(), 0u);
}

}  // namespace
}  // namespace lm::http
