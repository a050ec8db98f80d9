#include "store/etcd_grpc_client.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cstring>
#include <map>

#include "store/etcd_record.h"

namespace lm::store {

namespace asio = boost::asio;
namespace beast = boost::beast;
using SteadyClock = std::chrono::steady_clock;

namespace {

// A gRPC message on the wire: a 0 byte (not compressed), its length (4 bytes, big endian), it.
std::string Frame(std::string_view message) {
  std::string out(5, '\0');
  uint32_t n = static_cast<uint32_t>(message.size());
  out[1] = static_cast<char>(n >> 24);
  out[2] = static_cast<char>(n >> 16);
  out[3] = static_cast<char>(n >> 8);
  out[4] = static_cast<char>(n);
  out.append(message);
  return out;
}

// grpc-message is percent-encoded (RFC 3986 style) by the server.
std::string PercentDecode(std::string_view in) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < in.size() && out.size() < 1024; ++i) {
    if (in[i] == '%' && i + 2 < in.size() && hex(in[i + 1]) >= 0 && hex(in[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2])));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

nghttp2_nv Header(std::string_view name, std::string_view value) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
          NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

// How a stream ended: answered (a gRPC status, OK or not), lost (the connection failed or
// timed out after the request may have reached etcd), or refused (etcd never processed it).
enum class Outcome { kAnswered, kLost, kRefused };

struct EtcdGrpcClient::Stream {
  int32_t id = -1;
  std::string out;  // the framed request
  size_t out_sent = 0;
  bool half_close = true;  // unary: END_STREAM after the request; the watch keeps it open
  bool headers_sent = false;
  bool ended = false;
  std::string in;  // received bytes not yet split into messages
  int http_status = 0;
  int grpc_status = -1;
  std::string grpc_message;
  bool streaming = false;  // every message to on_message (posted); else the first kept
  std::string answer;
  bool answered = false;
  std::function<void(std::string)> on_message;
  std::function<void(Status, Outcome, std::string answer)> on_end;
  std::unique_ptr<asio::steady_timer> deadline;
};

// One HTTP/2 connection: nghttp2 does the framing, HPACK and flow control; this class moves
// its bytes over the socket (one read always pending, one write at a time) and turns its
// events into the streams' callbacks, always posted (never inside nghttp2's own callbacks, so
// a callback may open, cancel or close anything).
class EtcdGrpcClient::Http2 : public std::enable_shared_from_this<Http2> {
 public:
  Http2(asio::io_context& io, std::shared_ptr<EtcdConn> conn, std::string name,
        std::string authority, bool tls, int32_t first_stream_id)
      : first_stream_id_(first_stream_id),
        io_(io),
        conn_(std::move(conn)),
        name_(std::move(name)),
        authority_(std::move(authority)),
        scheme_(tls ? "https" : "http") {}
  ~Http2() {
    if (session_) nghttp2_session_del(session_);
  }
  Http2(const Http2&) = delete;
  Http2& operator=(const Http2&) = delete;

  Status Start() {
    nghttp2_session_callbacks* cbs = nullptr;
    if (nghttp2_session_callbacks_new(&cbs) != 0) return Internal("nghttp2: out of memory");
    nghttp2_session_callbacks_set_on_header_callback(cbs, &Http2::OnHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Http2::OnData);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Http2::OnStreamClose);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Http2::OnFrameRecv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &Http2::OnFrameSend);
    int rv = nghttp2_session_client_new(&session_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0) return Internal(std::string("nghttp2: ") + nghttp2_strerror(rv));
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 4u << 20},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 64u << 10},
    };
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, 16 << 20);
    if (first_stream_id_ > 1) nghttp2_session_set_next_stream_id(session_, first_stream_id_);
    Read();
    Flush();
    return Status::Ok();
  }

  bool usable() const { return !dead_ && !goaway_; }
  size_t endpoint() const { return conn_->endpoint; }
  const std::string& name() const { return name_; }

  // Sends `s->out` on a new stream to `path`; s->on_end runs (posted) once it ends.
  void Open(const std::string& path, const std::shared_ptr<Stream>& s) {
    if (!usable()) return End(s, Unavailable("etcd " + name_ + ": connection closing"),
                              Outcome::kRefused);
    const nghttp2_nv headers[] = {
        Header(":method", "POST"),
        Header(":scheme", scheme_),
        Header(":path", path),
        Header(":authority", authority_),
        Header("content-type", "application/grpc"),
        Header("te", "trailers"),
        // clientv3.WithRequireLeader: a member without a leader refuses at once (and ends a
        // watch) instead of holding the request until our timeout.
        Header("hasleader", "true"),
    };
    nghttp2_data_provider body;
    body.source.ptr = s.get();
    body.read_callback = &Http2::ReadBody;
    int32_t id =
        nghttp2_submit_request(session_, nullptr, headers, std::size(headers), &body, s.get());
    if (id < 0) {
      // NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE above all: the next call takes a new connection.
      goaway_ = true;
      return End(s, Unavailable("etcd " + name_ + ": HTTP/2: " + nghttp2_strerror(id)),
                 Outcome::kRefused);
    }
    s->id = id;
    streams_[id] = s;
    // A connection has 2^30 client streams (odd ids up to 2^31 - 1): at 2,000 calls a second,
    // six days. The last one drains it (its calls finish) and the next call opens a new one.
    if (nghttp2_session_get_next_stream_id(session_) > uint32_t{INT32_MAX}) goaway_ = true;
    if (!reading_) Read();
    Flush();
  }

  // Ends `s` without its on_end (RST_STREAM CANCEL to etcd).
  void Cancel(const std::shared_ptr<Stream>& s) {
    if (s->ended) return;
    s->ended = true;
    if (s->deadline) s->deadline->cancel();
    if (dead_ || !streams_.erase(s->id)) return;
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
    Flush();
  }

  // No new streams (calls in flight go on); the client's next call opens a new connection.
  void Drain() { goaway_ = true; }

  // `s` ran out of time: RST_STREAM to etcd, and it ends lost (it may have been applied). The
  // connection drains.
  void Expire(const std::shared_ptr<Stream>& s, Status why) {
    if (s->ended) return;
    goaway_ = true;
    if (!dead_ && streams_.erase(s->id)) {
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
      Flush();
    }
    End(s, std::move(why), Outcome::kLost);
  }

  // Closes the socket and ends every stream with `why`: refused if its request was never
  // sent, lost otherwise.
  void Close(const Status& why) {
    if (dead_) return;
    dead_ = true;
    conn_->Close();
    auto streams = std::move(streams_);
    streams_.clear();
    for (auto& [id, s] : streams) {
      End(s, why, s->headers_sent ? Outcome::kLost : Outcome::kRefused);
    }
  }

 private:
  void End(const std::shared_ptr<Stream>& s, Status st, Outcome outcome) {
    if (s->ended) return;
    s->ended = true;
    if (s->deadline) s->deadline->cancel();
    asio::post(io_, [s, st = std::move(st), outcome]() mutable {
      if (s->on_end) s->on_end(std::move(st), outcome, std::move(s->answer));
    });
  }

  std::shared_ptr<Stream> Find(int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second;
  }

  // Reads while streams are open. An idle connection has no read pending, so it does not keep
  // the io_context running (tokenmgr's shutdown ends when the io_context runs out of work);
  // what etcd sent meanwhile (a GOAWAY) is read with the next stream's answer.
  void Read() {
    reading_ = true;
    conn_->With([&](auto& stream) {
      stream.async_read_some(
          asio::buffer(rbuf_), [self = shared_from_this()](const beast::error_code& ec, size_t n) {
            self->reading_ = false;
            if (self->dead_) return;
            if (ec) return self->Close(EtcdTransportError(self->name_, "read", ec));
            ssize_t rv = nghttp2_session_mem_recv(self->session_, self->rbuf_.data(), n);
            if (rv < 0) {
              return self->Close(
                  Unavailable("etcd " + self->name_ + ": HTTP/2: " + nghttp2_strerror(rv)));
            }
            self->Flush();
            if (!self->dead_ && !self->streams_.empty()) self->Read();
          });
    });
  }

  void Flush() {
    if (writing_ || dead_) return;
    wbuf_.clear();
    while (wbuf_.size() < (1u << 20)) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) return Close(Unavailable("etcd " + name_ + ": HTTP/2: " + nghttp2_strerror(n)));
      if (n == 0) break;
      wbuf_.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    if (wbuf_.empty()) {
      if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) {
        Close(Unavailable("etcd " + name_ + ": HTTP/2 connection ended"));
      }
      return;
    }
    writing_ = true;
    conn_->With([&](auto& stream) {
      asio::async_write(stream, asio::buffer(wbuf_),
                        [self = shared_from_this()](const beast::error_code& ec, size_t) {
                          self->writing_ = false;
                          if (self->dead_) return;
                          if (ec) return self->Close(EtcdTransportError(self->name_, "write", ec));
                          self->Flush();
                        });
    });
  }

  // Splits s->in into gRPC messages; false (stream failed) on a bad or oversized one.
  bool Split(const std::shared_ptr<Stream>& s) {
    while (s->in.size() >= 5) {
      const auto* p = reinterpret_cast<const unsigned char*>(s->in.data());
      uint32_t n = uint32_t{p[1]} << 24 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 8 | p[4];
      if (p[0] != 0) {
        Fail(s, "a compressed message (none was asked for)");
        return false;
      }
      if (n > kMaxMessageBytes) {
        Fail(s, "a message of " + std::to_string(n) + " bytes (limit " +
                    std::to_string(kMaxMessageBytes) + ")");
        return false;
      }
      if (s->in.size() < 5 + size_t{n}) return true;
      std::string message = s->in.substr(5, n);
      s->in.erase(0, 5 + size_t{n});
      if (s->streaming) {
        asio::post(io_, [s, message = std::move(message)]() mutable {
          if (!s->ended && s->on_message) s->on_message(std::move(message));
        });
      } else if (!s->answered) {
        s->answered = true;
        s->answer = std::move(message);
      }
    }
    return true;
  }

  void Fail(const std::shared_ptr<Stream>& s, const std::string& what) {
    streams_.erase(s->id);
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
    End(s, Unavailable("etcd " + name_ + " sent " + what), Outcome::kLost);
  }

  static Http2* Self(void* user_data) { return static_cast<Http2*>(user_data); }

  static ssize_t ReadBody(nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                          uint32_t* flags, nghttp2_data_source* source, void*) {
    auto* s = static_cast<Stream*>(source->ptr);
    size_t n = std::min(length, s->out.size() - s->out_sent);
    std::memcpy(buf, s->out.data() + s->out_sent, n);
    s->out_sent += n;
    if (s->out_sent == s->out.size()) {
      if (s->half_close) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
      } else if (n == 0) {
        return NGHTTP2_ERR_DEFERRED;  // the watch sends nothing more
      }
    }
    return static_cast<ssize_t>(n);
  }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                      void* user_data) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    std::shared_ptr<Stream> s = Self(user_data)->Find(frame->hd.stream_id);
    if (!s) return 0;
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    auto number = [](std::string_view t) {
      int out = 0;
      for (char c : t.substr(0, 6)) {
        if (c < '0' || c > '9') return -2;
        out = out * 10 + (c - '0');
      }
      return t.empty() ? -2 : out;
    };
    if (n == ":status") s->http_status = number(v);
    if (n == "grpc-status") s->grpc_status = number(v);
    if (n == "grpc-message") s->grpc_message = PercentDecode(v);
    return 0;
  }

  static int OnData(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data,
                    size_t len, void* user_data) {
    Http2* self = Self(user_data);
    std::shared_ptr<Stream> s = self->Find(stream_id);
    if (!s) return 0;
    s->in.append(reinterpret_cast<const char*>(data), len);
    self->Split(s);
    return 0;
  }

  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code,
                           void* user_data) {
    Http2* self = Self(user_data);
    if (std::shared_ptr<Stream> s = self->Find(stream_id)) self->Finish(s, error_code);
    return 0;
  }

  // Ends `s` with what etcd said: the gRPC status of its trailers, or the HTTP/2 error.
  void Finish(const std::shared_ptr<Stream>& s, uint32_t error_code) {
    streams_.erase(s->id);
    if (error_code == NGHTTP2_REFUSED_STREAM) {
      return End(s, Unavailable("etcd " + name_ + ": stream refused"), Outcome::kRefused);
    }
    if (error_code != NGHTTP2_NO_ERROR) {
      return End(s,
                 Unavailable("etcd " + name_ + ": stream reset (" +
                             nghttp2_http2_strerror(error_code) + ")"),
                 Outcome::kLost);
    }
    if (s->grpc_status == 0 && (s->answered || s->streaming)) {
      return End(s, Status::Ok(), Outcome::kAnswered);
    }
    if (s->grpc_status == 0) {
      return End(s, Unavailable("etcd " + name_ + " answered without a message"),
                 Outcome::kAnswered);
    }
    if (s->grpc_status > 0) {
      return End(s,
                 EtcdErrorStatus(name_, "answered gRPC status " + std::to_string(s->grpc_status),
                                 s->grpc_status, s->grpc_message),
                 Outcome::kAnswered);
    }
    End(s,
        Unavailable("etcd " + name_ + " answered HTTP " + std::to_string(s->http_status) +
                    " without a gRPC status (not a gRPC server?)"),
        Outcome::kLost);
  }

  static int OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame,
                         void* user_data) {
    Http2* self = Self(user_data);
    if (frame->hd.type == NGHTTP2_GOAWAY) self->goaway_ = true;
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      // etcd ended a stream we keep open (the watch): end it here too, with its status.
      std::shared_ptr<Stream> s = self->Find(frame->hd.stream_id);
      if (s && !s->half_close) {
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
        self->Finish(s, NGHTTP2_NO_ERROR);
      }
    }
    return 0;
  }

  static int OnFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    if (std::shared_ptr<Stream> s = Self(user_data)->Find(frame->hd.stream_id)) {
      s->headers_sent = true;
    }
    return 0;
  }

  int32_t first_stream_id_;
  asio::io_context& io_;
  std::shared_ptr<EtcdConn> conn_;
  std::string name_, authority_, scheme_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, std::shared_ptr<Stream>> streams_;
  std::array<uint8_t, 16384> rbuf_{};
  std::string wbuf_;
  bool writing_ = false;
  bool reading_ = false;
  bool dead_ = false;
  bool goaway_ = false;
};

namespace {

// Opens `s` on `h2` with a deadline of `timeout` from now. The member or the path to it is
// stuck when it passes: the call fails (outcome unknown) and the connection drains (later
// calls go over a new one), while the calls already in flight on it keep their own deadlines:
// one stuck in a network cut (TCP retransmitting) still lands when the cut heals.
void OpenWithDeadline(asio::io_context& io, const std::shared_ptr<EtcdGrpcClient::Http2>& h2,
                      const std::string& method, const std::shared_ptr<EtcdGrpcClient::Stream>& s,
                      std::chrono::milliseconds timeout) {
  s->deadline = std::make_unique<asio::steady_timer>(io, timeout);
  s->deadline->async_wait([weak = std::weak_ptr<EtcdGrpcClient::Http2>(h2), s,
                           ms = timeout.count()](const beast::error_code& ec) {
    if (ec || s->ended) return;
    if (auto h = weak.lock()) {
      h->Expire(s, Unavailable("etcd " + h->name() + ": no answer within " +
                               std::to_string(ms) + " ms"));
    }
  });
  h2->Open(method, s);
}

}  // namespace

struct EtcdGrpcClient::Slot {
  std::shared_ptr<Http2> conn;
  bool connecting = false;
  std::vector<std::pair<size_t, ConnDone>> waiters;  // (tries, done)
};

struct EtcdGrpcClient::WatchState {
  std::shared_ptr<Http2> conn;
  MessageFn on_message;
  ClosedFn on_closed;
  bool closed = false;
  void Close(Status why) {
    if (closed) return;
    closed = true;
    if (conn) conn->Close(Unavailable("etcd watch closed"));
    on_message = nullptr;
    ClosedFn f = std::move(on_closed);
    if (f) f(std::move(why));
  }
};

StatusOr<std::unique_ptr<EtcdGrpcClient>> EtcdGrpcClient::Create(asio::io_context& io,
                                                                EtcdClientOptions options) {
  auto targets = ParseEtcdTargets(options.endpoints, options.tls, /*http2=*/true);
  if (!targets.ok()) return targets.status();
  return std::unique_ptr<EtcdGrpcClient>(
      new EtcdGrpcClient(io, std::move(options), std::move(*targets)));
}

EtcdGrpcClient::EtcdGrpcClient(asio::io_context& io, EtcdClientOptions options,
                               EtcdTargets targets)
    : io_(io),
      options_(std::move(options)),
      endpoints_(std::move(targets.endpoints)),
      tls_(std::move(targets.tls)) {
  for (size_t i = 0; i < endpoints_.size(); ++i) slots_.push_back(std::make_unique<Slot>());
}

EtcdGrpcClient::~EtcdGrpcClient() { Shutdown(); }

const std::string& EtcdGrpcClient::current_endpoint() const {
  return options_.endpoints[current_];
}

void EtcdGrpcClient::Post(std::function<void()> f) { asio::post(io_, std::move(f)); }

void EtcdGrpcClient::Failed(size_t endpoint) {
  // Calls in flight to it go on; new ones will not share its connection.
  if (std::shared_ptr<Http2>& conn = slots_[endpoint]->conn) {
    conn->Drain();
    conn.reset();
  }
  if (endpoint != current_) return;
  current_ = (current_ + 1) % endpoints_.size();
}

void EtcdGrpcClient::AnsweredAfter(size_t endpoint, SteadyClock::time_point sent) {
  if (!stopped_ &&
      EtcdAnsweredLate(SteadyClock::now() - sent, options_.timeout, endpoints_.size())) {
    Failed(endpoint);
  }
}

void EtcdGrpcClient::Dial(size_t tries, ConnDone done) {
  const size_t ep = current_;
  auto conn = std::make_shared<EtcdConn>(io_, ep, tls_.get());
  std::erase_if(dialling_, [](const std::weak_ptr<EtcdConn>& w) { return w.expired(); });
  dialling_.push_back(conn);
  const EtcdEndpoint& e = endpoints_[ep];
  ConnectEtcd(
      io_, conn, e, options_.endpoints[ep], options_.timeout,
      [this, ep, tries, done = std::move(done), alive = std::weak_ptr<bool>(alive_)](
          StatusOr<std::shared_ptr<EtcdConn>> c) mutable {
        if (alive.expired()) return;
        if (stopped_) return done(Unavailable("etcd client stopped"));
        if (!c.ok()) {
          Failed(ep);
          // Nothing was sent: any call may go to the next endpoint.
          if (tries > 1) return Dial(tries - 1, std::move(done));
          return done(c.status());
        }
        (*c)->tcp().expires_never();  // each call has its own deadline
        const EtcdEndpoint& e = endpoints_[ep];
        bool v6 = e.host.find(':') != std::string::npos;
        auto h2 = std::make_shared<Http2>(io_, *c, options_.endpoints[ep],
                                          (v6 ? "[" + e.host + "]" : e.host) + ":" + e.port,
                                          e.tls, first_stream_id_);
        if (Status st = h2->Start(); !st.ok()) return done(st);
        done(std::move(h2));
      });
}

void EtcdGrpcClient::Shared(size_t tries, ConnDone done) {
  const size_t ep = current_;
  Slot& slot = *slots_[ep];
  if (slot.conn && slot.conn->usable()) return done(slot.conn);
  slot.conn.reset();
  slot.waiters.emplace_back(tries, std::move(done));
  if (slot.connecting) return;
  slot.connecting = true;
  Dial(1, [this, ep](StatusOr<std::shared_ptr<Http2>> c) {
    Slot& slot = *slots_[ep];
    slot.connecting = false;
    auto waiters = std::move(slot.waiters);
    slot.waiters.clear();
    if (c.ok()) slot.conn = *c;
    for (auto& [tries, done] : waiters) {
      if (c.ok() || stopped_ || tries <= 1) {
        done(c);
      } else {
        Shared(tries - 1, std::move(done));  // Dial moved on to the next endpoint
      }
    }
  });
}

void EtcdGrpcClient::Call(std::string method, std::string request, BytesDone done,
                          bool idempotent) {
  if (stopped_) {
    return Post([done = std::move(done)] { done(Unavailable("etcd client stopped")); });
  }
  // Shared() may answer at once; the contract is that `done` never runs inside Call().
  Post([this, method = std::move(method), body = std::make_shared<std::string>(Frame(request)),
        done = std::move(done), idempotent, alive = std::weak_ptr<bool>(alive_)]() mutable {
    if (alive.expired()) return;
    Send(std::move(method), std::move(body), std::move(done), true, idempotent);
  });
}

void EtcdGrpcClient::Send(std::string method, std::shared_ptr<std::string> body, BytesDone done,
                          bool retry_left, bool idempotent) {
  if (stopped_) return done(Unavailable("etcd client stopped"));
  Shared(endpoints_.size(), [this, method = std::move(method), body, done = std::move(done),
                             retry_left, idempotent, alive = std::weak_ptr<bool>(alive_)](
                                StatusOr<std::shared_ptr<Http2>> c) mutable {
    if (alive.expired()) return;
    if (!c.ok()) return done(c.status());
    std::shared_ptr<Http2> h2 = *c;
    const size_t ep = h2->endpoint();
    auto s = std::make_shared<Stream>();
    s->out = *body;
    s->on_end = [this, ep, method, body, done = std::move(done), retry_left, idempotent,
                 alive, sent = SteadyClock::now()](Status st, Outcome outcome,
                                                   std::string answer) mutable {
      if (alive.expired()) return;
      if (st.ok()) {
        AnsweredAfter(ep, sent);
        return done(std::move(answer));
      }
      if (stopped_) return done(Unavailable("etcd client stopped"));
      bool again = false;
      if (outcome == Outcome::kRefused) {
        again = true;  // etcd never processed it: safe for any call
      } else if (outcome == Outcome::kLost || EtcdNoLeader(st.message())) {
        Failed(ep);
        again = idempotent;
      } else if (EtcdLeaderChanged(st.message()) && idempotent) {
        // A read cut short by an election: read again on the next member (this one works, but
        // may be the old leader cut off from the others).
        Failed(ep);
        again = true;
      }
      if (again && retry_left) return Send(std::move(method), body, std::move(done), false,
                                           idempotent);
      done(std::move(st));
    };
    OpenWithDeadline(io_, h2, method, s, options_.timeout);
  });
}

void EtcdGrpcClient::CallApart(std::string method, std::string request, BytesDone done) {
  if (stopped_) {
    return Post([done = std::move(done)] { done(Unavailable("etcd client stopped")); });
  }
  Post([this, method = std::move(method), body = Frame(request), done = std::move(done),
        alive = std::weak_ptr<bool>(alive_)]() mutable {
    if (alive.expired()) return;
    if (stopped_) return done(Unavailable("etcd client stopped"));
    Dial(1, [this, method = std::move(method), body = std::move(body), done = std::move(done),
             alive](StatusOr<std::shared_ptr<Http2>> c) mutable {
      if (alive.expired()) return;
      if (!c.ok()) return done(c.status());
      std::shared_ptr<Http2> h2 = *c;
      std::erase_if(apart_, [](const std::weak_ptr<Http2>& w) { return w.expired(); });
      apart_.push_back(h2);
      auto s = std::make_shared<Stream>();
      s->out = std::move(body);
      s->on_end = [this, ep = h2->endpoint(), weak = std::weak_ptr<Http2>(h2),
                   done = std::move(done), alive,
                   sent = SteadyClock::now()](Status st, Outcome outcome,
                                              std::string answer) mutable {
        if (auto h = weak.lock()) h->Close(Unavailable("etcd call done"));
        if (alive.expired()) return;
        if (st.ok()) {
          AnsweredAfter(ep, sent);
          return done(std::move(answer));
        }
        if (!stopped_ && (outcome == Outcome::kLost || EtcdNoLeader(st.message()))) Failed(ep);
        done(std::move(st));
      };
      OpenWithDeadline(io_, h2, method, s, options_.timeout);
    });
  });
}

void EtcdGrpcClient::Watch(std::string request, MessageFn on_message, ClosedFn on_closed) {
  CancelWatch();
  auto w = std::make_shared<WatchState>();
  w->on_message = std::move(on_message);
  w->on_closed = std::move(on_closed);
  watch_ = w;
  if (stopped_) return Post([w] { w->Close(Unavailable("etcd client stopped")); });
  Dial(endpoints_.size(), [this, w, request = std::move(request),
                           alive = std::weak_ptr<bool>(alive_)](
                              StatusOr<std::shared_ptr<Http2>> c) {
    if (alive.expired() || w->closed) {
      if (c.ok()) (*c)->Close(Unavailable("etcd watch cancelled"));
      return;
    }
    if (!c.ok()) return w->Close(c.status());
    w->conn = *c;
    const size_t ep = w->conn->endpoint();
    auto s = std::make_shared<Stream>();
    s->out = Frame(request);
    s->half_close = false;
    s->streaming = true;
    s->on_message = [w, weak = std::weak_ptr<Stream>(s)](std::string message) {
      if (w->closed) return;
      if (auto s = weak.lock(); s && s->deadline) s->deadline->cancel();  // answered in time
      if (w->on_message) w->on_message(message);
    };
    s->on_end = [this, w, ep, alive](Status st, Outcome, std::string) {
      if (w->closed) return;
      if (!alive.expired() && EtcdNoLeader(st.message())) Failed(ep);  // watch elsewhere
      if (st.ok()) st = Unavailable("etcd watch stream ended");
      w->Close(Unavailable("etcd watch: " + st.message()));
    };
    s->deadline = std::make_unique<asio::steady_timer>(io_, options_.timeout);
    s->deadline->async_wait([w, name = options_.endpoints[ep],
                             ms = options_.timeout.count()](const beast::error_code& ec) {
      if (ec) return;
      w->Close(Unavailable("etcd " + name + ": watch: no answer within " + std::to_string(ms) +
                           " ms"));
    });
    w->conn->Open("/etcdserverpb.Watch/Watch", s);
  });
}

void EtcdGrpcClient::CancelWatch() {
  if (!watch_) return;
  auto w = std::move(watch_);
  w->on_closed = nullptr;
  w->Close(Status::Ok());
}

void EtcdGrpcClient::Shutdown() {
  if (stopped_) return;
  stopped_ = true;
  if (watch_) {
    auto w = std::move(watch_);
    w->Close(Unavailable("etcd client stopped"));
  }
  for (auto& slot : slots_) {
    if (slot->conn) slot->conn->Close(Unavailable("etcd client stopped"));
    slot->conn.reset();
  }
  for (auto& weak : dialling_) {
    if (auto c = weak.lock()) c->Close();
  }
  dialling_.clear();
  for (auto& weak : apart_) {
    if (auto h = weak.lock()) h->Close(Unavailable("etcd client stopped"));
  }
  apart_.clear();
}

}  // namespace lm::store
