#include "http/connection.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cstring>
#include <utility>

#include "http/connection_manager.h"

namespace lm::http {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

namespace {

// Idle keep-alive connections hold as little memory as possible. A busy connection keeps its
// parser, buffer and request strings between requests, so a request on it allocates less; one
// idle for ServerOptions::trim_after gives them back. With more than this many connections open,
// each gives its memory back after every response.
constexpr size_t kKeepMemoryUpTo = 64;
// What a read between requests asks for (a request's first bytes).
constexpr size_t kFirstReadBytes = 512;
// What one read inside a request asks for at most.
constexpr size_t kReadBytes = 4096;

}  // namespace

Connection::Connection(std::shared_ptr<ConnectionManager> manager, tcp::socket socket)
    : manager_(std::move(manager)),
      socket_(std::move(socket)),
      codec_(manager_->limits()),
      deadlines_(manager_->timeouts()) {
  manager_->Add(this);
}

Connection::~Connection() { manager_->Remove(this); }

void Connection::Start() {
  error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  if (!ec) remote_ = ep.address().to_string();
  socket_.set_option(tcp::no_delay(true), ec);
  socket_.non_blocking(true, ec);
  if (ec) return Close();
  ReadNext();
}

void Connection::CloseIfIdle() {
  if (state_ != State::kHandling && state_ != State::kWriting) Close();
}

void Connection::Close() {
  error_code ec;
  socket_.shutdown(tcp::socket::shutdown_both, ec);
  socket_.close(ec);
}

void Connection::CheckDeadlines(SteadyTime now) {
  if (deadlines_.Expired(now) && socket_.is_open()) {
    ++manager_->stats().timeouts;
    return Close();
  }
  if (state_ == State::kIdle && buffer_.size() == 0 && deadlines_.TrimDue(now)) {
    if (!read_queued_) return Trim();
    // The queued read holds the buffer: cancel it; its handler trims and waits again.
    error_code ec;
    socket_.cancel(ec);
  }
}

// The time for deadlines. Inside ReadAndParse it is the reading taken when the last bytes came
// (one reading serves a request's read deadline, its response's write deadline and the idle
// deadline after it); elsewhere (a long poll answered later) it is read now.
SteadyTime Connection::Now() const { return read_time_ ? *read_time_ : manager_->time().Now(); }

// Enters kIdle and arms the idle deadline. Returns true when the caller should read now; false
// when something else was arranged (closed, or a readiness wait queued).
bool Connection::PrepareNext(Next how) {
  if (manager_->stopping()) {
    Close();
    return false;
  }
  state_ = State::kIdle;
  deadlines_.StartIdle(Now());
  if (buffer_.size() > 0 || how == Next::kReadNow) return true;
  if (how == Next::kAfterOwnResponse && pacer_.ReadAtOnce()) return true;
  WaitReadable();
  return false;
}

void Connection::ReadNext() {
  if (PrepareNext(Next::kReadNow)) ReadAndParse();
}

// Decodes what is buffered, reads more while the socket has it, and dispatches each complete
// request; waits for readability when the socket is drained (edge-triggered readiness: a wait
// is only queued after a read said "would block").
void Connection::ReadAndParse() {
  struct ReadTimeScope {
    Connection* c;
    ~ReadTimeScope() { c->read_time_.reset(); }
  } scope{this};
  while (true) {
    if (buffer_.size() > 0) {
      if (state_ == State::kIdle) StartRequest();
      Decoded d = codec_.Decode(buffer_.data());
      buffer_.consume(d.used);
      if (d.result == Decoded::kError) return Refuse(d);
      if (d.result == Decoded::kRequest) {
        if (!DispatchRequest() || !ContinueAfterResponse()) return;
        continue;
      }
    }
    const size_t want = state_ == State::kReading
                            ? std::min(kReadBytes, manager_->max_request_bytes() + 1)
                            : kFirstReadBytes;
    error_code ec;
    size_t n = 0;
    if (buffer_.capacity() == 0) {
      // A trimmed (or new) connection reads into the stack first: a read that finds nothing
      // then allocates nothing.
      char first[kFirstReadBytes];
      n = socket_.read_some(net::buffer(first, std::min(want, sizeof first)), ec);
      if (!ec) std::memcpy(buffer_.prepare(n).data(), first, n);
    } else {
      n = socket_.read_some(buffer_.prepare(want), ec);
    }
    pacer_.OnRead(/*found_nothing=*/ec == net::error::would_block);
    if (ec == net::error::would_block) return WaitReadable();
    if (ec == net::error::interrupted) continue;
    if (ec == net::error::eof && state_ == State::kReading) {
      // Half-closed after part of a request: say why, the client may still read.
      Decoded d = codec_.Finish();
      if (d.result == Decoded::kError) return Refuse(d);
      if (d.result != Decoded::kRequest) return Close();
      if (!DispatchRequest() || !ContinueAfterResponse()) return;
      continue;
    }
    if (ec) return Close();  // end of stream between requests, or a socket error
    Received(n);
  }
}

// The response went out while the request was dispatched: the next request is read by
// ReadAndParse's loop, not by recursion, so a client that always has its next request ready
// cannot grow the stack and no handler is entered again while it runs. Pipelined requests
// already buffered get a fresh handler instead (one connection cannot hog the loop).
bool Connection::ContinueAfterResponse() {
  TrimIfMany();
  if (buffer_.size() > 0) {
    net::post(manager_->io(), [self = shared_from_this()] { self->ReadNext(); });
    return false;
  }
  return PrepareNext(Next::kAfterOwnResponse);
}

void Connection::StartRequest() {
  state_ = State::kReading;
  trimmed_ = false;
  deadlines_.StartRead(Now());
}

// `n` bytes were read into buffer_.prepare(): they join the buffer, and the time they came is
// the reading deadlines use (see Now()).
void Connection::Received(size_t n) {
  buffer_.commit(n);
  read_time_ = manager_->time().Now();
}

// Waits for the next bytes. A connection that still has its buffer (it was busy lately) queues
// the read itself, so the read happens when the socket is readable with no readiness wait
// before it; a trimmed connection waits for readability without holding a buffer.
void Connection::WaitReadable() {
  if (!trimmed_ && buffer_.capacity() > 0) {
    read_queued_ = true;
    socket_.async_read_some(buffer_.prepare(kFirstReadBytes),
                            [self = shared_from_this()](error_code ec, size_t n) {
                              self->read_queued_ = false;
                              if (!self->socket_.is_open()) return;
                              if (ec == net::error::operation_aborted) {
                                // Cancelled by CheckDeadlines to give the memory of an idle
                                // connection back.
                                self->Trim();
                                return self->WaitReadable();
                              }
                              if (!ec) self->Received(n);
                              // An error (end of stream, reset) is met again by ReadAndParse's own
                              // read, which knows whether a request was under way.
                              self->ReadAndParse();
                            });
    return;
  }
  socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](error_code ec) {
    if (ec || !self->socket_.is_open()) return self->Close();
    self->ReadAndParse();
  });
}

void Connection::Refuse(const Decoded& d) {
  ++manager_->stats().bad_requests;
  SendAndClose(d.status, d.error);
}

// Hands the decoded request to the handler (kHandling). Returns true when its response went out
// during the dispatch (the caller then reads the next request); false when the response is
// pending (a long poll) or the connection closed.
bool Connection::DispatchRequest() {
  Request& req = codec_.request();
  req.remote_address = remote_;
  keep_alive_ = codec_.keep_alive();
  state_ = State::kHandling;
  deadlines_.None();
  // The sink holds the connection: a pending response keeps it alive. The cycle ends when the
  // handler sends or the client goes away (Responder drops the sink).
  responder_ = std::make_shared<Responder>(std::shared_ptr<ResponseSink>(shared_from_this()));
  auto responder = responder_;
  dispatch_ = Dispatch::kInHandler;  // a response sent from Handle is noted, not followed by a read
  manager_->handler().Handle(req, responder);
  const bool sent = dispatch_ == Dispatch::kSentInHandler;
  dispatch_ = Dispatch::kNone;
  if (!responder->done()) WatchDisconnect();
  return sent;
}

// While a long poll is pending, notices a client that hangs up and cancels the Responder (the
// handler's OnCancel runs: a lock waiter leaves the queue). Bytes the client pipelines meanwhile
// are moved into the read buffer (they are decoded after this response), so a hang-up after them
// is still noticed.
void Connection::WatchDisconnect() {
  watching_ = true;
  socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this(),
                                              pending = responder_.get()](error_code ec) {
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
    // read it after this response (the codec's limits then apply).
  });
}

// Reads what the client sent behind the pending request into buffer_, without blocking.
Connection::Peer Connection::StashPipelined() {
  const size_t limit = manager_->max_request_bytes();
  if (buffer_.size() >= limit) return Peer::kTooMuch;
  error_code ec;
  size_t n = socket_.read_some(buffer_.prepare(std::min(kReadBytes, limit - buffer_.size())), ec);
  if (!ec) {
    buffer_.commit(n);
    return Peer::kAlive;
  }
  if (ec == net::error::would_block || ec == net::error::interrupted) return Peer::kAlive;
  return Peer::kGone;  // orderly shutdown (end of stream) or a socket error
}

void Connection::SendAndClose(int status, std::string_view message) {
  keep_alive_ = false;
  Write(ErrorResponse(status, message));
}

void Connection::Write(Response r) {
  if (watching_) {
    error_code ec;
    socket_.cancel(ec);
    watching_ = false;
  }
  keep_alive_ = keep_alive_ && !manager_->stopping();
  SerializeResponse(r, manager_->options().server_name, keep_alive_, !codec_.head(), out_);
  sent_ = 0;
  state_ = State::kWriting;
  deadlines_.StartWrite(Now());
  Send();
}

void Connection::Send() {
  while (sent_ < out_.size()) {
    error_code ec;
    size_t n = socket_.write_some(net::buffer(out_.data() + sent_, out_.size() - sent_), ec);
    if (ec == net::error::would_block) {
      socket_.async_wait(tcp::socket::wait_write, [self = shared_from_this()](error_code e) {
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

void Connection::OnSent() {
  state_ = State::kIdle;
  responder_.reset();
  out_.clear();  // keeps its capacity for the next response (Trim gives it back)
  if (!keep_alive_) return Close();
  if (dispatch_ == Dispatch::kInHandler) {
    dispatch_ = Dispatch::kSentInHandler;  // DispatchRequest's caller trims and reads on
    return;
  }
  TrimIfMany();
  // Sent from elsewhere: a long poll answered from another request's handler or a timer, or a
  // send that had to wait. The next request is read from a fresh handler (a readiness wait, or
  // a post for bytes already buffered), so no handler is entered again while it runs.
  if (buffer_.size() > 0) {
    return net::post(manager_->io(), [self = shared_from_this()] { self->ReadNext(); });
  }
  PrepareNext(Next::kAfterOtherResponse);
}

// Never while a request is being dispatched: the handler still reads it.
void Connection::TrimIfMany() {
  if (manager_->open_connections() > kKeepMemoryUpTo) Trim();
}

void Connection::Trim() {
  if (trimmed_) return;
  trimmed_ = true;
  ++manager_->stats().trims;
  codec_.Trim();
  buffer_.shrink_to_fit();
  std::string().swap(out_);
}

}  // namespace lm::http
