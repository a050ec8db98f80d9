// ConnectionManager: what HttpServer is made of. It accepts connections (at most
// ServerOptions::max_connections; the next one gets a 503 and is closed), keeps the set of open
// Connections, checks their deadlines with one sweep timer for all of them, and stops them with
// a grace period. Every timer and every reading of time goes through the TimeSystem. Not
// thread-safe: the io_context's thread only. Held by HttpServer and by each open Connection.
//
//   auto m = std::make_shared<ConnectionManager>(io, time, options, handler);
//   m->Listen("127.0.0.1", 0);
//   m->Stop(std::chrono::seconds(5));
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <unordered_set>

#include "common/status.h"
#include "common/time_system.h"
#include "http/codec.h"
#include "http/deadlines.h"
#include "http/server.h"

namespace lm::http {

class Connection;

class ConnectionManager : public std::enable_shared_from_this<ConnectionManager> {
 public:
  ConnectionManager(boost::asio::io_context& io, TimeSystem& time, ServerOptions options,
                    Handler& handler);
  ~ConnectionManager();

  // See HttpServer.
  StatusOr<uint16_t> Listen(const std::string& address, uint16_t port);
  void Stop(std::chrono::milliseconds grace);
  // HttpServer is gone: no more accepts, no more timers.
  void Shutdown();

  // For the connections.
  boost::asio::io_context& io() { return io_; }
  TimeSystem& time() { return time_; }
  const ServerOptions& options() const { return opts_; }
  CodecLimits limits() const;
  Timeouts timeouts() const;
  Handler& handler() { return handler_; }
  ServerStats& stats() { return stats_; }
  bool stopping() const { return stopping_; }
  size_t open_connections() const { return connections_.size(); }
  // Request line, headers and body together: what one client may make the server buffer.
  size_t max_request_bytes() const { return opts_.max_header_bytes + opts_.max_body_bytes; }
  void Add(Connection* c);
  void Remove(Connection* c);

 private:
  void Accept();
  void OnAccept(boost::system::error_code ec, boost::asio::ip::tcp::socket socket);
  // Deadlines are checked by one timer for all connections, not one per read or write, so a
  // request costs no timer system calls (docs/benchmarks.md, "HTTP server").
  void StartSweep();
  void Sweep();
  void CloseAll();

  boost::asio::io_context& io_;
  TimeSystem& time_;
  const ServerOptions opts_;
  Handler& handler_;
  boost::asio::ip::tcp::acceptor acceptor_;
  TimerPtr retry_timer_;  // accept failed (EMFILE and friends): try again shortly
  TimerPtr grace_timer_;  // Stop's grace period
  TimerPtr sweep_timer_;
  // Written before any connection exists to a connection over max_connections; built once.
  const std::string too_many_connections_;
  ServerStats stats_;
  bool stopping_ = false;
  std::unordered_set<Connection*> connections_;
};

}  // namespace lm::http
