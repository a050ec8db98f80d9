#include "http/server.h"

#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <unordered_set>
#include <vector>

#include <spdlog/spdlog.h>

#include "http/block_pool.h"

namespace lm::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

class Session;

namespace {

// The response's bytes on the wire (HTTP/1.1, Content-Length, "Connection: close" unless kept).
// A response to HEAD (`with_body` false) has the same header fields, Content-Length included.
void SerializeResponse(const Response& r, std::string_view server_name, bool keep_alive,
                       std::string& out, bool with_body = true) {
  out.clear();
  out.reserve(160 + r.body.size());
  out += "HTTP/1.1 ";
  out += std::to_string(r.status);
  out += ' ';
  out += bhttp::obsolete_reason(static_cast<bhttp::status>(r.status));
  out += "\r\nServer: ";
  out += server_name;
  out += "\r\nContent-Type: ";
  out += r.content_type;
  for (const auto& [name, value] : r.headers) {
    out += "\r\n";
    out += name;
    out += ": ";
    out += value;
  }
  if (!keep_alive) out += "\r\nConnection: close";
  out += "\r\nContent-Length: ";
  out += std::to_string(r.body.size());
  out += "\r\n\r\n";
  if (with_body) out += r.body;
}

std::string SerializeResponse(const Response& r, std::string_view server_name, bool keep_alive) {
  std::string out;
  SerializeResponse(r, server_name, keep_alive, out);
  return out;
}

}  // namespace

class HttpServer::Impl : public std::enable_shared_from_this<HttpServer::Impl> {
 public:
  Impl(net::io_context& io, ServerOptions options, Handler& handler)
      : io(io), opts(std::move(options)), handler(handler), acceptor(io), retry_timer(io),
        grace_timer(io), sweep_timer(io),
        too_many_connections(SerializeResponse(ErrorResponse(503, "too many open connections"),
                                               opts.server_name, /*keep_alive=*/false)) {}

  // Request line, headers and body together: what one client may make the server buffer.
  size_t max_request_bytes() const { return opts.max_header_bytes + opts.max_body_bytes; }

  void Accept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  // Deadlines are checked by one timer for all connections, not one per read or write: a
  // request then costs no timer syscalls (measured: 3 timerfd_settime per lock+release cycle
  // with Beast's per-operation timers).
  void StartSweep();
  void Sweep();

  net::io_context& io;
  ServerOptions opts;
  Handler& handler;
  tcp::acceptor acceptor;
  net::steady_timer retry_timer;
  net::steady_timer grace_timer;
  net::steady_timer sweep_timer;
  bool sweeping = false;
  // Written before any session exists to a connection over max_connections; built once.
  const std::string too_many_connections;
  ServerStats stats;
  bool stopping = false;
  std::unordered_set<Session*> sessions;
};

// One connection. Reads and writes are non-blocking calls made directly from the event loop;
// only when the socket is not ready does the session wait (socket.async_wait). A client that
// sends its next request while the server answers costs a read and a send per request (see
// PrepareNext), with no intermediate completion handlers.
class Session final : public ResponseSink, public std::enable_shared_from_this<Session> {
 public:
  using Clock = std::chrono::steady_clock;

  Session(std::shared_ptr<HttpServer::Impl> server, tcp::socket socket)
      : server_(std::move(server)), socket_(std::move(socket)) {
    server_->sessions.insert(this);
    ++server_->stats.open;
  }
  ~Session() {
    server_->sessions.erase(this);
    --server_->stats.open;
    if (server_->stopping && server_->sessions.empty()) server_->grace_timer.cancel();
  }

  void Start() {
    beast::error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) remote_ = ep.address().to_string();
    socket_.set_option(tcp::no_delay(true), ec);
    socket_.non_blocking(true, ec);
    if (ec) return Close();
    ReadNext();
  }

  // Closes the connection unless a request is being answered.
  void CloseIfIdle() {
    if (!busy_) Close();
  }
  void Close() {
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  // ResponseSink: the handler's response, sent now.
  void Deliver(Response r) override { Write(std::move(r)); }
  bool Connected() const override {
    if (!socket_.is_open()) return false;
    char c;
    ssize_t n = ::recv(const_cast<tcp::socket&>(socket_).native_handle(), &c, 1,
                       MSG_PEEK | MSG_DONTWAIT);
    return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
  }

  // Called by the server's sweep: closes the connection if its current deadline passed, and
  // gives back the memory of a connection idle between requests for a while.
  void CheckDeadline(Clock::time_point now) {
    if (now >= deadline_ && socket_.is_open()) {
      ++server_->stats.timeouts;
      return Close();
    }
    const bool idle = !busy_ && !reading_ && buffer_.size() == 0;
    if (idle && now - idle_since_ >= server_->opts.trim_after) {
      if (!read_pending_) return Trim();
      // The pending read holds the buffer: cancel it, its handler trims and waits again.
      beast::error_code ec;
      socket_.cancel(ec);
    }
  }

 private:
  void SetDeadline(std::chrono::milliseconds d) { deadline_ = Now() + d; }

  // The time for deadlines. Inside ReadAndParse it is the reading taken when the last bytes
  // arrived (one clock reading serves a request's read deadline, its response's write deadline
  // and the idle deadline after it); elsewhere (a long poll answered later) it is read now.
  Clock::time_point Now() const { return now_valid_ ? now_ : Clock::now(); }

  // Idle keep-alive connections hold as little memory as possible (measured: 11.9 -> 8.5 MiB
  // at 1,000 idle). A busy connection keeps its parser, buffer and request strings between
  // requests, so a request on it allocates less; one idle for ServerOptions::trim_after gives
  // them back.
  static constexpr size_t kKeepMemoryUpTo = 64;  // open connections
  // With many connections open, each gives its memory back between requests at once (never
  // while its request is being dispatched: the handler still reads it).
  void TrimIfMany() {
    if (server_->sessions.size() > kKeepMemoryUpTo) Trim();
  }
  void Trim() {
    if (trimmed_) return;
    trimmed_ = true;
    ++server_->stats.trims;
    parser_.reset();
    fields_pool_.Clear();
    buffer_.shrink_to_fit();
    request_ = Request{};
    std::string().swap(out_);
  }

  // After a response, whether to read at once or wait for readability first. A client that
  // waits for each answer is often already done sending its next request when the server gets
  // here: on one CPU, the send wakes the client, which runs before the server returns. Then a
  // read takes the request with one system call, where a wait costs two (EPOLL_CTL_MOD, which
  // Asio does for every wait, and epoll_wait) before the read. When a read finds nothing
  // ("would block": one wasted call), the next responses wait first: 1 after one miss, then
  // 3, 7 and at most 15 while the misses go on; a hit starts over. A client that never has its
  // next request ready costs one wasted read per 16 requests.
  static constexpr int kMaxMissStreak = 4;
  // What a read between requests asks for (a request's first bytes).
  static constexpr size_t kFirstReadBytes = 512;

  // How the next request is read.
  enum class Next {
    kReadNow,            // at the start, or from a fresh handler: read what is there
    kAfterOwnResponse,   // this connection's response went out while its request was dispatched
    kAfterOtherResponse, // the response went out from elsewhere (see OnSent): wait first
  };

  // Resets the per-request state and the deadline for the next request. Returns true when the
  // caller should read now; false when something else was arranged (closed, or a readiness
  // wait armed).
  bool PrepareNext(Next how) {
    if (server_->stopping) {
      Close();
      return false;
    }
    reading_ = false;
    idle_since_ = Now();
    // Wait for the first byte of the next request with the (longer) keep-alive idle timeout.
    SetDeadline(server_->opts.idle_timeout);
    if (buffer_.size() > 0 || how == Next::kReadNow) return true;
    if (how == Next::kAfterOwnResponse && skip_reads_ == 0) {
      read_at_once_ = true;
      return true;
    }
    if (how == Next::kAfterOwnResponse) --skip_reads_;
    WaitReadable();
    return false;
  }

  void ReadNext() {
    if (PrepareNext(Next::kReadNow)) ReadAndParse();
  }

  // Parses what is buffered, reads more while the socket has it, and dispatches a complete
  // request; waits for readability when the socket is drained (edge-triggered readiness:
  // a wait is only armed after a read said "would block").
  void ReadAndParse() {
    struct NowScope {
      Session* s;
      ~NowScope() { s->now_valid_ = false; }
    } now_scope{this};
    while (true) {
      if (buffer_.size() > 0) {
        if (!reading_) StartRequest();
        beast::error_code ec;
        size_t used = parser_->put(buffer_.data(), ec);
        buffer_.consume(used);
        if (!ec && parser_->is_header_done() && !header_checked_) {
          header_checked_ = true;
          size_t fields = 0;
          for (auto it = parser_->get().begin(); it != parser_->get().end(); ++it) ++fields;
          if (fields > server_->opts.max_header_count) {
            ++server_->stats.bad_requests;
            return SendAndClose(431, "too many request header fields");
          }
        }
        if (!ec && parser_->is_done()) {
          if (!OnRequest() || !ContinueAfterResponse()) return;
          continue;
        }
        if (ec && ec != bhttp::error::need_more) return OnParseError(ec);
        if (!ec && used > 0) continue;  // the parser took something; it may take more
      }
      size_t want = reading_ ? std::min<size_t>(4096, server_->max_request_bytes() + 1)
                             : kFirstReadBytes;
      beast::error_code ec;
      size_t n = 0;
      if (buffer_.capacity() == 0) {
        // A trimmed (or new) connection reads into the stack first: a read that finds nothing
        // then allocates nothing (1,000 idle connections would otherwise keep 512 bytes each).
        char first[kFirstReadBytes];
        n = socket_.read_some(net::buffer(first, std::min(want, sizeof first)), ec);
        if (!ec) std::memcpy(buffer_.prepare(n).data(), first, n);
      } else {
        n = socket_.read_some(buffer_.prepare(want), ec);
      }
      if (read_at_once_) {
        read_at_once_ = false;
        if (ec == net::error::would_block) {
          miss_streak_ = std::min(miss_streak_ + 1, kMaxMissStreak);
          skip_reads_ = (1 << miss_streak_) - 1;
        } else {
          miss_streak_ = 0;
        }
      }
      if (ec == net::error::would_block) return WaitReadable();
      if (ec == net::error::interrupted) continue;
      if (ec == net::error::eof && reading_) {
        // Half-closed after part of a request: say why, the client may still read.
        parser_->put_eof(ec);
        if (ec) return OnParseError(ec);
        if (!OnRequest() || !ContinueAfterResponse()) return;
        continue;
      }
      if (ec) return Close();  // end of stream between requests, or a socket error
      Received(n);
    }
  }

  // The response went out while OnRequest dispatched the request: the next request is read by
  // ReadAndParse's loop, not by recursion, so a client that always has its next request ready
  // cannot grow the stack and no handler is entered again while it runs. Pipelined requests
  // already buffered get a fresh handler instead (one connection cannot hog the loop).
  bool ContinueAfterResponse() {
    TrimIfMany();
    if (buffer_.size() > 0) {
      net::post(server_->io, [self = shared_from_this()] { self->ReadNext(); });
      return false;
    }
    return PrepareNext(Next::kAfterOwnResponse);
  }

  void StartRequest() {
    reading_ = true;
    trimmed_ = false;
    SetDeadline(server_->opts.read_timeout);
    // The header fields' blocks are recycled from the previous request on this connection.
    parser_.emplace(std::piecewise_construct, std::make_tuple(),
                    std::make_tuple(PoolAllocator<char>(&fields_pool_)));
    header_checked_ = false;
    head_ = false;
    parser_->header_limit(static_cast<uint32_t>(server_->opts.max_header_bytes));
    parser_->body_limit(server_->opts.max_body_bytes);
    parser_->eager(true);
  }

  // `n` bytes were read into buffer_.prepare(): they join the buffer, and the time they came is
  // the reading deadlines use (see Now()).
  void Received(size_t n) {
    buffer_.commit(n);
    now_ = Clock::now();
    now_valid_ = true;
  }

  // Waits for the next bytes. A connection that still has its buffer (it was busy lately)
  // queues the read itself: Asio then reads when epoll says the socket is readable, with no
  // EPOLL_CTL_MOD (which it makes for every async_wait) and, after a read that drained the
  // socket, no speculative read either. Per request that is epoll_wait, recv and send, as in
  // Redis. A trimmed connection waits for readability without holding a buffer.
  void WaitReadable() {
    if (!trimmed_ && buffer_.capacity() > 0) {
      read_pending_ = true;
      socket_.async_read_some(
          buffer_.prepare(kFirstReadBytes),
          [self = shared_from_this()](beast::error_code ec, size_t n) {
            self->read_pending_ = false;
            if (!self->socket_.is_open()) return;
            if (ec == net::error::operation_aborted) {
              // Cancelled by CheckDeadline to give the memory of an idle connection back.
              self->Trim();
              return self->WaitReadable();
            }
            if (!ec) self->Received(n);
            // An error (end of stream, reset) is met again by ReadAndParse's own read, which
            // knows whether a request was under way.
            self->ReadAndParse();
          });
      return;
    }
    socket_.async_wait(tcp::socket::wait_read,
                       [self = shared_from_this()](beast::error_code ec) {
                         if (ec || !self->socket_.is_open()) return self->Close();
                         self->ReadAndParse();
                       });
  }

  void OnParseError(beast::error_code ec) {
    ++server_->stats.bad_requests;
    if (ec == bhttp::error::header_limit) return SendAndClose(431, "request headers too large");
    if (ec == bhttp::error::body_limit) return SendAndClose(413, "request body too large");
    return SendAndClose(400, "malformed HTTP request");
  }

  // Dispatches the parsed request. Returns true when its response went out during the
  // dispatch (the caller then reads the next request); false when the response is pending
  // (a long poll) or the connection closed.
  bool OnRequest() {
    auto& msg = parser_->get();
    // The request object is the session's own and is refilled in place: its strings keep their
    // capacity, so a request on a kept-alive connection copies without allocating. Handlers
    // get it by reference for the call only (see Handler).
    Request& req = request_;
    req.method.assign(msg.method_string());
    req.target.assign(msg.target());
    if (Status s = ParseTarget(req.target, req.path, req.query); !s.ok()) {
      ++server_->stats.bad_requests;
      SendAndClose(400, s.message());
      return false;
    }
    head_ = msg.method() == bhttp::verb::head;
    size_t n = 0;
    for (const auto& field : msg) {
      if (n == req.headers.size()) req.headers.emplace_back();
      auto& [name, value] = req.headers[n++];
      name.assign(field.name_string());
      for (auto& c : name) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      }
      value.assign(field.value());
    }
    req.headers.resize(n);
    req.body = std::move(msg.body());
    req.remote_address = remote_;
    keep_alive_ = msg.keep_alive();
    busy_ = true;
    reading_ = false;
    deadline_ = Clock::time_point::max();  // a long poll may wait as long as the handler wants
    // The sink holds the session: a pending response keeps the connection alive. The cycle
    // ends when the handler sends or the client goes away (Responder drops the sink).
    responder_ = std::make_shared<Responder>(std::shared_ptr<ResponseSink>(shared_from_this()));
    auto responder = responder_;
    dispatching_ = true;  // a response sent from Handle is noted, not followed by a read
    server_->handler.Handle(request_, responder);
    dispatching_ = false;
    if (!responder->done()) WatchDisconnect();
    return std::exchange(sent_in_dispatch_, false);
  }

  // While a long poll is pending, notice a client that hangs up so its waiter can leave. Bytes
  // the client pipelines meanwhile are moved into the read buffer (they are parsed after this
  // response), so a hang-up after them is still noticed.
  void WatchDisconnect() {
    watching_ = true;
    socket_.async_wait(
        tcp::socket::wait_read,
        [self = shared_from_this(), pending = responder_.get()](beast::error_code ec) {
          self->watching_ = false;
          if (!self->responder_ || self->responder_.get() != pending || pending->done()) return;
          Peer peer = ec ? Peer::kGone : self->StashPipelined();
          if (peer == Peer::kAlive) return self->WatchDisconnect();
          if (peer == Peer::kGone) {
            auto r = std::move(self->responder_);
            r->Cancel();
            self->Close();
          }
          // kTooMuch: the client pipelined more than one request may hold; stop watching and
          // read it after this response (the parser's limits then apply).
        });
  }

  enum class Peer { kAlive, kGone, kTooMuch };

  // Reads what the client sent behind the pending request into buffer_, without blocking.
  Peer StashPipelined() {
    const size_t limit = server_->max_request_bytes();
    if (buffer_.size() >= limit) return Peer::kTooMuch;
    auto space = buffer_.prepare(std::min<size_t>(4096, limit - buffer_.size()));
    ssize_t n = ::recv(socket_.native_handle(), space.data(), space.size(), MSG_DONTWAIT);
    if (n > 0) {
      buffer_.commit(static_cast<size_t>(n));
      return Peer::kAlive;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return Peer::kAlive;
    return Peer::kGone;  // orderly shutdown (0) or a socket error
  }

  void SendAndClose(int status, std::string_view message) {
    keep_alive_ = false;
    busy_ = true;
    Write(ErrorResponse(status, message));
  }

  void Write(Response r) {
    if (watching_) {
      beast::error_code ec;
      socket_.cancel(ec);
      watching_ = false;
    }
    keep_alive_ = keep_alive_ && !server_->stopping;
    SerializeResponse(r, server_->opts.server_name, keep_alive_, out_, !head_);
    sent_ = 0;
    SetDeadline(server_->opts.write_timeout);
    Send();
  }

  void Send() {
    while (sent_ < out_.size()) {
      beast::error_code ec;
      size_t n = socket_.write_some(net::buffer(out_.data() + sent_, out_.size() - sent_), ec);
      if (ec == net::error::would_block) {
        socket_.async_wait(tcp::socket::wait_write,
                           [self = shared_from_this()](beast::error_code e) {
                             if (e || !self->socket_.is_open()) return self->Close();
                             self->Send();
                           });
        return;
      }
      if (ec == net::error::interrupted) continue;
      if (ec) return Close();
      sent_ += n;
    }
    OnSent();
  }

  void OnSent() {
    busy_ = false;
    responder_.reset();
    out_.clear();  // keeps its capacity for the next response (Trim gives it back)
    if (!keep_alive_) return Close();
    if (dispatching_) {
      sent_in_dispatch_ = true;  // OnRequest's caller trims and reads the next request
      return;
    }
    TrimIfMany();
    // Sent from elsewhere: a long poll answered from another request's handler or a timer, or
    // a send that had to wait. The next request is read from a fresh handler (a readiness wait,
    // or a post for bytes already buffered), so no handler is entered again while it runs.
    if (buffer_.size() > 0) {
      return net::post(server_->io, [self = shared_from_this()] { self->ReadNext(); });
    }
    PrepareNext(Next::kAfterOtherResponse);
  }

  std::shared_ptr<HttpServer::Impl> server_;
  tcp::socket socket_;
  beast::flat_buffer buffer_;
  BlockPool fields_pool_;  // before parser_: outlives it
  std::optional<bhttp::request_parser<bhttp::string_body, PoolAllocator<char>>> parser_;
  std::shared_ptr<Responder> responder_;
  Request request_;  // the request being answered (refilled per request)
  std::string out_;
  size_t sent_ = 0;
  std::string remote_;
  bool reading_ = false;  // a request's first bytes arrived; its parser is running
  Clock::time_point deadline_ = Clock::time_point::max();
  bool keep_alive_ = false;
  bool busy_ = false;
  bool watching_ = false;
  bool read_pending_ = false;  // an async_read_some into buffer_ is queued (see WaitReadable)
  bool header_checked_ = false;
  bool head_ = false;    // the request being answered is a HEAD: the response has no body
  bool trimmed_ = true;  // nothing to give back yet
  bool dispatching_ = false;
  bool sent_in_dispatch_ = false;  // the response went out during OnRequest's dispatch
  bool read_at_once_ = false;  // the read after a response has not been tried yet
  int skip_reads_ = 0;         // responses left that wait before reading (see PrepareNext)
  int miss_streak_ = 0;        // reads at once that found nothing, in a row
  bool now_valid_ = false;  // now_ is this ReadAndParse call's reading (see Now())
  Clock::time_point now_;
  Clock::time_point idle_since_ = Clock::now();
};

void HttpServer::Impl::StartSweep() {
  if (sweeping || stopping) return;
  sweeping = true;
  auto shortest =
      std::min({opts.read_timeout, opts.idle_timeout, opts.write_timeout, opts.trim_after});
  auto interval = std::clamp(shortest / 4, std::chrono::milliseconds(10),
                             std::chrono::milliseconds(250));
  sweep_timer.expires_after(interval);
  sweep_timer.async_wait([self = shared_from_this()](beast::error_code ec) {
    self->sweeping = false;
    if (ec) return;
    self->Sweep();
  });
}

void HttpServer::Impl::Sweep() {
  auto now = std::chrono::steady_clock::now();
  std::vector<Session*> all(sessions.begin(), sessions.end());
  for (Session* s : all) {
    if (sessions.count(s)) s->CheckDeadline(now);
  }
  if (!sessions.empty()) StartSweep();
}

void HttpServer::Impl::Accept() {
  acceptor.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
    self->OnAccept(ec, std::move(socket));
  });
}

void HttpServer::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (stopping || !acceptor.is_open()) return;
  if (ec) {
    // EMFILE and friends: back off briefly instead of spinning.
    spdlog::warn("accept failed: {}", ec.message());
    retry_timer.expires_after(std::chrono::milliseconds(50));
    retry_timer.async_wait([self = shared_from_this()](beast::error_code e) {
      if (!e) self->Accept();
    });
    return;
  }
  ++stats.accepted;
  if (stats.open >= opts.max_connections) {
    ++stats.rejected_connections;
    beast::error_code ignored;
    socket.non_blocking(true, ignored);
    socket.write_some(net::buffer(too_many_connections), ignored);
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  } else {
    std::make_shared<Session>(shared_from_this(), std::move(socket))->Start();
    StartSweep();
  }
  Accept();
}

HttpServer::HttpServer(net::io_context& io, ServerOptions options, Handler& handler)
    : impl_(std::make_shared<Impl>(io, std::move(options), handler)) {}

HttpServer::~HttpServer() {
  beast::error_code ec;
  impl_->acceptor.close(ec);
  impl_->retry_timer.cancel();
  impl_->grace_timer.cancel();
  impl_->sweep_timer.cancel();
}

StatusOr<uint16_t> HttpServer::Listen(const std::string& address, uint16_t port) {
  beast::error_code ec;
  auto addr = net::ip::make_address(address, ec);
  if (ec) return InvalidArgument("bind address '" + address + "' is not an IP address");
  tcp::endpoint ep(addr, port);
  auto& a = impl_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    const std::string& setting = impl_->opts.listen_setting;
    return Unavailable("cannot listen on " + address + ":" + std::to_string(port) +
                       (setting.empty() ? "" : " (set by " + setting + ")") + ": " + ec.message());
  }
  impl_->Accept();
  return a.local_endpoint().port();
}

void HttpServer::Stop(std::chrono::milliseconds grace) {
  auto& s = *impl_;
  if (s.stopping) return;
  s.stopping = true;
  beast::error_code ec;
  s.acceptor.close(ec);
  s.retry_timer.cancel();
  s.sweep_timer.cancel();  // the grace timer bounds what is left
  std::vector<Session*> sessions(s.sessions.begin(), s.sessions.end());
  for (Session* session : sessions) session->CloseIfIdle();
  if (s.sessions.empty()) return;
  s.grace_timer.expires_after(grace);
  s.grace_timer.async_wait([impl = impl_](beast::error_code e) {
    if (e) return;
    std::vector<Session*> left(impl->sessions.begin(), impl->sessions.end());
    for (Session* session : left) session->Close();
  });
}

const ServerStats& HttpServer::stats() const { return impl_->stats; }

}  // namespace lm::http
