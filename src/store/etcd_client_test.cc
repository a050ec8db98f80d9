#include "store/etcd_client.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace lm::store {
namespace {

TEST(EtcdClient, Base64RoundTripsEveryLength) {
  for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", "/t/lock",
                                                       std::string("\0\xff", 2)}) {
    auto back = Base64Decode(Base64Encode(s));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(Base64Encode("/t/lock"), "L3QvbG9jaw==");
}

TEST(EtcdClient, Base64DecodeRejectsGarbage) {
  EXPECT_FALSE(Base64Decode("a$b=").ok());
  EXPECT_FALSE(Base64Decode("Zm9v YmFy").ok());
}

TEST(EtcdClient, Base64DecodeReadsUnpaddedTextAndStopsAtPadding) {
  EXPECT_EQ(*Base64Decode("Zg"), "f");
  EXPECT_EQ(*Base64Decode("Zm8"), "fo");
  EXPECT_EQ(*Base64Decode("Zg==Zm8="), "f");
  EXPECT_EQ(*Base64Decode("Zm9vY"), "foo");  // a lone trailing sextet holds no byte
  EXPECT_EQ(*Base64Decode(""), "");
}

TEST(EtcdClient, PrefixEndIsTheNextKey) {
  EXPECT_EQ(PrefixEnd("/tokenmgr/"), "/tokenmgr0");
  EXPECT_EQ(PrefixEnd(std::string("a\xff", 2)), "b");
}

TEST(EtcdClient, JsonIntReadsGatewayStringsAndMissingFields) {
  nlohmann::json j = {{"revision", "42"}, {"n", 7}};
  EXPECT_EQ(JsonInt(j, "revision"), 42);
  EXPECT_EQ(JsonInt(j, "n"), 7);
  EXPECT_EQ(JsonInt(j, "absent"), 0);
}

TEST(EtcdClient, ParsesEndpointUrls) {
  auto e = ParseEtcdEndpoint("http://127.0.0.1:2379/");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->host, "127.0.0.1");
  EXPECT_EQ(e->port, "2379");
  EXPECT_TRUE(ParseEtcdEndpoint("etcd.kube-system:2379").ok());
  EXPECT_EQ(ParseEtcdEndpoint("http://[::1]:2379")->host, "::1");
  auto tls = ParseEtcdEndpoint("https://10.1.2.3:2379");
  ASSERT_TRUE(tls.ok());
  EXPECT_TRUE(tls->tls);
  EXPECT_EQ(tls->host, "10.1.2.3");
  EXPECT_FALSE(ParseEtcdEndpoint("http://etcd:2379")->tls);
  EXPECT_FALSE(ParseEtcdEndpoint("unix://etcd:2379").ok());
  EXPECT_FALSE(ParseEtcdEndpoint("http://etcd").ok());
  EXPECT_FALSE(ParseEtcdEndpoint("http://etcd:23x9").ok());
}

// Create() loads the TLS files; what it refuses is refused before any connection is made.
class EtcdClientTls : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/etcd-client-tls-XXXXXX";
    dir_ = mkdtemp(tmpl);
    garbage_ = dir_ + "/garbage.pem";
    std::ofstream(garbage_)
        << "-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  StatusOr<std::unique_ptr<EtcdClient>> Create(std::vector<std::string> endpoints,
                                               EtcdTlsFiles tls) {
    return EtcdClient::Create(io_, {.endpoints = std::move(endpoints), .tls = std::move(tls)});
  }
  boost::asio::io_context io_;
  std::string dir_, garbage_;
};

TEST_F(EtcdClientTls, HttpsWithTheSystemCasNeedsNoFiles) {
  EXPECT_TRUE(Create({"https://127.0.0.1:2379"}, {}).ok());
}

TEST_F(EtcdClientTls, CaFileThatIsNotACertificateIsRefused) {
  auto c =
      Create({"https://127.0.0.1:2379"}, {.ca_file = garbage_, .cert_file = "", .key_file = ""});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("CA file '" + garbage_ + "'"), std::string::npos)
      << c.status().message();
}

TEST_F(EtcdClientTls, ClientCertificateThatIsNotACertificateIsRefused) {
  auto c = Create({"https://127.0.0.1:2379"},
                  {.ca_file = "", .cert_file = garbage_, .key_file = garbage_});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("client certificate '" + garbage_ + "'"), std::string::npos)
      << c.status().message();
}

TEST_F(EtcdClientTls, MissingCaFileIsRefused) {
  auto c = Create({"https://127.0.0.1:2379"},
                  {.ca_file = dir_ + "/missing.pem", .cert_file = "", .key_file = ""});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("missing.pem"), std::string::npos);
}

TEST_F(EtcdClientTls, FilesWithHttpEndpointsAndMixedSchemesAreRefused) {
  EXPECT_FALSE(
      Create({"http://127.0.0.1:2379"}, {.ca_file = garbage_, .cert_file = "", .key_file = ""})
          .ok());
  EXPECT_FALSE(Create({"https://127.0.0.1:2379", "http://127.0.0.1:2380"}, {}).ok());
}

// Runs `io` (real sockets, a peer on its own thread) until `done()` holds, or until it has been
// idle for 10 s in all (100 waits of 100 ms in which no handler ran).
template <typename F>
void RunUntil(boost::asio::io_context& io, F done) {
  for (int idle = 0; !done() && idle < 100;) {
    if (io.run_one_for(std::chrono::milliseconds(100)) > 0) continue;
    ++idle;
    if (io.stopped()) io.restart();
  }
}

// A port on 127.0.0.1 that refuses connections: bound, then closed.
uint16_t RefusingPort() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::address_v4::loopback(), 0});
  return a.local_endpoint().port();
}

// An HTTP/1.1 answer with a JSON body, as etcd's gateway sends it.
std::string JsonAnswer(const std::string& status, const std::string& body) {
  return "HTTP/1.1 " + status + "\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Wakes a server thread that still waits in accept() on `port` (a call that never came): a
// connection that sends nothing ends its read at once.
void WakeAccept(uint16_t port) {
  boost::system::error_code ec;
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket poke(io);
  poke.connect({boost::asio::ip::address_v4::loopback(), port}, ec);
  poke.close(ec);
}

// Answers one HTTP request on 127.0.0.1 with `body` (and `status`), `delay` after reading it,
// from its own thread.
class OneAnswer {
 public:
  explicit OneAnswer(std::string body, std::string status = "200 OK",
                     std::chrono::milliseconds delay = std::chrono::milliseconds(0))
      : acceptor_(io_, {boost::asio::ip::address_v4::loopback(), 0}),
        thread_([this, body = std::move(body), status = std::move(status), delay] {
          boost::system::error_code ec;
          boost::asio::ip::tcp::socket s(io_);
          acceptor_.accept(s, ec);
          if (ec) return;
          std::string in;
          boost::asio::read_until(s, boost::asio::dynamic_buffer(in), "\r\n\r\n", ec);
          requests_ = ec ? 0 : 1;
          {
            std::lock_guard<std::mutex> lock(mu_);
            head_ = in;
          }
          std::this_thread::sleep_for(delay);  // how late the member answers, not a sync
          boost::asio::write(s, boost::asio::buffer(JsonAnswer(status, body)), ec);
        }) {}
  ~OneAnswer() {
    WakeAccept(port());
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  int requests() const { return requests_; }
  std::string head() const {  // the request line and headers it read
    std::lock_guard<std::mutex> lock(mu_);
    return head_;
  }

 private:
  mutable std::mutex mu_;
  std::string head_;  // Guarded by mu_
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::atomic<int> requests_{0};
  std::thread thread_;  // last: starts after the fields it uses exist
};

TEST(EtcdClientFailover, MembersThatRefuseAreSkippedEvenForACallThatIsNotIdempotent) {
  OneAnswer live(R"({"header":{"revision":"7"}})");
  auto url = [](uint16_t port) { return "http://127.0.0.1:" + std::to_string(port); };
  boost::asio::io_context io;
  EtcdClientOptions options;
  options.endpoints = {url(RefusingPort()), url(RefusingPort()), url(live.port())};
  auto client = EtcdClient::Create(io, options);
  ASSERT_TRUE(client.ok());
  std::optional<StatusOr<nlohmann::json>> got;
  (*client)->Call("/v3/kv/put", {{"key", "a2V5"}}, [&](StatusOr<nlohmann::json> r) { got = r; },
                  /*idempotent=*/false);
  RunUntil(io, [&] { return got.has_value(); });
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->ok()) << got->status().message();
  EXPECT_EQ((**got)["header"]["revision"], "7");
  EXPECT_EQ(live.requests(), 1);
  EXPECT_EQ((*client)->current_endpoint(), url(live.port()));  // later calls go there directly
  (*client)->Shutdown();
}

TEST(EtcdClientFailover, EveryMemberRefusingFailsTheCallOnceNamingTheLast) {
  auto url = [](uint16_t port) { return "http://127.0.0.1:" + std::to_string(port); };
  const std::string a = url(RefusingPort()), b = url(RefusingPort());
  boost::asio::io_context io;
  EtcdClientOptions options;
  options.endpoints = {a, b};
  auto client = EtcdClient::Create(io, options);
  ASSERT_TRUE(client.ok());
  int calls = 0;
  Status last;
  (*client)->Call("/v3/kv/range", {{"key", "a2V5"}}, [&](StatusOr<nlohmann::json> r) {
    ++calls;
    last = r.status();
  }, /*idempotent=*/true);
  RunUntil(io, [&] { return calls > 0; });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(last.code(), StatusCode::kUnavailable);
  EXPECT_NE(last.message().find(b), std::string::npos) << last.message();
  (*client)->Shutdown();
}

// What an etcd member cut off from the others answers a request that asks for a leader.
constexpr char kNoLeader[] =
    R"({"error":"etcdserver: no leader","message":"etcdserver: no leader","code":14})";

// Answers every request of one kept-alive connection on 127.0.0.1 with `body`, from its own
// thread, until the client closes it.
class KeepAliveAnswers {
 public:
  explicit KeepAliveAnswers(std::string body)
      : acceptor_(io_, {boost::asio::ip::address_v4::loopback(), 0}),
        thread_([this, body = std::move(body)] {
          boost::system::error_code ec;
          boost::asio::ip::tcp::socket s(io_);
          acceptor_.accept(s, ec);
          std::string in;
          while (!ec) {
            size_t head =
                boost::asio::read_until(s, boost::asio::dynamic_buffer(in), "\r\n\r\n", ec);
            if (ec) break;
            size_t length = 0;
            if (size_t at = in.find("Content-Length: "); at != std::string::npos && at < head) {
              length = std::stoul(in.substr(at + 16));
            }
            if (in.size() < head + length) {
              boost::asio::read(s, boost::asio::dynamic_buffer(in),
                                boost::asio::transfer_exactly(head + length - in.size()), ec);
            }
            in.erase(0, head + length);
            boost::asio::write(s, boost::asio::buffer(JsonAnswer("200 OK", body)), ec);
          }
        }) {}
  ~KeepAliveAnswers() {
    WakeAccept(port());
    thread_.join();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::thread thread_;  // last: starts after the fields it uses exist
};

TEST(EtcdClient, AKeptAliveConnectionIsTrackedOnceHoweverManyCallsItServes) {
  KeepAliveAnswers etcd(R"({"header":{"revision":"7"}})");
  boost::asio::io_context io;
  auto client =
      EtcdClient::Create(io, {.endpoints = {"http://127.0.0.1:" + std::to_string(etcd.port())}});
  ASSERT_TRUE(client.ok());
  for (int i = 0; i < 200; ++i) {
    std::optional<StatusOr<nlohmann::json>> got;
    (*client)->Call("/v3/kv/range", {{"key", "a2V5"}},
                    [&](StatusOr<nlohmann::json> r) { got = r; });
    RunUntil(io, [&] { return got.has_value(); });
    ASSERT_TRUE(got.has_value() && got->ok()) << i << ": "
                                              << (got ? got->status().message() : "no answer");
  }
  EXPECT_EQ((*client)->tracked_connections(), 1u);  // one connection, kept alive
  (*client)->Shutdown();
}

TEST(EtcdClientLeader, EveryCallAsksForAMemberWithALeader) {
  OneAnswer live(R"({"header":{"revision":"7"}})");
  boost::asio::io_context io;
  auto client =
      EtcdClient::Create(io, {.endpoints = {"http://127.0.0.1:" + std::to_string(live.port())}});
  ASSERT_TRUE(client.ok());
  bool done = false;
  (*client)->Call("/v3/kv/range", {{"key", "a2V5"}},
                  [&](StatusOr<nlohmann::json>) { done = true; });
  RunUntil(io, [&] { return done; });
  EXPECT_NE(live.head().find("Grpc-Metadata-hasleader: true\r\n"), std::string::npos)
      << live.head();
  (*client)->Shutdown();
}

// A read answered `error` by the first member is sent again, once, to the next one.
void ExpectReadSentAgainToTheNextMember(const char* error) {
  OneAnswer first(error, "503 Service Unavailable");
  OneAnswer live(R"({"header":{"revision":"7"}})");
  auto url = [](uint16_t port) { return "http://127.0.0.1:" + std::to_string(port); };
  boost::asio::io_context io;
  auto client = EtcdClient::Create(io, {.endpoints = {url(first.port()), url(live.port())}});
  ASSERT_TRUE(client.ok());
  std::optional<StatusOr<nlohmann::json>> got;
  (*client)->Call(
      "/v3/kv/range", {{"key", "a2V5"}}, [&](StatusOr<nlohmann::json> r) { got = r; },
      /*idempotent=*/true);
  RunUntil(io, [&] { return got.has_value(); });
  ASSERT_TRUE(got.has_value() && got->ok()) << (got ? got->status().message() : "no answer");
  EXPECT_EQ(first.requests(), 1);
  EXPECT_EQ(live.requests(), 1);
  EXPECT_EQ((*client)->current_endpoint(), url(live.port()));
  (*client)->Shutdown();
}

TEST(EtcdClientLeader, AMemberWithoutLeaderIsLeftAndAReadIsRetriedOnTheNext) {
  ExpectReadSentAgainToTheNextMember(kNoLeader);
}

TEST(EtcdClientLeader, AReadEndedByALeaderChangeIsSentAgainOnce) {
  ExpectReadSentAgainToTheNextMember(
      R"({"error":"etcdserver: leader changed","message":"etcdserver: leader changed","code":14})");
}

TEST(EtcdClientLeader, AWatchShapedErrorBodyIsReadNotThrown) {
  // A watch refused for no leader answers 503 with the error as an object (the stream's shape).
  OneAnswer cut_off(
      R"({"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader"}})",
      "503 Service Unavailable");
  auto url = [](uint16_t port) { return "http://127.0.0.1:" + std::to_string(port); };
  const std::string next = url(RefusingPort());
  boost::asio::io_context io;
  auto client = EtcdClient::Create(io, {.endpoints = {url(cut_off.port()), next}});
  ASSERT_TRUE(client.ok());
  std::optional<StatusOr<nlohmann::json>> got;
  (*client)->Call("/v3/kv/put", {{"key", "a2V5"}}, [&](StatusOr<nlohmann::json> r) { got = r; });
  RunUntil(io, [&] { return got.has_value(); });
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status().code(), StatusCode::kUnavailable);
  EXPECT_NE(got->status().message().find("etcdserver: no leader"), std::string::npos)
      << got->status().message();
  EXPECT_EQ((*client)->current_endpoint(), next);
  (*client)->Shutdown();
}

TEST(EtcdClientLeader, AWriteRefusedForNoLeaderFailsButTheNextCallGoesElsewhere) {
  OneAnswer cut_off(kNoLeader, "503 Service Unavailable");
  auto url = [](uint16_t port) { return "http://127.0.0.1:" + std::to_string(port); };
  const std::string next = url(RefusingPort());
  boost::asio::io_context io;
  auto client = EtcdClient::Create(io, {.endpoints = {url(cut_off.port()), next}});
  ASSERT_TRUE(client.ok());
  std::optional<StatusOr<nlohmann::json>> got;
  (*client)->Call(
      "/v3/kv/put", {{"key", "a2V5"}}, [&](StatusOr<nlohmann::json> r) { got = r; },
      /*idempotent=*/false);
  RunUntil(io, [&] { return got.has_value(); });
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status().code(), StatusCode::kUnavailable);
  EXPECT_NE(got->status().message().find("no leader"), std::string::npos);
  EXPECT_EQ((*client)->current_endpoint(), next);
  (*client)->Shutdown();
}

// A member behind a link that flaps answers every call, but late (each call waits for the heal
// and TCP's retransmission): a call answered after half the timeout or more moves later calls
// to the next member; one answered in time leaves them where they are.
TEST(EtcdClientFailover, ACallAnsweredLateMovesLaterCallsToTheNextMember) {
  for (auto [delay, moves] : {std::pair{std::chrono::milliseconds(130), true},
                              std::pair{std::chrono::milliseconds(0), false}}) {
    OneAnswer first(R"({"header":{"revision":"7"}})", "200 OK", delay);
    auto url = [](uint16_t port) { return "http://127.0.0.1:" + std::to_string(port); };
    const std::string next = url(RefusingPort());
    boost::asio::io_context io;
    auto client = EtcdClient::Create(
        io, {.endpoints = {url(first.port()), next}, .timeout = std::chrono::milliseconds(250)});
    ASSERT_TRUE(client.ok());
    std::optional<StatusOr<nlohmann::json>> got;
    (*client)->Call("/v3/kv/put", {{"key", "a2V5"}},
                    [&](StatusOr<nlohmann::json> r) { got = r; });
    RunUntil(io, [&] { return got.has_value(); });
    ASSERT_TRUE(got.has_value() && got->ok()) << (got ? got->status().message() : "no answer");
    EXPECT_EQ((*client)->current_endpoint(), moves ? next : url(first.port())) << delay.count();
    (*client)->Shutdown();
  }
}

}  // namespace
}  // namespace lm::store
