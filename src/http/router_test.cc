#include "http/router.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace lm::http {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

class RouterTest : public ::testing::Test {
 protected:
  Response Call(std::string method, std::string target) {
    Request req;
    req.method = std::move(method);
    EXPECT_TRUE(ParseTarget(target, req.path, req.query).ok());
    req.target = std::move(target);
    // Shared: a handler may keep the responder and answer after Call returned.
    auto out = std::make_shared<Response>();
    out->status = 0;
    router_.Handle(req, std::make_shared<Responder>([out](Response r) { *out = std::move(r); }));
    return *out;
  }
  static std::string Allow(const Response& r) {
    for (const auto& [k, v] : r.headers) {
      if (k == "Allow") return v;
    }
    return "";
  }
  Router router_;
};

TEST_F(RouterTest, ExactPathAnswersGetAndHeadAndCountsByPattern) {
  router_.Get("/healthz", [] { return JsonResponse(200, "{}"); });
  EXPECT_EQ(Call("GET", "/healthz").status, 200);
  EXPECT_EQ(Call("HEAD", "/healthz").status, 200);
  Response r = Call("POST", "/healthz");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(Allow(r), "GET, HEAD");
  EXPECT_THAT(router_.stats(), ElementsAre(Pair("/healthz", 3u)));
}

TEST_F(RouterTest, ParameterIsOneNonEmptySegment) {
  std::string seen;
  router_.Add("POST", "/api/token/release/:id",
              [&](const Request&, std::string_view id, std::shared_ptr<Responder> r) {
                seen = std::string(id);
                r->Send(JsonResponse(200, "{}"));
              });
  EXPECT_EQ(Call("POST", "/api/token/release/a%20b").status, 200);
  EXPECT_EQ(seen, "a b");
  EXPECT_EQ(Call("POST", "/api/token/release/").status, 404);
  EXPECT_EQ(Call("POST", "/api/token/release/x/y").status, 404);
  EXPECT_EQ(Call("POST", "/api/token/release").status, 404);
  EXPECT_THAT(router_.stats(),
              ElementsAre(Pair("(unmatched)", 3u), Pair("/api/token/release/:id", 1u)));
}

TEST_F(RouterTest, ParameterMayBeFollowedByAFixedSuffix) {
  std::string seen;
  auto answer = [&](int status) {
    return [&seen, status](const Request&, std::string_view p, std::shared_ptr<Responder> r) {
      seen = std::string(p);
      r->Send(JsonResponse(status, "{}"));
    };
  };
  router_.Add("PUT", "/api/nodes/:node", answer(200));
  router_.Add("POST", "/api/nodes/:node/cordon", answer(201));
  EXPECT_EQ(Call("POST", "/api/nodes/n1/cordon").status, 201);
  EXPECT_EQ(seen, "n1");
  EXPECT_EQ(Call("PUT", "/api/nodes/n2").status, 200);
  EXPECT_EQ(seen, "n2");
  EXPECT_EQ(Call("POST", "/api/nodes//cordon").status, 404);
  EXPECT_EQ(Call("POST", "/api/nodes/a/b/cordon").status, 404);
  EXPECT_EQ(Call("POST", "/api/nodes/n1/cordonx").status, 404);
  EXPECT_EQ(Call("POST", "/api/nodes/cordon").status, 405);  // the node "cordon", PUT only
  EXPECT_THAT(router_.stats(), ElementsAre(Pair("(unmatched)", 3u), Pair("/api/nodes/:node", 2u),
                                           Pair("/api/nodes/:node/cordon", 1u)));
}

TEST_F(RouterTest, GetThatRefusesHeadNamesOnlyGet) {
  router_.Add(
      "GET", "/lock/:t",
      [](const Request&, std::string_view, std::shared_ptr<Responder> r) {
        r->Send(JsonResponse(200, "{}"));
      },
      Router::Head::kRefuse);
  Response r = Call("HEAD", "/lock/0");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(Allow(r), "GET");
}

TEST_F(RouterTest, SeveralMethodsOnOnePathShareOneKeyAndAllow) {
  auto answer = [](int status) {
    return [status](const Request&, std::string_view, std::shared_ptr<Responder> r) {
      r->Send(JsonResponse(status, "{}"));
    };
  };
  router_.Add("POST", "/x", answer(201));
  router_.Add("GET", "/x", answer(200));
  EXPECT_EQ(Call("GET", "/x").status, 200);
  EXPECT_EQ(Call("POST", "/x").status, 201);
  Response r = Call("DELETE", "/x");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(Allow(r), "GET, HEAD, POST");
  EXPECT_EQ(router_.stats()["/x"], 3u);
}

TEST_F(RouterTest, ResponsesAreCountedWhenSentAndRecordAddsToARoute) {
  std::shared_ptr<Responder> later;
  router_.Add("GET", "/wait", [&](const Request&, std::string_view, std::shared_ptr<Responder> r) {
    later = std::move(r);
  });
  Call("GET", "/wait");
  EXPECT_TRUE(router_.counts().empty());
  later->Send(JsonResponse(409, "{}"));
  router_.Record("/wait", 200);
  router_.Record("/not-a-route", 200);  // ignored
  auto counts = router_.counts();
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts[0].route, "/wait");
  EXPECT_EQ(counts[0].status, 200);
  EXPECT_EQ(counts[1].status, 409);
  EXPECT_EQ(counts[1].responses, 1u);
}

}  // namespace
}  // namespace lm::http
