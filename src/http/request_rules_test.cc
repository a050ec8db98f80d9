#include "http/request_rules.h"

#include <gtest/gtest.h>

namespace lm::http {
namespace {

TEST(HttpStatusFor, MapsEveryCode) {
  EXPECT_EQ(HttpStatusFor(StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(StatusCode::kFailedPrecondition), 409);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnavailable), 503);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnauthenticated), 401);
}

TEST(CrossSite, OriginMustMatchHostAndNonBrowsersPass) {
  Request req;
  EXPECT_FALSE(CrossSite(req));
  req.headers = {{"host", "127.0.0.1:8080"}, {"origin", "http://127.0.0.1:8080"}};
  EXPECT_FALSE(CrossSite(req));
  req.headers = {{"host", "127.0.0.1:8080"}, {"origin", "http://evil.example"}};
  EXPECT_TRUE(CrossSite(req));
  req.headers = {{"origin", "null"}};
  EXPECT_TRUE(CrossSite(req));
  req.headers = {{"sec-fetch-site", "cross-site"}};
  EXPECT_TRUE(CrossSite(req));
}

}  // namespace
}  // namespace lm::http
