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

TEST(ParseQuery, RefusesAParameterTheRouteDoesNotTakeNamingIt) {
  auto q = ParseQuery("TTL=300", {"ttl", "holder"});
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(q.status().message(), ::testing::HasSubstr("'TTL'"));
  EXPECT_THAT(q.status().message(), ::testing::HasSubstr("ttl, holder"));
  EXPECT_TRUE(ParseQuery("ttl=3&holder=a", {"ttl", "holder"}).ok());
  EXPECT_THAT(ParseQuery("x", {}).status().message(), ::testing::HasSubstr("takes none"));
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
  EXPECT_EQ(r.headers[0].second, "GET, HEAD, POST");
  EXPECT_EQ(api_->stats()["/x"], 3u);
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

// A service with a bearer token configured.
class TokenServiceAuth : public ::testing::Test {
 protected:
  TokenServiceAuth() : api_(lock_, {.auth_token = "s3cret"}) {}
  bool Authorized(std::string header) {
    Request req;
    req.headers.emplace_back("authorization", std::move(header));
    return api_.Authorized(req);
  }
  class NoLock : public lock::LockService {
   public:
    CancelFn Acquire(lock::AcquireRequest, GrantDone) override {
      return [] {};
    }
    void Release(std::string_view, StatusDone) override {}
    void Renew(std::string, lock::Seconds, GrantDone) override {}
    void GetView(ViewDone) override {}
    lock::Counters CountersSnapshot() const override { return {}; }
    bool Ready() const override { return true; }
    void Shutdown() override {}
    const lock::Options& options() const override { return options_; }
    lock::Options options_;
  } lock_;
  TokenService api_;
};

TEST_F(TokenServiceAuth, BearerSchemeIsCaseInsensitive) {
  EXPECT_TRUE(Authorized("Bearer s3cret"));
  EXPECT_TRUE(Authorized("bearer s3cret"));
  EXPECT_TRUE(Authorized("BEARER  s3cret"));
  EXPECT_FALSE(Authorized("Basic s3cret"));
  EXPECT_FALSE(Authorized("Bearers3cret"));
  EXPECT_FALSE(Authorized("bearer S3cret"));  // the token itself is exact
  EXPECT_FALSE(Authorized("bearer "));
}

}  // namespace
}  // namespace lm::http
