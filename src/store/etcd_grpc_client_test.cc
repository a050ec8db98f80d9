#include "store/etcd_grpc_client.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <map>
#include <optional>
#include <thread>

#include "store/etcd_grpc_api.h"
#include "store/etcd_maintenance.h"
#include "store/etcd_proto.h"

namespace lm::store {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

std::string Frame(std::string_view m, char flag = 0) {
  uint32_t n = static_cast<uint32_t>(m.size());
  std::string out = {flag, static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                     static_cast<char>(n >> 8), static_cast<char>(n)};
  return out.append(m);
}

// What the fake server answers to one request.
struct Reply {
  std::vector<std::string> messages;  // each framed, unless `raw` is set
  std::string raw;                    // bytes sent as the body instead of `messages`
  std::optional<int> grpc_status = 0;  // nullopt: no grpc-status at all
  std::string grpc_message;
  bool trailers_only = false;  // grpc-status in the response headers, no body
  bool hang = false;           // never answer
  bool refuse = false;         // RST_STREAM REFUSED_STREAM (not processed)
  bool keep_open = false;      // send the messages, then leave the stream open
  std::chrono::milliseconds delay{0};  // answer this much later
};

struct Request {
  std::string path;
  std::map<std::string, std::string> headers;
  std::string body;  // the first gRPC message
};

// A gRPC server good enough to answer EtcdGrpcClient: HTTP/2 (nghttp2's server session) on
// 127.0.0.1 port 0, on the test's io_context; `handler` decides each answer.
class FakeGrpcServer {
 public:
  explicit FakeGrpcServer(asio::io_context& io, std::function<Reply(const Request&)> handler)
      : io_(io), acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}),
        handler_(std::move(handler)) {
    Accept();
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }
  int connections = 0;
  int closed = 0;  // connections the client closed (end of stream on the socket)
  std::vector<Request> requests;
  // Ends every open stream with `reply`'s trailers (e.g. a watch ended by etcd).
  void EndOpenStreams(int grpc_status, std::string message) {
    for (auto& c : conns_) c->EndOpen(grpc_status, message);
  }
  void CloseAll() {
    for (auto& c : conns_) c->sock.close();
  }

 private:
  struct Stream {
    Request req;
    std::string in;
    bool answered = false;
    std::string out;
    size_t sent = 0;
    bool keep_open = false;
    std::string trailer_status, trailer_message;
  };
  struct Conn : std::enable_shared_from_this<Conn> {
    FakeGrpcServer* server;
    tcp::socket sock;
    nghttp2_session* session = nullptr;
    std::map<int32_t, std::shared_ptr<Stream>> streams;
    std::array<uint8_t, 16384> rbuf{};
    std::string wbuf;
    bool writing = false;
    Conn(FakeGrpcServer* s, tcp::socket so) : server(s), sock(std::move(so)) {}
    ~Conn() { nghttp2_session_del(session); }

    void Start() {
      nghttp2_session_callbacks* cbs;
      nghttp2_session_callbacks_new(&cbs);
      nghttp2_session_callbacks_set_on_begin_headers_callback(
          cbs, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
            static_cast<Conn*>(u)->streams[f->hd.stream_id] = std::make_shared<Stream>();
            return 0;
          });
      nghttp2_session_callbacks_set_on_header_callback(
          cbs, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl,
                  const uint8_t* v, size_t vl, uint8_t, void* u) {
            auto& s = static_cast<Conn*>(u)->streams[f->hd.stream_id];
            std::string name(reinterpret_cast<const char*>(n), nl);
            std::string value(reinterpret_cast<const char*>(v), vl);
            if (name == ":path") s->req.path = value;
            s->req.headers[name] = value;
            return 0;
          });
      nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
          cbs, [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t l, void* u) {
            auto* c = static_cast<Conn*>(u);
            auto& s = c->streams[id];
            s->in.append(reinterpret_cast<const char*>(d), l);
            c->MaybeAnswer(id);
            return 0;
          });
      nghttp2_session_callbacks_set_on_frame_recv_callback(
          cbs, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
            if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) static_cast<Conn*>(u)->MaybeAnswer(
                f->hd.stream_id, true);
            return 0;
          });
      nghttp2_session_server_new(&session, cbs, this);
      nghttp2_session_callbacks_del(cbs);
      nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000}};
      nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, iv, 1);
      Read();
      Flush();
    }

    void MaybeAnswer(int32_t id, bool ended = false) {
      auto it = streams.find(id);
      if (it == streams.end() || it->second->answered) return;
      auto s = it->second;
      if (s->in.size() >= 5) {
        const auto* p = reinterpret_cast<const unsigned char*>(s->in.data());
        size_t n = size_t{p[1]} << 24 | size_t{p[2]} << 16 | size_t{p[3]} << 8 | p[4];
        if (s->in.size() < 5 + n && !ended) return;
        s->req.body = s->in.substr(5, n);
      } else if (!ended) {
        return;
      }
      s->answered = true;
      server->requests.push_back(s->req);
      Reply r = server->handler_(s->req);
      if (r.hang) return;
      if (r.delay.count() > 0) {
        auto timer = std::make_shared<asio::steady_timer>(server->io_, r.delay);
        r.delay = {};
        timer->async_wait([self = shared_from_this(), timer, id, r](auto ec) {
          if (ec || !self->sock.is_open()) return;
          self->Respond(id, r);
          self->Flush();
        });
        return;
      }
      Respond(id, r);
    }

    void Respond(int32_t id, const Reply& r) {
      auto s = streams[id];
      if (r.refuse) {
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
        return;
      }
      std::vector<nghttp2_nv> h;
      auto add = [&](const char* n, const std::string& v) {
        h.push_back({(uint8_t*)n, (uint8_t*)v.c_str(), strlen(n), v.size(), NGHTTP2_NV_FLAG_NONE});
      };
      static const std::string k200 = "200", kGrpc = "application/grpc";
      add(":status", k200);
      add("content-type", kGrpc);
      s->trailer_status = r.grpc_status ? std::to_string(*r.grpc_status) : "";
      s->trailer_message = r.grpc_message;
      if (r.trailers_only) {
        add("grpc-status", s->trailer_status);
        add("grpc-message", s->trailer_message);
        nghttp2_submit_response(session, id, h.data(), h.size(), nullptr);
        return;
      }
      s->out = r.raw;
      for (const auto& m : r.messages) s->out += Frame(m);
      s->keep_open = r.keep_open;
      nghttp2_data_provider prd;
      prd.source.ptr = s.get();
      prd.read_callback = [](nghttp2_session* sess, int32_t sid, uint8_t* buf, size_t len,
                             uint32_t* flags, nghttp2_data_source* src, void*) -> ssize_t {
        auto* st = static_cast<Stream*>(src->ptr);
        size_t n = std::min(len, st->out.size() - st->sent);
        memcpy(buf, st->out.data() + st->sent, n);
        st->sent += n;
        if (st->sent < st->out.size()) return n;
        if (st->keep_open) return n ? ssize_t(n) : NGHTTP2_ERR_DEFERRED;
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (st->trailer_status.empty()) return n;  // END_STREAM without trailers
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_nv t[] = {
            {(uint8_t*)"grpc-status", (uint8_t*)st->trailer_status.c_str(), 11,
             st->trailer_status.size(), NGHTTP2_NV_FLAG_NONE},
            {(uint8_t*)"grpc-message", (uint8_t*)st->trailer_message.c_str(), 12,
             st->trailer_message.size(), NGHTTP2_NV_FLAG_NONE}};
        nghttp2_submit_trailer(sess, sid, t, 2);
        return n;
      };
      nghttp2_submit_response(session, id, h.data(), h.size(), &prd);
    }

    void EndOpen(int status, const std::string& message) {
      for (auto& [id, s] : streams) {
        if (!s->keep_open) continue;
        s->keep_open = false;
        s->trailer_status = std::to_string(status);
        s->trailer_message = message;
        nghttp2_session_resume_data(session, id);
      }
      Flush();
    }

    void Read() {
      sock.async_read_some(asio::buffer(rbuf), [self = shared_from_this()](auto ec, size_t n) {
        if (ec == asio::error::eof || ec == asio::error::connection_reset) ++self->server->closed;
        if (ec) return;
        if (nghttp2_session_mem_recv(self->session, self->rbuf.data(), n) < 0) {
          return self->sock.close();
        }
        self->Flush();
        self->Read();
      });
    }
    void Flush() {
      if (writing || !sock.is_open()) return;
      wbuf.clear();
      const uint8_t* d;
      ssize_t n;
      while ((n = nghttp2_session_mem_send(session, &d)) > 0) wbuf.append((const char*)d, n);
      if (wbuf.empty()) return;
      writing = true;
      asio::async_write(sock, asio::buffer(wbuf), [self = shared_from_this()](auto ec, size_t) {
        self->writing = false;
        if (!ec) self->Flush();
      });
    }
  };

  void Accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec) return;
      ++connections;
      auto c = std::make_shared<Conn>(this, std::move(s));
      conns_.push_back(c);
      c->Start();
      Accept();
    });
  }

  asio::io_context& io_;
  tcp::acceptor acceptor_;
  std::function<Reply(const Request&)> handler_;
  std::vector<std::shared_ptr<Conn>> conns_;
};

// A port nothing listens on (bound, then closed).
std::string DeadUrl(asio::io_context& io) {
  tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
  std::string url = "http://127.0.0.1:" + std::to_string(a.local_endpoint().port());
  a.close();
  return url;
}

class EtcdGrpcClientTest : public ::testing::Test {
 protected:
  std::unique_ptr<EtcdGrpcClient> Client(std::vector<std::string> endpoints,
                                         std::chrono::milliseconds timeout = 2000ms) {
    auto c = EtcdGrpcClient::Create(io_, {.endpoints = std::move(endpoints), .timeout = timeout});
    EXPECT_TRUE(c.ok()) << c.status().message();
    return std::move(*c);
  }
  // Runs the io_context until `done` holds (or 5 s pass: a failure).
  void RunUntil(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (!done() && std::chrono::steady_clock::now() < deadline) io_.run_one_for(50ms);
    ASSERT_TRUE(done()) << "timed out";
  }
  StatusOr<std::string> CallOnce(EtcdGrpcClient& c, const std::string& method,
                                 bool idempotent = false) {
    std::optional<StatusOr<std::string>> got;
    int calls = 0;
    c.Call(method, "req", [&](StatusOr<std::string> r) {
      ++calls;
      got = std::move(r);
    }, idempotent);
    RunUntil([&] { return got.has_value(); });
    io_.poll();
    EXPECT_EQ(calls, 1);
    return got ? std::move(*got) : StatusOr<std::string>(Internal("no answer"));
  }
  asio::io_context io_;
};

TEST_F(EtcdGrpcClientTest, AUnaryCallGetsItsAnswerAndAsksForAMemberWithALeader) {
  FakeGrpcServer s(io_, [](const Request& r) { return Reply{.messages = {"answer:" + r.body}}; });
  auto c = Client({s.url()});
  auto r = CallOnce(*c, "/etcdserverpb.KV/Range");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, "answer:req");
  ASSERT_EQ(s.requests.size(), 1u);
  EXPECT_EQ(s.requests[0].path, "/etcdserverpb.KV/Range");
  EXPECT_EQ(s.requests[0].headers["hasleader"], "true");
  EXPECT_EQ(s.requests[0].headers["content-type"], "application/grpc");
  EXPECT_EQ(s.requests[0].headers["te"], "trailers");
}

TEST_F(EtcdGrpcClientTest, CallsShareOneConnection) {
  FakeGrpcServer s(io_, [](const Request&) { return Reply{.messages = {"ok"}}; });
  auto c = Client({s.url()});
  int answered = 0;
  for (int i = 0; i < 50; ++i) {
    c->Call("/m", "x", [&](StatusOr<std::string> r) { answered += r.ok(); });
  }
  RunUntil([&] { return answered == 50; });
  EXPECT_EQ(s.connections, 1);
}

// A connection runs out of stream ids after 2^30 calls (days at full rate): the last one drains
// it and calls go on over a new one, none failing.
TEST_F(EtcdGrpcClientTest, ACallWhenStreamIdsRunOutGoesOverANewConnection) {
  FakeGrpcServer s(io_, [](const Request&) { return Reply{.messages = {"ok"}}; });
  auto c = Client({s.url()});
  c->set_first_stream_id_for_test(INT32_MAX - 4);  // 3 streams left: ...-4, ...-2, INT32_MAX
  for (int i = 0; i < 5; ++i) {
    auto r = CallOnce(*c, "/m");
    ASSERT_TRUE(r.ok()) << i << ": " << r.status().message();
  }
  EXPECT_EQ(s.connections, 2);
  EXPECT_EQ(s.requests.size(), 5u);
}

// tokenmgr stops when its io_context runs out of work: a kept connection must not hold it.
TEST_F(EtcdGrpcClientTest, AnIdleConnectionKeepsNothingPending) {
  auto server_io = std::make_unique<asio::io_context>();
  std::optional<FakeGrpcServer> s;
  s.emplace(*server_io, [](const Request&) { return Reply{.messages = {"ok"}}; });
  std::thread server([&] {
    auto guard = asio::make_work_guard(*server_io);
    server_io->run();
  });
  auto c = Client({s->url()});
  bool answered = false;
  c->Call("/m", "x", [&](StatusOr<std::string> r) { answered = r.ok(); });
  io_.run_for(5s);  // returns as soon as nothing is pending
  EXPECT_TRUE(answered);
  EXPECT_TRUE(io_.stopped()) << "the idle connection kept the io_context running";
  io_.restart();
  answered = false;
  c->Call("/m", "x", [&](StatusOr<std::string> r) { answered = r.ok(); });  // reused
  io_.run_for(5s);
  EXPECT_TRUE(answered);
  asio::post(*server_io, [&] { server_io->stop(); });
  server.join();
  EXPECT_EQ(s->connections, 1);
}

TEST_F(EtcdGrpcClientTest, GrpcStatusCodesMapToOurs) {
  struct Case {
    int code;
    std::string message;
    StatusCode want;
    std::string in_text;
  };
  for (const Case& k : std::vector<Case>{
           {3, "etcdserver: bad", StatusCode::kInternal, "gRPC status 3"},
           {5, "etcdserver: requested lease not found", StatusCode::kNotFound, "lease not found"},
           {8, "etcdserver: mvcc: database space exceeded", StatusCode::kUnavailable,
            EtcdMaintenance::kNoSpaceMessage},
           {14, "etcdserver: request timed out", StatusCode::kUnavailable, "timed out"},
           {12, "unknown method", StatusCode::kUnavailable, "unknown method"}}) {
    for (bool trailers_only : {false, true}) {
      FakeGrpcServer s(io_, [&](const Request&) {
        return Reply{.grpc_status = k.code, .grpc_message = k.message,
                     .trailers_only = trailers_only};
      });
      auto c = Client({s.url()});
      auto r = CallOnce(*c, "/m");
      EXPECT_EQ(r.status().code(), k.want) << k.code << " " << r.status().message();
      EXPECT_NE(r.status().message().find(k.in_text), std::string::npos) << r.status().message();
    }
  }
}

TEST_F(EtcdGrpcClientTest, APercentEncodedMessageIsDecodedAndHostileBytesAreNotLogged) {
  FakeGrpcServer s(io_, [](const Request&) {
    return Reply{.grpc_status = 14, .grpc_message = "etcdserver:%20no%20leader%0A%ff%zz%"};
  });
  auto c = Client({s.url()});
  auto r = CallOnce(*c, "/m");
  EXPECT_NE(r.status().message().find("etcdserver: no leader\\x0a\\xff%zz%"), std::string::npos)
      << r.status().message();
}

TEST_F(EtcdGrpcClientTest, AMemberWithoutLeaderIsLeftAndAReadIsRetriedOnTheNext) {
  FakeGrpcServer cut(io_, [](const Request&) {
    return Reply{.grpc_status = 14, .grpc_message = "etcdserver: no leader"};
  });
  FakeGrpcServer ok(io_, [](const Request&) { return Reply{.messages = {"fine"}}; });
  auto c = Client({cut.url(), ok.url()});
  auto r = CallOnce(*c, "/read", /*idempotent=*/true);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, "fine");
  EXPECT_EQ(c->current_endpoint(), ok.url());
}

TEST_F(EtcdGrpcClientTest, AWriteRefusedForNoLeaderFailsButTheNextCallGoesElsewhere) {
  FakeGrpcServer cut(io_, [](const Request&) {
    return Reply{.grpc_status = 14, .grpc_message = "etcdserver: no leader"};
  });
  FakeGrpcServer ok(io_, [](const Request&) { return Reply{.messages = {"fine"}}; });
  auto c = Client({cut.url(), ok.url()});
  auto r = CallOnce(*c, "/write");
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(ok.requests.size(), 0u);
  ASSERT_TRUE(CallOnce(*c, "/write").ok());
  EXPECT_EQ(ok.requests.size(), 1u);
}

TEST_F(EtcdGrpcClientTest, AReadEndedByALeaderChangeIsSentAgainOnceElsewhere) {
  FakeGrpcServer a(io_, [](const Request&) {
    return Reply{.grpc_status = 14, .grpc_message = "etcdserver: leader changed"};
  });
  FakeGrpcServer b(io_, [](const Request&) {
    return Reply{.grpc_status = 14, .grpc_message = "etcdserver: leader changed"};
  });
  auto c = Client({a.url(), b.url()});
  auto r = CallOnce(*c, "/read", true);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(a.requests.size() + b.requests.size(), 2u);  // once, then once more: no loop
  auto w = CallOnce(*c, "/write");  // a write is not sent again
  EXPECT_EQ(a.requests.size() + b.requests.size(), 3u);
}

TEST_F(EtcdGrpcClientTest, MembersThatRefuseConnectionsAreSkippedForAnyCall) {
  FakeGrpcServer ok(io_, [](const Request&) { return Reply{.messages = {"fine"}}; });
  std::string dead = DeadUrl(io_);
  auto c = Client({dead, ok.url()});
  auto r = CallOnce(*c, "/write");
  ASSERT_TRUE(r.ok()) << r.status().message();
  auto all_dead = Client({dead, DeadUrl(io_)});
  auto f = CallOnce(*all_dead, "/write");
  EXPECT_EQ(f.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(f.status().message().find("connect"), std::string::npos) << f.status().message();
}

TEST_F(EtcdGrpcClientTest, ACallTimingOutLeavesTheOtherCallsOnItsConnectionTheirDeadlines) {
  // A release stuck in a network cut must still land when the cut heals, even though a probe
  // on the same connection timed out meanwhile.
  FakeGrpcServer s(io_, [](const Request& r) {
    return r.path == "/hang" ? Reply{.hang = true}
                             : Reply{.messages = {"late"}, .delay = 150ms};
  });
  auto c = Client({s.url()}, 200ms);
  std::optional<Status> hung;
  std::optional<StatusOr<std::string>> slow;
  c->Call("/hang", "x", [&](StatusOr<std::string> r) { hung = r.status(); });
  asio::steady_timer later(io_, 100ms);  // sent 100 ms later: answered at 250, after the 200
  later.async_wait([&](auto) {
    c->Call("/slow", "x", [&](StatusOr<std::string> r) { slow = std::move(r); });
  });
  RunUntil([&] { return hung.has_value() && slow.has_value(); });
  EXPECT_EQ(hung->code(), StatusCode::kUnavailable);
  ASSERT_TRUE(slow->ok()) << slow->status().message();
  EXPECT_EQ(**slow, "late");
  EXPECT_EQ(s.connections, 1);
}

TEST_F(EtcdGrpcClientTest, NoAnswerWithinTheTimeoutFailsTheCallAndLaterOnesUseANewConnection) {
  FakeGrpcServer s(io_, [](const Request&) { return Reply{.hang = true}; });
  auto c = Client({s.url()}, 200ms);
  auto t0 = std::chrono::steady_clock::now();
  auto r = CallOnce(*c, "/write");
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("no answer within 200 ms"), std::string::npos)
      << r.status().message();
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 200ms);
  EXPECT_EQ(s.requests.size(), 1u);  // a write whose outcome is unknown is not sent again
  auto again = CallOnce(*c, "/write");  // on a new connection
  EXPECT_EQ(s.connections, 2);
}

// A member behind a link that flaps answers every call, late: half the timeout or more moves
// later calls to the next member (over a new connection); an answer in time leaves them.
TEST_F(EtcdGrpcClientTest, ACallAnsweredLateMovesLaterCallsToTheNextMember) {
  FakeGrpcServer a(io_, [](const Request& r) {
    return Reply{.messages = {"a"}, .delay = r.path == "/late" ? 130ms : 0ms};
  });
  FakeGrpcServer b(io_, [](const Request&) { return Reply{.messages = {"b"}}; });
  auto c = Client({a.url(), b.url()}, 250ms);
  for (const char* path : {"/prompt", "/prompt", "/late"}) {
    auto r = CallOnce(*c, path);
    ASSERT_TRUE(r.ok()) << path << ": " << r.status().message();
    EXPECT_EQ(*r, "a") << path;
  }
  EXPECT_EQ(a.connections, 1);
  auto next = CallOnce(*c, "/prompt");
  ASSERT_TRUE(next.ok()) << next.status().message();
  EXPECT_EQ(*next, "b");
  EXPECT_EQ(c->current_endpoint(), b.url());
}

TEST_F(EtcdGrpcClientTest, AStreamRefusedUnprocessedIsSentAgainEvenForAWrite) {
  int n = 0;
  FakeGrpcServer s(io_, [&](const Request&) {
    return ++n == 1 ? Reply{.refuse = true} : Reply{.messages = {"second"}};
  });
  auto c = Client({s.url()});
  auto r = CallOnce(*c, "/write");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, "second");
  EXPECT_EQ(n, 2);
}

TEST_F(EtcdGrpcClientTest, HostileAnswersFailTheCallWithoutCrashing) {
  std::string huge(5, '\0');
  huge[1] = '\x04';  // 64 MiB + 1 announced
  huge[4] = '\x01';
  std::vector<std::pair<Reply, std::string>> cases = {
      {Reply{.raw = huge}, "limit"},
      {Reply{.raw = Frame("x", 1)}, "compressed"},
      {Reply{.messages = {"x"}, .grpc_status = std::nullopt}, "without a gRPC status"},
      {Reply{.raw = "\x00\x00\x00"}, "without a message"},  // a truncated frame, then status 0
      {Reply{}, "without a message"},
  };
  for (auto& [reply, text] : cases) {
    FakeGrpcServer s(io_, [&](const Request&) { return reply; });
    auto c = Client({s.url()});
    auto r = CallOnce(*c, "/m");
    EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << text;
    EXPECT_NE(r.status().message().find(text), std::string::npos) << r.status().message();
  }
}

TEST_F(EtcdGrpcClientTest, AServerThatDoesNotSpeakHttp2FailsTheCall) {
  tcp::acceptor a(io_, {asio::ip::make_address("127.0.0.1"), 0});
  std::string url = "http://127.0.0.1:" + std::to_string(a.local_endpoint().port());
  tcp::socket peer(io_);
  a.async_accept(peer, [&](boost::system::error_code) {
    static const std::string kAnswer = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    asio::async_write(peer, asio::buffer(kAnswer), [&](auto, size_t) { peer.close(); });
  });
  auto c = Client({url});
  auto r = CallOnce(*c, "/m");
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
}

TEST_F(EtcdGrpcClientTest, AWatchDeliversEveryAnswerInOrderAndItsEndOnce) {
  FakeGrpcServer s(io_, [](const Request&) {
    return Reply{.messages = {"created", "one", "two"}, .keep_open = true};
  });
  auto c = Client({s.url()});
  std::vector<std::string> got;
  std::vector<Status> closed;
  c->Watch("create", [&](std::string_view m) { got.emplace_back(m); },
           [&](Status why) { closed.push_back(why); });
  RunUntil([&] { return got.size() == 3; });
  EXPECT_EQ(got, (std::vector<std::string>{"created", "one", "two"}));
  EXPECT_EQ(s.requests.at(0).path, "/etcdserverpb.Watch/Watch");
  EXPECT_EQ(s.requests.at(0).body, "create");
  EXPECT_EQ(s.requests.at(0).headers["hasleader"], "true");
  EXPECT_TRUE(closed.empty());
  s.EndOpenStreams(14, "etcdserver: no leader");
  RunUntil([&] { return !closed.empty(); });
  io_.poll();
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].code(), StatusCode::kUnavailable);
  EXPECT_NE(closed[0].message().find("no leader"), std::string::npos) << closed[0].message();
}

TEST_F(EtcdGrpcClientTest, ACancelledWatchReportsNothingAndAnUnansweredOneTimesOut) {
  FakeGrpcServer s(io_, [](const Request&) {
    return Reply{.messages = {"created"}, .keep_open = true};
  });
  auto c = Client({s.url()}, 200ms);
  int messages = 0, closes = 0;
  c->Watch("w", [&](std::string_view) { ++messages; }, [&](Status) { ++closes; });
  RunUntil([&] { return messages == 1; });
  c->CancelWatch();
  io_.run_for(300ms);  // past the timeout: an answered watch may stay silent
  EXPECT_EQ(closes, 0);

  FakeGrpcServer silent(io_, [](const Request&) { return Reply{.hang = true}; });
  auto quiet = Client({silent.url()}, 200ms);
  std::optional<Status> quiet_why;
  quiet->Watch("w", [](std::string_view) {}, [&](Status s) { quiet_why = s; });
  RunUntil([&] { return quiet_why.has_value(); });
  EXPECT_NE(quiet_why->message().find("no answer within 200 ms"), std::string::npos)
      << quiet_why->message();
}

TEST_F(EtcdGrpcClientTest, ShutdownFailsCallsInFlightOnceAndRefusesNewOnes) {
  FakeGrpcServer s(io_, [](const Request&) { return Reply{.hang = true}; });
  auto c = Client({s.url()});
  std::vector<Status> got;
  for (int i = 0; i < 3; ++i) c->Call("/m", "x", [&](StatusOr<std::string> r) {
      got.push_back(r.status());
    });
  RunUntil([&] { return s.requests.size() == 3; });
  c->Shutdown();
  c->Call("/m", "x", [&](StatusOr<std::string> r) { got.push_back(r.status()); });
  EXPECT_TRUE(got.empty());  // never inside the call
  RunUntil([&] { return got.size() == 4; });
  io_.poll();
  EXPECT_EQ(got.size(), 4u);
  for (const Status& st : got) EXPECT_EQ(st.code(), StatusCode::kUnavailable);
}

// A release chase must not queue behind the release stuck on the shared connection (after a
// network cut heals, TCP retransmits it only when its backoff timer fires): CallApart gets its
// answer over a connection of its own, closes it, and the shared one goes on serving.
TEST_F(EtcdGrpcClientTest, ACallApartIsAnsweredPastAStuckCallAndClosesItsConnection) {
  FakeGrpcServer s(io_, [](const Request& r) {
    return r.path == "/stuck" ? Reply{.hang = true} : Reply{.messages = {"ok:" + r.path}};
  });
  auto c = Client({s.url()});
  std::optional<StatusOr<std::string>> stuck, apart;
  c->Call("/stuck", "x", [&](StatusOr<std::string> r) { stuck = std::move(r); });
  RunUntil([&] { return s.requests.size() == 1; });
  c->CallApart("/chase", "x", [&](StatusOr<std::string> r) { apart = std::move(r); });
  EXPECT_FALSE(apart.has_value());  // never inside the call
  RunUntil([&] { return apart.has_value() && s.closed == 1; });
  ASSERT_TRUE(apart->ok()) << apart->status().message();
  EXPECT_EQ(**apart, "ok:/chase");
  EXPECT_EQ(s.connections, 2);
  EXPECT_FALSE(stuck.has_value());
  auto later = CallOnce(*c, "/later");  // the shared connection, still up
  ASSERT_TRUE(later.ok()) << later.status().message();
  EXPECT_EQ(s.connections, 2);
  EXPECT_EQ(s.closed, 1);
}

TEST_F(EtcdGrpcClientTest, ACallApartTimesOutFailsOverAndShutdownClosesItsConnection) {
  FakeGrpcServer a(io_, [](const Request&) { return Reply{.hang = true}; });
  bool b_hangs = false;
  FakeGrpcServer b(io_, [&](const Request&) {
    return b_hangs ? Reply{.hang = true} : Reply{.messages = {"b"}};
  });
  auto c = Client({a.url(), b.url()}, 200ms);
  std::optional<StatusOr<std::string>> first;
  c->CallApart("/chase", "x", [&](StatusOr<std::string> r) { first = std::move(r); });
  RunUntil([&] { return first.has_value(); });
  EXPECT_EQ(first->status().code(), StatusCode::kUnavailable);
  EXPECT_NE(first->status().message().find("no answer within 200 ms"), std::string::npos)
      << first->status().message();
  EXPECT_EQ(a.requests.size(), 1u);  // sent once: its outcome is unknown
  RunUntil([&] { return a.closed == 1; });
  auto next = CallOnce(*c, "/m");  // the member that did not answer is left
  ASSERT_TRUE(next.ok()) << next.status().message();
  EXPECT_EQ(*next, "b");

  b_hangs = true;
  std::vector<Status> got;
  c->CallApart("/chase", "x", [&](StatusOr<std::string> r) { got.push_back(r.status()); });
  RunUntil([&] { return b.requests.size() == 2; });
  c->Shutdown();
  c->CallApart("/chase", "x", [&](StatusOr<std::string> r) { got.push_back(r.status()); });
  RunUntil([&] { return got.size() == 2 && b.closed == 2; });
  io_.poll();
  ASSERT_EQ(got.size(), 2u);
  for (const Status& st : got) EXPECT_EQ(st.code(), StatusCode::kUnavailable);
}

// EtcdGrpcApi on the same fake: what it does with answers it cannot trust.
TEST_F(EtcdGrpcClientTest, ApiReadsATxnAnswerAndRefusesOneWithoutARevision) {
  // TxnResponse{header{revision: 7}, succeeded: true}
  const std::string good("\x0a\x02\x18\x07\x10\x01", 6);
  for (const auto& [answer, ok] : std::vector<std::pair<std::string, bool>>{
           {good, true}, {"", false}, {std::string("\x10\x01", 2), false}, {"\xff", false}}) {
    FakeGrpcServer s(io_, [&](const Request& r) {
      EXPECT_EQ(r.path, "/etcdserverpb.KV/Txn");
      EXPECT_EQ(r.body, proto::EncodeTxn(Txn{.success = {Op::Put("k", "v")}}));
      return Reply{.messages = {answer}};
    });
    EtcdGrpcApi api(Client({s.url()}));
    std::optional<StatusOr<TxnResponse>> got;
    api.DoTxn(Txn{.success = {Op::Put("k", "v")}}, [&](StatusOr<TxnResponse> r) { got = r; });
    RunUntil([&] { return got.has_value(); });
    ASSERT_EQ(got->ok(), ok) << got->status().message();
    if (ok) {
      EXPECT_TRUE((*got)->succeeded);
      EXPECT_EQ((*got)->revision, 7);
    } else {
      // Not "the compare failed": the outcome of the write is unknown.
      EXPECT_EQ(got->status().code(), StatusCode::kUnavailable);
      EXPECT_NE(got->status().message().find("not understood"), std::string::npos);
    }
  }
}

TEST_F(EtcdGrpcClientTest, ApiEndsAWatchWhoseAnswerCannotBeReadOnceAsInternal) {
  // WatchResponse{header{revision: 3}, created: true}, then bytes that are no WatchResponse.
  FakeGrpcServer s(io_, [](const Request&) {
    return Reply{.messages = {std::string("\x0a\x02\x18\x03\x18\x01", 6), "\x0f\x0f"},
                 .keep_open = true};
  });
  EtcdGrpcApi api(Client({s.url()}));
  std::vector<WatchResponse> got;
  std::vector<Status> closed;
  api.Watch({.key = "/p/", .range_end = "/p0"}, [&](const WatchResponse& w) { got.push_back(w); },
            [&](Status st) { closed.push_back(st); });
  RunUntil([&] { return !closed.empty(); });
  io_.run_for(100ms);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].created);
  EXPECT_EQ(got[0].revision, 3);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].code(), StatusCode::kInternal) << closed[0].message();
}

}  // namespace
}  // namespace lm::store
