// RequestDecoder and SerializeResponse on plain bytes: framing, limits, end of stream.
#include "http/codec.h"

#include <gtest/gtest.h>

#include <string>

namespace lm::http {
namespace {

CodecLimits Limits() {
  return {.max_header_bytes = 256, .max_header_count = 4, .max_body_bytes = 16};
}

// Feeds `in` the way a connection does: what is not used stays for the next call.
struct Feeder {
  RequestDecoder decoder{Limits()};
  std::string pending;
  Decoded Feed(std::string_view bytes) {
    pending += bytes;
    Decoded d = decoder.Decode(boost::asio::buffer(pending));
    pending.erase(0, d.used);
    return d;
  }
};

TEST(RequestDecoder, DecodesARequestAndItsParts) {
  Feeder f;
  Decoded d =
      f.Feed("POST /a/%62?x=1 HTTP/1.1\r\nHost: t\r\nX-Up: V\r\nContent-Length: 3\r\n\r\nabc");
  ASSERT_EQ(d.result, Decoded::kRequest);
  const Request& r = f.decoder.request();
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/a/%62?x=1");
  EXPECT_EQ(r.path, "/a/b");
  EXPECT_EQ(r.query, "x=1");
  EXPECT_EQ(r.Header("x-up"), "V");
  EXPECT_EQ(r.body, "abc");
  EXPECT_TRUE(f.decoder.keep_alive());
  EXPECT_FALSE(f.decoder.head());
  EXPECT_FALSE(f.decoder.in_request());
}

TEST(RequestDecoder, ARequestSplitAnywhereIsDecodedOnce) {
  const std::string req = "GET /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi";
  for (size_t cut = 1; cut < req.size(); ++cut) {
    Feeder f;
    Decoded d = f.Feed(req.substr(0, cut));
    ASSERT_EQ(d.result, Decoded::kNeedMore) << cut;
    EXPECT_TRUE(f.decoder.in_request());
    d = f.Feed(req.substr(cut));
    ASSERT_EQ(d.result, Decoded::kRequest) << cut;
    EXPECT_EQ(f.decoder.request().body, "hi");
    EXPECT_EQ(f.pending, "");
  }
}

TEST(RequestDecoder, PipelinedRequestsAreDecodedOneAtATime) {
  Feeder f;
  Decoded d =
      f.Feed("GET /1 HTTP/1.1\r\nHost: t\r\n\r\nHEAD /2 HTTP/1.1\r\nConnection: close\r\n\r\n");
  ASSERT_EQ(d.result, Decoded::kRequest);
  EXPECT_EQ(f.decoder.request().path, "/1");
  EXPECT_FALSE(f.pending.empty());
  d = f.Feed("");
  ASSERT_EQ(d.result, Decoded::kRequest);
  EXPECT_EQ(f.decoder.request().path, "/2");
  EXPECT_TRUE(f.decoder.head());
  EXPECT_FALSE(f.decoder.keep_alive());
  EXPECT_EQ(f.pending, "");
}

TEST(RequestDecoder, HeaderBytesOverTheLimitAre431) {
  Feeder f;
  Decoded d = f.Feed("GET / HTTP/1.1\r\nX: " + std::string(300, 'a') + "\r\n\r\n");
  ASSERT_EQ(d.result, Decoded::kError);
  EXPECT_EQ(d.status, 431);
  EXPECT_EQ(d.error, "request headers too large");
  EXPECT_FALSE(f.decoder.keep_alive());
}

TEST(RequestDecoder, HeaderFieldsOverTheCountAre431) {
  Feeder f;
  Decoded d = f.Feed("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n");
  ASSERT_EQ(d.result, Decoded::kError);
  EXPECT_EQ(d.status, 431);
  EXPECT_EQ(d.error, "too many request header fields");
}

TEST(RequestDecoder, BodyOverTheLimitIs413BeforeItArrives) {
  Feeder f;
  Decoded d = f.Feed("POST / HTTP/1.1\r\nContent-Length: 17\r\n\r\n");
  ASSERT_EQ(d.result, Decoded::kError);
  EXPECT_EQ(d.status, 413);
}

TEST(RequestDecoder, GarbageIs400) {
  Feeder f;
  Decoded d = f.Feed("\x01\x02 nonsense\r\n\r\n");
  ASSERT_EQ(d.result, Decoded::kError);
  EXPECT_EQ(d.status, 400);
  EXPECT_EQ(d.error, "malformed HTTP request");
}

TEST(RequestDecoder, AnUndecodableTargetIs400NamingTheProblem) {
  Feeder f;
  Decoded d = f.Feed("GET /a%2Fb HTTP/1.1\r\n\r\n");
  ASSERT_EQ(d.result, Decoded::kError);
  EXPECT_EQ(d.status, 400);
  EXPECT_NE(d.error.find("%2F"), std::string_view::npos) << d.error;
}

TEST(RequestDecoder, EndOfStreamBetweenRequestsIsNothingToAnswer) {
  Feeder f;
  EXPECT_EQ(f.decoder.Finish().result, Decoded::kNeedMore);
}

TEST(RequestDecoder, EndOfStreamInsideARequestIs400) {
  Feeder f;
  ASSERT_EQ(f.Feed("GET / HTTP/1.1\r\nX-Half: ").result, Decoded::kNeedMore);
  Decoded d = f.decoder.Finish();
  ASSERT_EQ(d.result, Decoded::kError);
  EXPECT_EQ(d.status, 400);
}

TEST(RequestDecoder, TrimKeepsDecoding) {
  Feeder f;
  ASSERT_EQ(f.Feed("GET /1 HTTP/1.1\r\n\r\n").result, Decoded::kRequest);
  f.decoder.Trim();
  EXPECT_EQ(f.decoder.request().path, "");
  ASSERT_EQ(f.Feed("GET /2 HTTP/1.1\r\n\r\n").result, Decoded::kRequest);
  EXPECT_EQ(f.decoder.request().path, "/2");
}

TEST(SerializeResponse, WritesStatusHeadersAndLength) {
  Response r = JsonResponse(201, "{}");
  r.headers.emplace_back("X-A", "b");
  std::string out;
  SerializeResponse(r, "tm", /*keep_alive=*/true, /*with_body=*/true, out);
  EXPECT_EQ(out,
            "HTTP/1.1 201 Created\r\nServer: tm\r\nContent-Type: application/json; charset=utf-8"
            "\r\nX-A: b\r\nContent-Length: 2\r\n\r\n{}");
}

TEST(SerializeResponse, WithoutBodyKeepsTheLengthAndSaysCloseWhenNotKept) {
  std::string out;
  SerializeResponse(JsonResponse(200, "abc"), "tm", /*keep_alive=*/false, /*with_body=*/false, out);
  EXPECT_EQ(out,
            "HTTP/1.1 200 OK\r\nServer: tm\r\nContent-Type: application/json; charset=utf-8"
            "\r\nConnection: close\r\nContent-Length: 3\r\n\r\n");
}

}  // namespace
}  // namespace lm::http
