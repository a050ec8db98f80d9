// Connection: one accepted HTTP/1.1 connection, a small state machine over a non-blocking socket.
// It reads bytes, hands them to its RequestDecoder (http/codec.h), dispatches each request to the
// server's Handler, writes the response, and keeps its ConnectionDeadlines (http/deadlines.h)
// for the manager's sweep. Not thread-safe: the server's event-loop thread only.
//
//   auto c = std::make_shared<Connection>(manager, std::move(socket));
//   c->Start();                        // reads, answers and closes on its own from here
//   c->CheckDeadlines(time.Now());     // from the manager's sweep
//
// States (state()):
//   kIdle      between requests: waits for a first byte (idle timeout; trimmed when idle long)
//   kReading   a request's first bytes came; reading the rest (read timeout)
//   kHandling  the handler has the request; its response is pending, no deadline (a long poll).
//              A client that hangs up meanwhile is noticed and the Responder cancelled.
//   kWriting   the response is being sent (write timeout); then kIdle, or closed
// Any state ends in a closed socket: a client's end of stream or error, a parse error (answered
// 400/413/431 first), a deadline, Stop, or "Connection: close".
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "http/codec.h"
#include "http/deadlines.h"
#include "http/message.h"
#include "http/read_pacer.h"

namespace lm::http {

class ConnectionManager;

class Connection final : public ResponseSink, public std::enable_shared_from_this<Connection> {
 public:
  enum class State { kIdle, kReading, kHandling, kWriting };

  Connection(std::shared_ptr<ConnectionManager> manager, boost::asio::ip::tcp::socket socket);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void Start();
  // Closes the connection unless a request is being answered (kHandling, kWriting).
  void CloseIfIdle();
  void Close();
  // Closes the connection if its current deadline passed (counted in ServerStats::timeouts);
  // gives back the memory of a connection idle between requests for ServerOptions::trim_after.
  void CheckDeadlines(SteadyTime now);

  // ResponseSink: the handler's response, sent now.
  void Deliver(Response r) override { Write(std::move(r)); }

  State state() const { return state_; }

 private:
  // How the next request is read after a response.
  enum class Next {
    kReadNow,             // at the start, or from a fresh handler: read what is there
    kAfterOwnResponse,    // the response went out while its request was dispatched: ReadPacer
    kAfterOtherResponse,  // the response went out from elsewhere (see OnSent): wait first
  };
  // Where the dispatch of the current request stands (a response may go out inside Handle).
  enum class Dispatch { kNone, kInHandler, kSentInHandler };
  // What a look at the socket found while a long poll is pending.
  enum class Peer { kAlive, kGone, kTooMuch };

  bool PrepareNext(Next how);
  void ReadNext();
  void ReadAndParse();
  bool ContinueAfterResponse();
  void StartRequest();
  void Received(size_t n);
  void WaitReadable();
  void Refuse(const Decoded& d);
  bool DispatchRequest();
  void WatchDisconnect();
  Peer StashPipelined();
  void SendAndClose(int status, std::string_view message);
  void Write(Response r);
  void Send();
  void OnSent();
  void TrimIfMany();
  void Trim();
  SteadyTime Now() const;

  std::shared_ptr<ConnectionManager> manager_;
  boost::asio::ip::tcp::socket socket_;
  RequestDecoder codec_;
  ConnectionDeadlines deadlines_;
  ReadPacer pacer_;
  State state_ = State::kIdle;
  Dispatch dispatch_ = Dispatch::kNone;
  boost::beast::flat_buffer buffer_;      // read, not yet decoded
  std::shared_ptr<Responder> responder_;  // the request being answered
  bool keep_alive_ = false;               // of the request being answered
  std::string out_;                       // the response being sent
  size_t sent_ = 0;
  std::string remote_;
  // Asynchronous operations queued on the socket, besides a readiness wait.
  bool read_queued_ = false;  // an async_read_some into buffer_ (see WaitReadable)
  bool watching_ = false;     // a readiness wait for a hang-up during kHandling
  bool trimmed_ = true;       // nothing to give back (a new connection holds nothing yet)
  // Inside ReadAndParse: the time the last bytes came, which serves as "now" for the deadlines
  // set until it returns (see Now()).
  std::optional<SteadyTime> read_time_;
};

}  // namespace lm::http
