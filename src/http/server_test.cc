// HttpServer on a real socket (127.0.0.1, port 0) and simulated time, all on the test's thread:
// the test writes with a blocking client socket, lets the server's io_context run
// (SimulatedTimeSystem::AdvanceAndRun) and reads what came back without blocking. Deadlines,
// limits, trimming and Stop's grace are reached by advancing time; nothing waits in real time.
#include "http/server.h"

#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/time_system.h"

namespace lm::http {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

class EchoTarget : public Handler {
 public:
  void Handle(const Request& request, std::shared_ptr<Responder> responder) override {
    Response r;
    r.status = 200;
    r.content_type = "text/plain";
    r.body = body.empty() ? request.target : body;
    r.headers.emplace_back("X-Path", request.path);
    r.headers.emplace_back("X-Method", request.method);
    responder->Send(std::move(r));
  }
  std::string body;  // when set, the body of every response (else the request target)
};

// Answers nothing: keeps each Responder (a long poll) and notes a cancel.
class ParkingTarget : public Handler {
 public:
  void Handle(const Request&, std::shared_ptr<Responder> responder) override {
    responder->OnCancel([this] { ++cancelled; });
    parked.push_back(std::move(responder));
  }
  std::vector<std::shared_ptr<Responder>> parked;
  int cancelled = 0;
};

// What a client has received so far.
struct Received {
  std::string bytes;
  bool closed = false;  // the server closed the connection (end of stream or reset)
};

class ServerTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions options, Handler* handler = nullptr) {
    server_ = std::make_unique<HttpServer>(io_, time_, options, handler ? *handler : echo_);
    auto port = server_->Listen("127.0.0.1", 0);
    ASSERT_TRUE(port.ok()) << port.status().message();
    port_ = *port;
  }

  // Lets the server act on what the clients did, without time passing.
  void Run() { time_.AdvanceAndRun(0ms, io_); }
  void Advance(std::chrono::milliseconds d) { time_.AdvanceAndRun(d, io_); }
  // Runs the server until `done` holds. Loopback delivers at once, so a few rounds suffice; the
  // bound only turns a bug into a failure instead of a hang.
  bool RunUntil(const std::function<bool()>& done) {
    for (int i = 0; i < 10000; ++i) {
      Run();
      if (done()) return true;
      std::this_thread::yield();
    }
    return false;
  }

  tcp::socket Connect() {
    tcp::socket s(client_io_);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_));
    const uint64_t accepted = server_->stats().accepted;
    EXPECT_TRUE(RunUntil([&] { return server_->stats().accepted > accepted; }));
    return s;
  }
  void Write(tcp::socket& s, const std::string& bytes) {
    net::write(s, net::buffer(bytes));
    Run();
  }
  // Reads what is there without blocking, after letting the server run.
  void ReadSome(tcp::socket& s, Received& r) {
    Run();
    s.non_blocking(true);
    char buf[65536];
    while (!r.closed) {
      boost::system::error_code ec;
      size_t n = s.read_some(net::buffer(buf), ec);
      if (ec == net::error::would_block) break;
      if (ec) r.closed = true;
      r.bytes.append(buf, n);
    }
  }
  // Reads until `done` holds for what came.
  Received ReadUntil(tcp::socket& s, const std::function<bool(const Received&)>& done) {
    Received r;
    EXPECT_TRUE(RunUntil([&] {
      ReadSome(s, r);
      return done(r);
    })) << r.bytes;
    return r;
  }
  Received ReadToClose(tcp::socket& s) {
    return ReadUntil(s, [](const Received& r) { return r.closed; });
  }
  // Whether the server closed `s`, as far as can be seen now (the server ran first).
  bool ClosedByServer(tcp::socket& s) {
    Received r;
    ReadSome(s, r);
    return r.closed;
  }

  // A new connection with one request that `parking` holds (a pending long poll).
  tcp::socket ParkRequest(ParkingTarget& parking) {
    auto s = Connect();
    const size_t before = parking.parked.size();
    Write(s, "GET /wait HTTP/1.1\r\nHost: t\r\n\r\n");
    EXPECT_TRUE(RunUntil([&] { return parking.parked.size() == before + 1; }));
    return s;
  }
  // Sends `raw` on a new connection and reads to the server's close.
  std::string RawExchange(const std::string& raw) {
    auto s = Connect();
    Write(s, raw);
    return ReadToClose(s).bytes;
  }
  // One request and its whole response's body (Content-Length framed) on `s`.
  std::string Call(tcp::socket& s, const std::string& target) {
    Write(s, "GET " + target + " HTTP/1.1\r\nHost: t\r\n\r\n");
    size_t head = 0, len = 0;
    Received r = ReadUntil(s, [&](const Received& got) {
      head = got.bytes.find("\r\n\r\n");
      auto at = got.bytes.find("Content-Length: ");
      if (head == std::string::npos || at == std::string::npos) return got.closed;
      len = std::stoul(got.bytes.substr(at + 16));
      return got.bytes.size() >= head + 4 + len || got.closed;
    });
    if (head == std::string::npos) return "(no response: " + r.bytes + ")";
    return r.bytes.substr(head + 4, len);
  }

  static bool StartsWith(const std::string& s, std::string_view prefix) {
    return s.rfind(prefix, 0) == 0;
  }

  SimulatedTimeSystem time_;  // first: outlives the server's timers and pending handlers
  net::io_context io_{1};
  net::io_context client_io_;
  EchoTarget echo_;
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Framing and routing

TEST_F(ServerTest, ManyRequestsOnOneConnectionAreAnsweredInOrder) {
  StartServer({});
  auto s = Connect();
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(Call(s, "/n" + std::to_string(i)), "/n" + std::to_string(i));
  }
}

TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  StartServer({});
  std::string in = RawExchange(
      "GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\n"
      "GET /3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  auto one = in.find("/1"), two = in.find("/2"), three = in.find("/3");
  ASSERT_NE(three, std::string::npos) << in;
  EXPECT_LT(one, two);
  EXPECT_LT(two, three);
}

TEST_F(ServerTest, HeadIsAnsweredWithTheHeadersOfGetAndNoBody) {
  StartServer({});
  std::string in = RawExchange("HEAD /abc HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(StartsWith(in, "HTTP/1.1 200")) << in;
  EXPECT_NE(in.find("Content-Length: 4\r\n"), std::string::npos) << in;  // the GET body's
  EXPECT_NE(in.find("X-Method: HEAD\r\n"), std::string::npos) << in;
  EXPECT_EQ(in.substr(in.find("\r\n\r\n") + 4), "");
}

TEST_F(ServerTest, HeadOnAKeptAliveConnectionIsFollowedByTheNextResponse) {
  StartServer({});
  std::string in = RawExchange(
      "HEAD /a HTTP/1.1\r\nHost: t\r\n\r\nGET /bc HTTP/1.1\r\nHost: t\r\n"
      "Connection: close\r\n\r\n");
  auto second = in.find("HTTP/1.1 200", 1);
  ASSERT_NE(second, std::string::npos) << in;
  EXPECT_EQ(in.substr(in.size() - 3), "/bc");
}

TEST_F(ServerTest, AbsoluteFormTargetIsRoutedByItsPath) {
  StartServer({});
  std::string in = RawExchange(
      "GET http://example:8080/api/x?y=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_NE(in.find("X-Path: /api/x\r\n"), std::string::npos) << in;
}

TEST_F(ServerTest, PercentEncodedPathSegmentsAreDecoded) {
  StartServer({});
  std::string in =
      RawExchange("GET /api/lock/%35 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_NE(in.find("X-Path: /api/lock/5\r\n"), std::string::npos) << in;
}

TEST_F(ServerTest, UndecodableTargetIsABadRequestNamingTheProblem) {
  StartServer({});
  std::string in =
      RawExchange("GET /api/lock/a%2Fb HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(StartsWith(in, "HTTP/1.1 400")) << in;
  EXPECT_NE(in.find("%2F"), std::string::npos) << in;
  EXPECT_EQ(server_->stats().bad_requests, 1u);
}

TEST_F(ServerTest, ClientThatHangsUpBetweenRequestsIsClosed) {
  StartServer({});
  {
    auto s = Connect();
    EXPECT_EQ(Call(s, "/a"), "/a");
    EXPECT_EQ(Call(s, "/b"), "/b");
  }  // closed while the server waits for the next request
  EXPECT_TRUE(RunUntil([&] { return server_->stats().open == 0; }));
  EXPECT_EQ(server_->stats().accepted, 1u);
}

TEST_F(ServerTest, RequestCutShortByHangUpIsAnsweredWithBadRequest) {
  StartServer({});
  auto s = Connect();
  EXPECT_EQ(Call(s, "/a"), "/a");
  Write(s, "GET /b HTTP/1.1\r\nHost: t\r\nX-Half: ");
  s.shutdown(tcp::socket::shutdown_send);
  std::string in = ReadToClose(s).bytes;
  EXPECT_TRUE(StartsWith(in, "HTTP/1.1 400")) << in;
  EXPECT_TRUE(RunUntil([&] { return server_->stats().open == 0; }));
  EXPECT_EQ(server_->stats().bad_requests, 1u);
}

TEST_F(ServerTest, BusyPortErrorNamesTheSettingThatChoseIt) {
  StartServer({});
  ServerOptions o;
  o.listen_setting = "HEALTH_PORT/--health-port";
  HttpServer second(client_io_, time_, o, echo_);
  auto port = second.Listen("127.0.0.1", port_);
  ASSERT_FALSE(port.ok());
  EXPECT_EQ(port.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(port.status().message().find("127.0.0.1:" + std::to_string(port_) +
                                         " (set by HEALTH_PORT/--health-port)"),
            std::string::npos)
      << port.status().message();
}

// ---------------------------------------------------------------------------------------------
// Limits

TEST_F(ServerTest, HeaderBytesOverTheLimitAre431AndClose) {
  ServerOptions o;
  o.max_header_bytes = 1024;
  StartServer(o);
  std::string in =
      RawExchange("GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n");
  EXPECT_TRUE(StartsWith(in, "HTTP/1.1 431")) << in;
  EXPECT_NE(in.find("request headers too large"), std::string::npos) << in;
  EXPECT_EQ(server_->stats().bad_requests, 1u);
}

TEST_F(ServerTest, HeaderFieldsOverTheCountAre431AndClose) {
  ServerOptions o;
  o.max_header_count = 2;
  StartServer(o);
  std::string in = RawExchange("GET / HTTP/1.1\r\nHost: t\r\nA: 1\r\nB: 2\r\n\r\n");
  EXPECT_TRUE(StartsWith(in, "HTTP/1.1 431")) << in;
  EXPECT_NE(in.find("too many request header fields"), std::string::npos) << in;
}

TEST_F(ServerTest, BodyOverTheLimitIs413AndClose) {
  ServerOptions o;
  o.max_body_bytes = 100;
  StartServer(o);
  std::string in = RawExchange("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n" +
                               std::string(101, 'b'));
  EXPECT_TRUE(StartsWith(in, "HTTP/1.1 413")) << in;
  EXPECT_EQ(server_->stats().bad_requests, 1u);
}

TEST_F(ServerTest, BodyAtTheLimitIsAccepted) {
  ServerOptions o;
  o.max_body_bytes = 100;
  StartServer(o);
  std::string in = RawExchange(
      "POST /ok HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
      "Content-Length: 100\r\n\r\n" +
      std::string(100, 'b'));
  EXPECT_TRUE(StartsWith(in, "HTTP/1.1 200")) << in;
}

TEST_F(ServerTest, ConnectionOverMaxConnectionsGets503AndTheOthersStayServed) {
  ServerOptions o;
  o.max_connections = 2;
  StartServer(o);
  auto a = Connect();
  auto b = Connect();
  auto c = Connect();
  std::string in = ReadToClose(c).bytes;
  EXPECT_TRUE(StartsWith(in, "HTTP/1.1 503")) << in;
  EXPECT_NE(in.find("too many open connections"), std::string::npos) << in;
  EXPECT_EQ(server_->stats().rejected_connections, 1u);
  EXPECT_EQ(server_->stats().open, 2u);
  EXPECT_EQ(Call(a, "/a"), "/a");
  EXPECT_EQ(Call(b, "/b"), "/b");
}

// ---------------------------------------------------------------------------------------------
// Deadlines (one sweep checks them every quarter of the shortest timeout, at most 250 ms)

constexpr auto kSweep = 250ms;

TEST_F(ServerTest, RequestNotCompleteWithinTheReadTimeoutIsClosed) {
  ServerOptions o;
  o.read_timeout = 2s;
  StartServer(o);
  auto s = Connect();
  Write(s, "GET / HTTP/1.1\r\nHost:");
  Advance(2s - 1ms);
  EXPECT_FALSE(ClosedByServer(s));
  EXPECT_EQ(server_->stats().timeouts, 0u);
  Advance(kSweep);
  EXPECT_TRUE(ClosedByServer(s));
  EXPECT_EQ(server_->stats().timeouts, 1u);
}

TEST_F(ServerTest, ReadTimeoutCountsFromTheRequestsFirstByteNotFromTheLastRequest) {
  ServerOptions o;
  o.read_timeout = 2s;
  o.idle_timeout = 60s;
  StartServer(o);
  auto s = Connect();
  Advance(30s);  // idle, within the keep-alive timeout
  Write(s, "GET / HTTP/1.1\r\n");
  Advance(2s - 1ms);
  Write(s, "Host: t\r\n\r\n");  // complete just in time
  Received r = ReadUntil(s, [](const Received& got) { return !got.bytes.empty(); });
  EXPECT_TRUE(StartsWith(r.bytes, "HTTP/1.1 200")) << r.bytes;
  EXPECT_FALSE(r.closed);
}

TEST_F(ServerTest, KeptAliveConnectionIdlePastTheIdleTimeoutIsClosed) {
  ServerOptions o;
  o.idle_timeout = 3s;
  StartServer(o);
  auto s = Connect();
  EXPECT_EQ(Call(s, "/a"), "/a");
  Advance(3s - 1ms);
  EXPECT_FALSE(ClosedByServer(s));
  Advance(kSweep);
  EXPECT_TRUE(ClosedByServer(s));
  EXPECT_EQ(server_->stats().timeouts, 1u);
  EXPECT_TRUE(RunUntil([&] { return server_->stats().open == 0; }));
}

TEST_F(ServerTest, ARequestRestartsTheIdleTimeout) {
  ServerOptions o;
  o.idle_timeout = 3s;
  StartServer(o);
  auto s = Connect();
  for (int i = 0; i < 5; ++i) {
    Advance(2s);
    ASSERT_EQ(Call(s, "/r"), "/r");
  }
  EXPECT_EQ(server_->stats().timeouts, 0u);
}

TEST_F(ServerTest, ResponseTheClientDoesNotReadWithinTheWriteTimeoutIsClosed) {
  ServerOptions o;
  o.write_timeout = 4s;
  StartServer(o);
  echo_.body = std::string(16 << 20, 'x');  // more than the socket buffers hold
  tcp::socket s(client_io_);
  s.open(tcp::v4());
  s.set_option(net::socket_base::receive_buffer_size(4096));
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_));
  Write(s, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  Advance(4s - 1ms);
  EXPECT_EQ(server_->stats().open, 1u);
  EXPECT_EQ(server_->stats().timeouts, 0u);
  Advance(kSweep);
  EXPECT_EQ(server_->stats().timeouts, 1u);
  EXPECT_TRUE(RunUntil([&] { return server_->stats().open == 0; }));
}

TEST_F(ServerTest, PendingLongPollHasNoDeadline) {
  ServerOptions o;
  o.read_timeout = 1s;
  o.idle_timeout = 1s;
  o.write_timeout = 1s;
  ParkingTarget parking;
  StartServer(o, &parking);
  auto s = ParkRequest(parking);
  Advance(1h);
  EXPECT_FALSE(ClosedByServer(s));
  EXPECT_EQ(server_->stats().timeouts, 0u);
  parking.parked[0]->Send(JsonResponse(200, "\"late\""));
  Received r =
      ReadUntil(s, [](const Received& got) { return got.bytes.find("late") != std::string::npos; });
  EXPECT_FALSE(r.closed);
}

// ---------------------------------------------------------------------------------------------
// Memory given back

TEST_F(ServerTest, KeptAliveConnectionGivesItsMemoryBackAfterTrimAfterAndAnswersAgain) {
  ServerOptions o;
  o.trim_after = 1s;
  StartServer(o);
  auto s = Connect();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Call(s, "/r" + std::to_string(i)), "/r" + std::to_string(i));
    // The connection now waits for its next request with a read queued into its buffer; the
    // sweep cancels that read and the buffer is freed.
    Advance(1s - 1ms);
    EXPECT_EQ(server_->stats().trims, static_cast<uint64_t>(i));
    Advance(kSweep);
    EXPECT_TRUE(RunUntil([&] { return server_->stats().trims == static_cast<uint64_t>(i + 1); }));
  }
  EXPECT_EQ(server_->stats().open, 1u);
  EXPECT_EQ(server_->stats().timeouts, 0u);
}

// ---------------------------------------------------------------------------------------------
// A client that goes away while its response is pending (how a lock waiter leaves the queue)

TEST_F(ServerTest, PendingResponseIsCancelledWhenTheClientHangsUp) {
  ParkingTarget parking;
  StartServer({}, &parking);
  auto s = ParkRequest(parking);
  Run();
  EXPECT_EQ(parking.cancelled, 0);
  s.close();
  EXPECT_TRUE(RunUntil([&] { return parking.cancelled == 1; }));
  parking.parked.clear();  // the handler lets go: the connection is gone
  EXPECT_TRUE(RunUntil([&] { return server_->stats().open == 0; }));
}

TEST_F(ServerTest, PendingResponseIsCancelledWhenTheClientPipelinesThenHangsUp) {
  ParkingTarget parking;
  StartServer({}, &parking);
  auto s = ParkRequest(parking);
  Write(s, "GET /next HTTP/1.1\r\nHost: t\r\n\r\n");
  Run();
  EXPECT_EQ(parking.cancelled, 0);
  s.close();
  EXPECT_TRUE(RunUntil([&] { return parking.cancelled == 1; }));
}

TEST_F(ServerTest, RequestPipelinedBehindALongPollIsAnsweredAfterIt) {
  ParkingTarget parking;
  StartServer({}, &parking);
  auto s = Connect();
  Write(s, "GET /first HTTP/1.1\r\nHost: t\r\n\r\nGET /second HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return parking.parked.size() == 1; }));
  Run();
  EXPECT_EQ(parking.parked.size(), 1u);  // the second waits for the first's response
  parking.parked[0]->Send(JsonResponse(200, "1"));
  ASSERT_TRUE(RunUntil([&] { return parking.parked.size() == 2; }));
  parking.parked[1]->Send(JsonResponse(200, "2"));
  Received r = ReadUntil(s, [](const Received& got) { return got.bytes.ends_with("2"); });
  EXPECT_LT(r.bytes.find("\r\n\r\n1"), r.bytes.find("\r\n\r\n2")) << r.bytes;
  EXPECT_EQ(parking.cancelled, 0);
}

// ---------------------------------------------------------------------------------------------
// Stop

TEST_F(ServerTest, StopClosesAConnectionWaitingForItsNextRequestAndLeavesNothingPending) {
  StartServer({});
  auto s = Connect();
  EXPECT_EQ(Call(s, "/a"), "/a");
  server_->Stop(10s);
  Run();
  EXPECT_TRUE(io_.stopped());  // the io_context ran out of work: nothing is left pending
  EXPECT_EQ(time_.armed_timers(), 0u);
  Received r = ReadToClose(s);
  EXPECT_EQ(r.bytes, "");
  EXPECT_EQ(server_->stats().open, 0u);
}

TEST_F(ServerTest, StopClosesABusyConnectionWhenItsGraceEnds) {
  ParkingTarget parking;
  StartServer({}, &parking);
  auto s = ParkRequest(parking);
  server_->Stop(5s);
  Advance(5s - 1ms);
  EXPECT_FALSE(ClosedByServer(s));
  Advance(1ms);
  EXPECT_TRUE(ClosedByServer(s));
}

TEST_F(ServerTest, ResponseSentDuringTheGraceClosesTheConnectionAtOnce) {
  ParkingTarget parking;
  StartServer({}, &parking);
  auto s = ParkRequest(parking);
  server_->Stop(5s);
  Run();
  parking.parked[0]->Send(JsonResponse(200, "\"bye\""));
  parking.parked.clear();
  Received r = ReadToClose(s);
  EXPECT_TRUE(StartsWith(r.bytes, "HTTP/1.1 200")) << r.bytes;
  EXPECT_NE(r.bytes.find("Connection: close\r\n"), std::string::npos) << r.bytes;
  EXPECT_TRUE(RunUntil([&] { return server_->stats().open == 0; }));
  EXPECT_EQ(time_.armed_timers(), 0u);  // the grace timer is disarmed with the last connection
}

TEST_F(ServerTest, NoConnectionIsAcceptedAfterStop) {
  StartServer({});
  server_->Stop(1s);
  Run();
  tcp::socket s(client_io_);
  boost::system::error_code ec;
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_), ec);
  EXPECT_TRUE(ec) << "connected after Stop";
  EXPECT_EQ(server_->stats().accepted, 0u);
}

}  // namespace
}  // namespace lm::http
