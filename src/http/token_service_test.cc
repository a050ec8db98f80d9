#include "http/token_service.h"

#include <gtest/gtest.h>

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
  for (int i = 0; i < 40; ++i) many += "k" + std::to_string(i) + "=1&";
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

}  // namespace
}  // namespace lm::http
