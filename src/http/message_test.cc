#include "http/message.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace lm::http {
namespace {

class RecordingSink final : public ResponseSink {
 public:
  void Deliver(Response r) override { delivered.push_back(std::move(r)); }
  std::vector<Response> delivered;
};

class RecordingObserver final : public ResponseObserver {
 public:
  void OnResponse(int tag, int status) override { seen.emplace_back(tag, status); }
  std::vector<std::pair<int, int>> seen;
};

TEST(Responder, DeliversOnlyTheFirstResponseToItsSink) {
  auto sink = std::make_shared<RecordingSink>();
  Responder r(sink);
  r.Send(JsonResponse(200, "{}"));
  r.Send(JsonResponse(500, "{}"));
  ASSERT_EQ(sink->delivered.size(), 1u);
  EXPECT_EQ(sink->delivered[0].status, 200);
  EXPECT_TRUE(r.done());
}

TEST(Responder, DropsItsStrongHoldOnTheSinkOnceDone) {
  auto sink = std::make_shared<RecordingSink>();
  Responder r(sink);
  EXPECT_EQ(sink.use_count(), 2);
  r.Send(JsonResponse(200, "{}"));
  EXPECT_EQ(sink.use_count(), 1);  // no cycle between a connection and its responder
  auto other = std::make_shared<RecordingSink>();
  Responder cancelled(other);
  cancelled.Cancel();
  EXPECT_EQ(other.use_count(), 1);
  EXPECT_TRUE(other->delivered.empty());
}

TEST(Responder, TellsItsObserverTheStatusOnceWithItsTag) {
  RecordingObserver observer;
  Responder r([](Response) {});
  r.Observe(&observer, 7);
  r.Send(ErrorResponse(404, "nope"));
  r.Send(JsonResponse(200, "{}"));
  ASSERT_EQ(observer.seen.size(), 1u);
  EXPECT_EQ(observer.seen[0], std::make_pair(7, 404));
}

TEST(Responder, DoesNotReportACancelledRequestToItsObserver) {
  RecordingObserver observer;
  bool cancelled = false;
  Responder r([](Response) {});
  r.Observe(&observer, 1);
  r.OnCancel([&] { cancelled = true; });
  r.Cancel();
  r.Send(JsonResponse(200, "{}"));
  EXPECT_TRUE(cancelled);
  EXPECT_TRUE(observer.seen.empty());
}

struct Target {
  std::string path = "junk", query = "junk";
  Status status;
};
Target Parse(std::string_view raw) {
  Target t;
  t.status = ParseTarget(raw, t.path, t.query);
  return t;
}

TEST(ParseTarget, RefusesRawControlBytes) {
  // Found by fuzz/query_fuzzer: "//\xff\0..." let a NUL into the path.
  std::string path, query;
  EXPECT_FALSE(ParseTarget(std::string_view("//\xff\0\0x", 6), path, query).ok());
  EXPECT_FALSE(ParseTarget("/api/token/lock/1\x7f", path, query).ok());
  EXPECT_FALSE(ParseTarget("/a?b=\x01", path, query).ok());
}

TEST(ParseTarget, SplitsOriginFormAtTheFirstQuestionMark) {
  Target t = Parse("/api/token/lock/5?ttl=10&x=a?b");
  ASSERT_TRUE(t.status.ok());
  EXPECT_EQ(t.path, "/api/token/lock/5");
  EXPECT_EQ(t.query, "ttl=10&x=a?b");
  t = Parse("/healthz");
  EXPECT_EQ(t.path, "/healthz");
  EXPECT_EQ(t.query, "");
}

TEST(ParseTarget, DecodesPercentEncodingInEachPathSegment) {
  Target t = Parse("/api/token/lock/%35?ttl=%31");
  ASSERT_TRUE(t.status.ok());
  EXPECT_EQ(t.path, "/api/token/lock/5");
  EXPECT_EQ(t.query, "ttl=%31");  // the query is decoded per parameter, later
  EXPECT_EQ(Parse("/api/%74oken/status").path, "/api/token/status");
  EXPECT_EQ(Parse("/a%20b/").path, "/a b/");
}

TEST(ParseTarget, RefusesEscapesThatWouldChangeTheRouteOrAreMalformed) {
  EXPECT_EQ(Parse("/api/token/release/a%2fb").status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Parse("/a/%00").status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Parse("/a/%3").status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Parse("/a/%zz").status.code(), StatusCode::kInvalidArgument);
}

TEST(ParseTarget, TakesAbsoluteFormAsOriginForm) {
  Target t = Parse("http://tokenmgr:8080/api/token/status?x=1");
  ASSERT_TRUE(t.status.ok());
  EXPECT_EQ(t.path, "/api/token/status");
  EXPECT_EQ(t.query, "x=1");
  EXPECT_EQ(Parse("HTTPS://h/%35").path, "/5");
  EXPECT_EQ(Parse("http://h").path, "/");
  t = Parse("http://h?q");
  EXPECT_EQ(t.path, "/");
  EXPECT_EQ(t.query, "q");
}

TEST(ParseTarget, RefusesOtherForms) {
  EXPECT_FALSE(Parse("*").status.ok());
  EXPECT_FALSE(Parse("api/x").status.ok());
  EXPECT_FALSE(Parse("ftp://h/x").status.ok());
  EXPECT_FALSE(Parse("").status.ok());
}

}  // namespace
}  // namespace lm::http
