#include "http/query.h"

#include <gmock/gmock.h>
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

TEST(ParseForm, PlusIsASpaceAndEscapesAreDecoded) {
  auto f = ParseForm("holder=web+1&wait=5%3Fttl%3D1&plus=%2B");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->at("holder"), "web 1");
  EXPECT_EQ(f->at("wait"), "5?ttl=1");
  EXPECT_EQ(f->at("plus"), "+");
  EXPECT_FALSE(ParseForm("a=1&a=2").ok());
}

}  // namespace
}  // namespace lm::http
