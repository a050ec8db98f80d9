// HttpServer on a real socket (127.0.0.1, port 0): the paths a kept-alive connection takes
// between requests (a read queued into its buffer, that read cancelled to give the memory
// back, end of stream while it waits) and Stop with such a read pending.
#include "http/server.h"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <string>
#include <thread>

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
    r.body = request.target;
    r.headers.emplace_back("X-Path", request.path);
    r.headers.emplace_back("X-Method", request.method);
    responder->Send(std::move(r));
  }
};

class ServerTest : public ::testing::Test {
 protected:
  void StartServer(ServerOptions options) {
    server_ = std::make_unique<HttpServer>(io_, options, handler_);
    auto port = server_->Listen("127.0.0.1", 0);
    ASSERT_TRUE(port.ok()) << port.status().message();
    port_ = *port;
    runner_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    if (runner_.joinable()) {
      OnServer([this] { server_->Stop(0ms); });
      runner_.join();
    }
  }

  // Runs `f` on the server's thread and waits for it.
  void OnServer(std::function<void()> f) {
    std::promise<void> done;
    net::post(io_, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }
  ServerStats Stats() {
    ServerStats s;
    OnServer([&] { s = server_->stats(); });
    return s;
  }
  // Polls the server's stats until `ok` holds or 5 s pass.
  bool AwaitStats(const std::function<bool(const ServerStats&)>& ok) {
    auto until = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < until) {
      if (ok(Stats())) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }

  tcp::socket Connect() {
    tcp::socket s(client_io_);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_));
    return s;
  }
  // Sends `raw` and reads to the server's close.
  std::string RawExchange(const std::string& raw) {
    auto s = Connect();
    net::write(s, net::buffer(raw));
    std::string in;
    boost::system::error_code ec;
    net::read(s, net::dynamic_buffer(in), ec);
    return in;
  }

  // One request and its whole response (Content-Length framed) on `s`.
  std::string Call(tcp::socket& s, const std::string& target) {
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: t\r\n\r\n";
    net::write(s, net::buffer(req));
    std::string in;
    size_t head = net::read_until(s, net::dynamic_buffer(in), "\r\n\r\n");
    auto at = in.find("Content-Length: ");
    EXPECT_NE(at, std::string::npos) << in;
    size_t len = std::stoul(in.substr(at + 16));
    if (in.size() < head + len) {
      net::read(s, net::dynamic_buffer(in), net::transfer_exactly(head + len - in.size()));
    }
    return in.substr(head, len);
  }

  net::io_context io_{1};
  net::io_context client_io_;
  EchoTarget handler_;
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
  std::thread runner_;
};

TEST_F(ServerTest, KeptAliveConnectionAnswersAgainAfterGivingItsMemoryBack) {
  ServerOptions o;
  o.trim_after = 50ms;
  StartServer(o);
  auto s = Connect();
  for (int i = 0; i < 3; ++i) {
    const uint64_t trims = Stats().trims;
    EXPECT_EQ(Call(s, "/r" + std::to_string(i)), "/r" + std::to_string(i));
    // The connection now waits for its next request with a read queued into its buffer; the
    // sweep cancels that read and the buffer is freed.
    ASSERT_TRUE(AwaitStats([&](const ServerStats& st) { return st.trims > trims; }));
  }
  EXPECT_EQ(Stats().open, 1u);
}

TEST_F(ServerTest, ManyRequestsOnOneConnectionAreAnsweredInOrder) {
  StartServer({});
  auto s = Connect();
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(Call(s, "/n" + std::to_string(i)), "/n" + std::to_string(i));
  }
}

TEST_F(ServerTest, ClientThatHangsUpBetweenRequestsIsClosed) {
  StartServer({});
  {
    auto s = Connect();
    EXPECT_EQ(Call(s, "/a"), "/a");
    EXPECT_EQ(Call(s, "/b"), "/b");
  }  // closed while the server waits for the next request
  EXPECT_TRUE(AwaitStats([](const ServerStats& st) { return st.accepted == 1 && st.open == 0; }));
}

TEST_F(ServerTest, RequestCutShortByHangUpIsAnsweredWithBadRequest) {
  StartServer({});
  auto s = Connect();
  EXPECT_EQ(Call(s, "/a"), "/a");
  std::string part = "GET /b HTTP/1.1\r\nHost: t\r\nX-Half: ";
  net::write(s, net::buffer(part));
  s.shutdown(tcp::socket::shutdown_send);
  std::string in;
  boost::system::error_code ec;
  net::read(s, net::dynamic_buffer(in), ec);  // to the server's close
  EXPECT_EQ(in.rfind("HTTP/1.1 400", 0), 0u) << in;
  EXPECT_TRUE(
      AwaitStats([](const ServerStats& st) { return st.open == 0 && st.bad_requests == 1; }));
}

TEST_F(ServerTest, StopClosesAConnectionWaitingForItsNextRequest) {
  StartServer({});
  auto s = Connect();
  EXPECT_EQ(Call(s, "/a"), "/a");
  OnServer([this] { server_->Stop(10s); });
  runner_.join();  // io.run() returns: nothing is left pending
  std::string in;
  boost::system::error_code ec;
  net::read(s, net::dynamic_buffer(in), ec);
  EXPECT_EQ(ec, net::error::eof);
  EXPECT_EQ(in, "");
}

TEST_F(ServerTest, BusyPortErrorNamesTheSettingThatChoseIt) {
  StartServer({});
  ServerOptions o;
  o.listen_setting = "HEALTH_PORT/--health-port";
  HttpServer second(client_io_, o, handler_);
  auto port = second.Listen("127.0.0.1", port_);
  ASSERT_FALSE(port.ok());
  EXPECT_EQ(port.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(port.status().message().find("127.0.0.1:" + std::to_string(port_) +
                                         " (set by HEALTH_PORT/--health-port)"),
            std::string::npos)
      << port.status().message();
}

TEST_F(ServerTest, HeadIsAnsweredWithTheHeadersOfGetAndNoBody) {
  StartServer({});
  std::string in = RawExchange("HEAD /abc HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(in.rfind("HTTP/1.1 200", 0), 0u) << in;
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
  EXPECT_EQ(in.rfind("HTTP/1.1 400", 0), 0u) << in;
  EXPECT_NE(in.find("%2F"), std::string::npos) << in;
  EXPECT_TRUE(AwaitStats([](const ServerStats& st) { return st.bad_requests == 1; }));
}

}  // namespace
}  // namespace lm::http
