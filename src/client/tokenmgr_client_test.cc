#include "client/tokenmgr_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <mutex>
#include <thread>
#include <vector>

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

TEST(ParseHttpUrl, AcceptsBracketedIpv6) {
  auto u = ParseHttpUrl("http://[::1]:8080/api/token");
  ASSERT_TRUE(u.ok()) << u.status().message();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, "8080");
  EXPECT_EQ(u->authority, "[::1]:8080");
  EXPECT_EQ(u->base_path, "/api/token");
  auto v = ParseHttpUrl("http://[fd00::1]/api/token");
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(v->host, "fd00::1");
  EXPECT_EQ(v->port, "80");
  EXPECT_EQ(v->authority, "[fd00::1]");
}

TEST(ParseHttpUrl, RejectsOthers) {
  for (const char* bad : {"",
                          "https://x/api",
                          "ftp://x",
                          "http://",
                          "http://h:0/a",
                          "http://h:99999/",
                          "http://h:x/",
                          "http://h/a b",
                          "http://h/a?q",
                          "http://bad host/",
                          "http://h:/",
                          "http://[::1/",
                          "http://[]:80/",
                          "http://[::g]:80/",
                          "http://[1.2.3.4]:80/",
                          "http://[::1]x/",
                          "http://[::1]:/",
                          "http://::1:80/",
                          "http://[fe80::1%eth0]:80/",
                          "http://[fe80::1%25lo]/",
                          "http://[::1%\r\nX: y]/"}) {
    auto u = ParseHttpUrl(bad);
    ASSERT_FALSE(u.ok()) << bad;
    EXPECT_NE(u.status().message().find("TOKENMGR_URL"), std::string::npos) << u.status().message();
  }
  EXPECT_NE(ParseHttpUrl("http://::1:80/").status().message().find("brackets"), std::string::npos);
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

// A one-thread HTTP server on 127.0.0.1:0 that answers a grant to every lock, 200 to every
// release and SetApiReply's answer (by default 200 "{}") to anything else, serves connections
// one after another, and records what it saw.
class StubTokenmgr {
 public:
  // close_after_lock: close each connection right after answering a lock (keep-alive promised).
  // address: where to listen (port 0), "127.0.0.1" or "::1".
  explicit StubTokenmgr(bool close_after_lock, const std::string& address = "127.0.0.1")
      : close_after_lock_(close_after_lock) {
    namespace net = boost::asio;
    auto ip = net::ip::make_address(address);
    acceptor_.open(ip.is_v6() ? net::ip::tcp::v6() : net::ip::tcp::v4());
    acceptor_.bind({ip, 0});
    acceptor_.listen();
    thread_ = std::thread([this] { Serve(); });
  }
  ~StubTokenmgr() {
    stop_ = true;
    boost::system::error_code ec;
    // Wake the accept with one last connection.
    boost::asio::ip::tcp::socket s(io_);
    s.connect(acceptor_.local_endpoint(), ec);
    thread_.join();
  }
  std::string url() const {
    auto ep = acceptor_.local_endpoint();
    std::string host =
        ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string();
    return "http://" + host + ":" + std::to_string(ep.port()) + "/api/token";
  }
  // Host headers seen, in order.
  std::vector<std::string> hosts() const {
    std::lock_guard<std::mutex> l(mu_);
    return hosts_;
  }
  int connections() const { return connections_; }
  // The answer to requests other than lock and release. hang: answer nothing and wait until the
  // client hangs up.
  void SetApiReply(int status, std::string body, bool hang = false) {
    std::lock_guard<std::mutex> l(mu_);
    api_status_ = status;
    api_body_ = std::move(body);
    hang_ = hang;
  }
  // Authorization headers seen, in order.
  std::vector<std::string> auths() const {
    std::lock_guard<std::mutex> l(mu_);
    return auths_;
  }
  // "METHOD body" of each request, in order.
  std::vector<std::string> bodies() const {
    std::lock_guard<std::mutex> l(mu_);
    return bodies_;
  }
  // Request targets in order, each prefixed with the connection number.
  std::vector<std::string> seen() const {
    std::lock_guard<std::mutex> l(mu_);
    return seen_;
  }

 private:
  void Serve() {
    namespace bhttp = boost::beast::http;
    while (!stop_) {
      boost::asio::ip::tcp::socket sock(io_);
      boost::system::error_code ec;
      acceptor_.accept(sock, ec);
      if (ec || stop_) return;
      int conn = ++connections_;
      boost::beast::flat_buffer buf;
      for (;;) {
        bhttp::request<bhttp::string_body> req;
        bhttp::read(sock, buf, req, ec);
        if (ec) break;
        std::string target(req.target());
        {
          std::lock_guard<std::mutex> l(mu_);
          seen_.push_back(std::to_string(conn) + " " + target);
          bodies_.push_back(std::string(req.method_string()) + " " + req.body());
          hosts_.emplace_back(req[boost::beast::http::field::host]);
          auths_.emplace_back(req[boost::beast::http::field::authorization]);
        }
        bool lock = target.find("/lock/") != std::string::npos;
        bool release = target.find("/release/") != std::string::npos;
        int status = 200;
        std::string body = lock ? R"({"id":"g1","token":5,"ttl":10})" : "{}";
        bool hang = false;
        if (!lock && !release) {
          std::lock_guard<std::mutex> l(mu_);
          status = api_status_;
          body = api_body_;
          hang = hang_;
        }
        if (hang) {  // until the client gives up and closes the connection
          char byte;
          boost::asio::read(sock, boost::asio::buffer(&byte, 1), ec);
          break;
        }
        bhttp::response<bhttp::string_body> res(static_cast<bhttp::status>(status), 11);
        res.body() = body;
        res.keep_alive(req.keep_alive());
        res.prepare_payload();
        bhttp::write(sock, res, ec);
        if (ec || !req.keep_alive() || (lock && close_after_lock_)) break;
      }
    }
  }
  bool close_after_lock_;
  mutable std::mutex mu_;
  std::vector<std::string> seen_;   // Guarded by mu_
  std::vector<std::string> hosts_;  // Guarded by mu_
  std::vector<std::string> bodies_;  // Guarded by mu_
  std::vector<std::string> auths_;   // Guarded by mu_
  int api_status_ = 200;             // Guarded by mu_
  std::string api_body_ = "{}";      // Guarded by mu_
  bool hang_ = false;                // Guarded by mu_
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_{io_};
  std::thread thread_;
};

TEST(ServerRoot, DropsTheApiSuffixOfAnAgentsUrl) {
  for (auto [url, root] : {std::pair{"http://tm:8080/api/token", ""},
                           {"http://tm:8080/api/tokenmgr", ""},
                           {"http://tm:8080", ""},
                           {"http://tm:8080/", ""},
                           {"http://tm/prefix/api/token", "/prefix"},
                           {"http://tm/prefix", "/prefix"}}) {
    auto u = ParseHttpUrl(url);
    ASSERT_TRUE(u.ok()) << url;
    EXPECT_EQ(ServerRoot(*u), root) << url;
  }
}

TEST(HttpTokenmgrClient, ApiCallsGoFromTheServerRootWithTheirJsonBody) {
  StubTokenmgr tm(/*close_after_lock=*/false);
  auto c = HttpTokenmgrClient::Create(tm.url(), std::nullopt);
  ASSERT_TRUE(c.ok());
  auto r = (*c)->Api("PUT", "/api/nodes/n1", R"({"state":"held"})");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->status, 200);
  ASSERT_TRUE((*c)->Api("GET", "/api/nodes").ok());
  EXPECT_EQ(tm.seen(), (std::vector<std::string>{"1 /api/nodes/n1", "1 /api/nodes"}));
  EXPECT_EQ(tm.bodies(), (std::vector<std::string>{R"(PUT {"state":"held"})", "GET "}));
}

TEST(HttpTokenmgrClient, ReleaseReusesTheGrantsConnection) {
  StubTokenmgr tm(/*close_after_lock=*/false);
  auto c = HttpTokenmgrClient::Create(tm.url(), std::nullopt);
  ASSERT_TRUE(c.ok());
  auto g = (*c)->Lock(std::chrono::seconds(1), std::chrono::seconds(10), "n1");
  ASSERT_TRUE(g.ok()) << g.status().message();
  ASSERT_TRUE((*c)->Release(g->id).ok());
  EXPECT_EQ((*c)->connections_opened(), 1u);
  // The next lock opens a new connection (a long poll is never sent on a kept one).
  ASSERT_TRUE((*c)->Lock(std::chrono::seconds(1), std::chrono::seconds(10), "n1").ok());
  EXPECT_EQ((*c)->connections_opened(), 2u);
  auto seen = tm.seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].substr(0, 2), "1 ");
  EXPECT_EQ(seen[1], "1 /api/token/release/g1");
  EXPECT_EQ(seen[2].substr(0, 2), "2 ");
}

TEST(HttpTokenmgrClient, ReleaseRetriesOnceWhenTheKeptConnectionWasClosed) {
  StubTokenmgr tm(/*close_after_lock=*/true);
  auto c = HttpTokenmgrClient::Create(tm.url(), std::nullopt);
  ASSERT_TRUE(c.ok());
  auto g = (*c)->Lock(std::chrono::seconds(1), std::chrono::seconds(10), "n1");
  ASSERT_TRUE(g.ok()) << g.status().message();
  Status s = (*c)->Release(g->id);
  EXPECT_TRUE(s.ok()) << s.message();
  EXPECT_EQ((*c)->connections_opened(), 2u);
  auto seen = tm.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1], "2 /api/token/release/g1");
}

TEST(HttpTokenmgrClient, ConnectsToAnIpv6Literal) {
  StubTokenmgr tm(/*close_after_lock=*/false, "::1");
  ASSERT_EQ(tm.url().substr(0, 12), "http://[::1]");
  auto c = HttpTokenmgrClient::Create(tm.url(), std::nullopt);
  ASSERT_TRUE(c.ok()) << c.status().message();
  auto g = (*c)->Lock(std::chrono::seconds(1), std::chrono::seconds(10), "n1");
  ASSERT_TRUE(g.ok()) << g.status().message();
  ASSERT_TRUE((*c)->Release(g->id).ok());
  auto hosts = tm.hosts();
  ASSERT_EQ(hosts.size(), 2u);
  EXPECT_EQ(hosts[0], tm.url().substr(7, tm.url().find("/api") - 7));  // "[::1]:<port>"
}

TEST(HttpTokenmgrClient, AbortedClientFailsFast) {
  StubTokenmgr tm(/*close_after_lock=*/false);
  auto c = HttpTokenmgrClient::Create(tm.url(), std::nullopt);
  ASSERT_TRUE(c.ok());
  (*c)->Abort();
  EXPECT_EQ((*c)->Lock(std::chrono::seconds(1), std::chrono::seconds(10), "n1").status().code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(tm.connections(), 0);
}

console::AgentReport SampleReport() {
  console::AgentReport r;
  r.report.pod = "pod-7";
  r.report.state = console::NodeState::kHeld;
  r.report.license = "license3";
  r.report.version = "9.8.7";
  console::Event e;
  e.kind = console::EventKind::kClaim;
  e.license = "license3";
  e.token = 42;
  e.time = WallTime(std::chrono::milliseconds(1700000000000));
  r.events.push_back(e);
  return r;
}

TEST(HttpTokenmgrClient, ReportIsAPutToApiNodesOnItsOwnConnectionWithTheAuthHeader) {
  StubTokenmgr tm(/*close_after_lock=*/false);
  tm.SetApiReply(200, R"({"cordoned":true,"disabled":["license1","license2"],"acknowledged":1})");
  auto c = HttpTokenmgrClient::Create(tm.url(), std::string("s3cret"));
  ASSERT_TRUE(c.ok());
  auto r = (*c)->Report("node:7", SampleReport(), std::chrono::seconds(2));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->cordoned);
  EXPECT_EQ(r->disabled, (std::vector<std::string>{"license1", "license2"}));
  EXPECT_EQ(r->acknowledged, 1u);
  ASSERT_TRUE((*c)->Report("node:7", SampleReport(), std::chrono::seconds(2)).ok());
  // From the server's root, the node percent-encoded; a new connection each, closed after.
  EXPECT_EQ(tm.seen(), (std::vector<std::string>{"1 /api/nodes/node%3A7", "2 /api/nodes/node%3A7"}));
  EXPECT_EQ((*c)->connections_opened(), 2u);
  EXPECT_EQ(tm.auths(), (std::vector<std::string>{"Bearer s3cret", "Bearer s3cret"}));
  std::string sent = tm.bodies()[0];
  ASSERT_EQ(sent.substr(0, 4), "PUT ");
  auto parsed = console::ParseAgentReport("node:7", sent.substr(4));
  ASSERT_TRUE(parsed.ok()) << parsed.status().message() << ": " << sent;
  EXPECT_EQ(parsed->report.pod, "pod-7");
  EXPECT_EQ(parsed->report.state, console::NodeState::kHeld);
  EXPECT_EQ(parsed->report.version, "9.8.7");
  ASSERT_EQ(parsed->events.size(), 1u);
  EXPECT_EQ(parsed->events[0].token, 42u);
  EXPECT_EQ(UnixMillis(parsed->events[0].time), 1700000000000);
}

TEST(HttpTokenmgrClient, ReportAnswersMapToTheContract) {
  StubTokenmgr tm(/*close_after_lock=*/false);
  auto c = HttpTokenmgrClient::Create(tm.url(), std::nullopt);
  ASSERT_TRUE(c.ok());
  const std::pair<int, StatusCode> cases[] = {
      {400, StatusCode::kInvalidArgument}, {413, StatusCode::kInvalidArgument},
      {401, StatusCode::kUnauthenticated}, {404, StatusCode::kNotFound},
      {503, StatusCode::kUnavailable},     {500, StatusCode::kUnavailable},
      {405, StatusCode::kUnavailable},     {302, StatusCode::kUnavailable}};
  for (auto [status, code] : cases) {
    tm.SetApiReply(status, R"({"Error":"no"})");
    auto r = (*c)->Report("n1", SampleReport(), std::chrono::seconds(2));
    EXPECT_EQ(r.status().code(), code) << status << ": " << r.status().message();
  }
}

TEST(HttpTokenmgrClient, HostileOrGarbledReportAnswersAreUnavailable) {
  StubTokenmgr tm(/*close_after_lock=*/false);
  auto c = HttpTokenmgrClient::Create(tm.url(), std::nullopt);
  ASSERT_TRUE(c.ok());
  for (const std::string& body :
       {std::string(2 * 1024 * 1024, '['),  // far over the client's body limit
        std::string("garbage"), std::string("[]"), std::string(R"({"cordoned":true})"),
        std::string(R"({"cordoned":"yes","disabled":[],"acknowledged":0})"),
        std::string(R"({"cordoned":false,"disabled":["../etc"],"acknowledged":0})"),
        std::string(R"({"cordoned":false,"disabled":["<script>"],"acknowledged":0})"),
        std::string(R"({"cordoned":false,"disabled":[],"acknowledged":-1})"),
        std::string(R"({"cordoned":false,"disabled":[],"acknowledged":1e300})")}) {
    tm.SetApiReply(200, body);
    auto r = (*c)->Report("n1", SampleReport(), std::chrono::seconds(2));
    EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << body.substr(0, 80);
  }
}

TEST(HttpTokenmgrClient, HungReportCostsOnlyItsTimeout) {
  StubTokenmgr tm(/*close_after_lock=*/false);
  tm.SetApiReply(200, "{}", /*hang=*/true);
  auto c = HttpTokenmgrClient::Create(tm.url(), std::nullopt);
  ASSERT_TRUE(c.ok());
  auto start = std::chrono::steady_clock::now();
  auto r = (*c)->Report("n1", SampleReport(), std::chrono::milliseconds(200));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_GE(took, std::chrono::milliseconds(200));
  EXPECT_LT(took, std::chrono::seconds(2));  // not the 5 s io timeout
}

TEST(ParseReportResponse, TakesTheAcknowledgedCount) {
  auto r = ParseReportResponse(200, R"({"cordoned":false,"disabled":[],"acknowledged":64})");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(r->cordoned);
  EXPECT_EQ(r->acknowledged, 64u);
}

}  // namespace
}  // namespace lm::client
