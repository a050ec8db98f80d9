// HttpServer: an asynchronous HTTP/1.1 server (Boost.Beast) on one io_context thread, with
// bounds on everything a client controls. Not thread-safe: create, run and stop it on the
// io_context's thread. It reads time and arms its timers (deadlines, accept retry, stop grace)
// through the TimeSystem it is given only.
//
//   HttpServer server(io, RealTimeSystem::Get(), options, handler);
//   StatusOr<uint16_t> port = server.Listen("127.0.0.1", 0);  // 0 = pick a free port
//   io.run();  // until Stop() and the last connection closed
//
// Bounds: header bytes, header count, body bytes, open connections, time to read a request,
// keep-alive idle time, time to write a response. A client past a bound gets a clear 4xx/503 or
// a closed connection, never a stuck server.
//
// Inside (envoy's split): http/codec.h parses and serializes, http/connection.h is one
// connection's state machine with its http/deadlines.h, http/connection_manager.h accepts,
// sweeps deadlines and stops.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "common/time_system.h"
#include "http/message.h"

namespace lm::http {

class ConnectionManager;

struct ServerOptions {
  size_t max_header_bytes = 8 * 1024;  // request line and all header fields
  size_t max_header_count = 64;        // header fields
  size_t max_body_bytes = 64 * 1024;
  size_t max_connections = 4096;
  std::chrono::milliseconds read_timeout{10000};  // from first byte to whole request
  std::chrono::milliseconds idle_timeout{60000};  // keep-alive between requests
  std::chrono::milliseconds write_timeout{10000};
  // A kept-alive connection idle this long between requests gives its buffers back.
  std::chrono::milliseconds trim_after{1000};
  std::string server_name = "tokenmgr";
  // Where the listen address and port were configured, named in Listen's error (e.g.
  // "LISTENPORT/--listen-port, BIND_ADDRESS/--bind-address"). Empty: nothing named.
  std::string listen_setting;
};

struct ServerStats {
  uint64_t accepted = 0;
  uint64_t open = 0;
  uint64_t rejected_connections = 0;  // over max_connections
  uint64_t bad_requests = 0;          // unparsable, oversized
  uint64_t timeouts = 0;              // idle or slow clients closed
  uint64_t trims = 0;                 // connections that gave their buffers back
};

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, TimeSystem& time, ServerOptions options,
             Handler& handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and starts accepting. Returns the bound port, or UNAVAILABLE naming the address, the
  // port, ServerOptions::listen_setting and the system's reason.
  StatusOr<uint16_t> Listen(const std::string& address, uint16_t port);

  // Stops accepting; idle connections close now, busy ones after their response.
  // Connections still open after `grace` are closed.
  void Stop(std::chrono::milliseconds grace);

  const ServerStats& stats() const;

 private:
  std::shared_ptr<ConnectionManager> impl_;
};

}  // namespace lm::http
