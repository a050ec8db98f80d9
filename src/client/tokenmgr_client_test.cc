#include "client/tokenmgr_client.h"

#include <gtest/gtest.h>

namespace lm::client {
namespace {

TEST(ParseHttpUrl, AcceptsSeedDefault) {
  auto u = ParseHttpUrl("http://tokenmgr.bitfusion:8080/api/token");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "tokenmgr.bitfusion");
  EXPECT_EQ(u->port, "8080");
  EXPECT_EQ(u->base_path, "/api/token");
  auto v = ParseHttpUrl("http://127.0.0.1/api/tokenmgr/");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->port, "80");
  EXPECT_EQ(v->base_path, "/api/tokenmgr");
}

TEST(ParseHttpUrl, RejectsOthers) {
  for (const char* bad : {"", "https://x/api", "ftp://x", "http://", "http://h:0/a", "http://h:99999/",
                          "http://h:x/", "http://h/a b", "http://h/a?q", "http://bad host/"}) {
    EXPECT_FALSE(ParseHttpUrl(bad).ok()) << bad;
  }
}

TEST(ParseLockResponse, Grant) {
  auto g = ParseLockResponse(200, R"({"id":"abc","token":7,"ttl":10,"expires_in_ms":10000})");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->id, "abc");
  EXPECT_EQ(g->token, 7u);
}

TEST(ParseLockResponse, BusyAndErrors) {
  EXPECT_EQ(ParseLockResponse(409, R"({"Error":"held by x"})").status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(ParseLockResponse(503, "").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(ParseLockResponse(200, "garbage").status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(ParseLockResponse(200, R"({"id":""})").status().code(), StatusCode::kUnavailable);
  // The seed's tokenmgr answers without a token: refuse, since claims need fencing.
  EXPECT_EQ(ParseLockResponse(200, R"({"id":"bea9eccb-f571-498d-ba46-42a5cbe25bd7"})").status().code(),
            StatusCode::kUnavailable);
}

}  // namespace
}  // namespace lm::client
