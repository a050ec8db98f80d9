// Feeds each input as raw bytes to the real tokenmgr HTTP stack (HttpServer + TokenService +
// EmbeddedLockService, as wired in tokenmgr_main.cc) over a loopback connection, then half-closes
// and runs the server's io_context on this thread until the session is gone.
//
// Checks, beyond "no sanitizer report":
//   - the server closes every connection within a bound (no stuck session, no leaked Session);
//   - everything it sends back is a sequence of HTTP/1.1 responses, none of them 500;
//   - the bearer token never appears in a response.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/real_time.h"
#include "common/log.h"
#include "http/server.h"
#include "http/router.h"
#include "tokenmgr/lock_api.h"
#include "tokenmgr/token_service.h"
#include "store/embedded_lock_service.h"

#include <spdlog/spdlog.h>

namespace {

using namespace lm;
constexpr const char* kSecret = "fuzz-secret-token-0123456789";

struct World {
  boost::asio::io_context io{1};
  std::unique_ptr<store::EmbeddedLockService> lock;
  http::Router router;
  std::unique_ptr<tokenmgr::LockApi> lock_api;
  std::unique_ptr<tokenmgr::TokenService> api;
  std::unique_ptr<http::HttpServer> server;
  uint16_t port = 0;
};

World& TheWorld() {
  static World* w = [] {
    spdlog::set_level(spdlog::level::off);
    auto* w = new World;
    // Small limits so the fuzzer reaches them; real bounds logic, only the numbers differ.
    lock::Options lo;
    lo.default_ttl = lock::Seconds(1);
    lo.max_ttl = lock::Seconds(2);
    lo.max_wait = lock::Seconds(1);
    lo.max_waiters = 4;
    auto lock = store::EmbeddedLockService::Open(w->io, RealTimeSystem::Get(), lo, "");
    if (!lock.ok()) std::abort();
    w->lock = std::move(*lock);
    w->lock_api = std::make_unique<tokenmgr::LockApi>(
        *w->lock, RealTimeSystem::Get(), tokenmgr::LockApiOptions{.auth_token = std::string(kSecret)});
    w->api = std::make_unique<tokenmgr::TokenService>(w->router, *w->lock_api, *w->lock);
    http::ServerOptions so;
    so.max_header_bytes = 2048;
    so.max_body_bytes = 1024;
    so.max_connections = 8;
    so.read_timeout = std::chrono::milliseconds(300);
    so.idle_timeout = std::chrono::milliseconds(300);
    so.write_timeout = std::chrono::milliseconds(300);
    w->server = std::make_unique<http::HttpServer>(w->io, RealTimeSystem::Get(), so, w->router);
    w->api->SetServerStats(&w->server->stats());
    auto port = w->server->Listen("127.0.0.1", 0);
    if (!port.ok()) std::abort();
    w->port = *port;
    return w;
  }();
  return *w;
}

void Die(const char* what, const std::string& got) {
  std::fprintf(stderr, "http_server_fuzzer: %s\n--- response bytes ---\n%s\n", what,
               got.substr(0, 2000).c_str());
  std::abort();
}

// Every response starts "HTTP/1.1 <3 digits> ". Checks each status line found.
void CheckResponses(const std::string& got) {
  if (got.empty()) return;
  if (got.rfind("HTTP/1.1 ", 0) != 0) Die("response does not start with HTTP/1.1", got);
  for (size_t at = 0; (at = got.find("HTTP/1.1 ", at)) != std::string::npos; at += 9) {
    if (got.compare(at + 9, 3, "500") == 0) Die("server answered 500", got);
  }
  if (got.find(kSecret) != std::string::npos) Die("bearer token echoed in a response", got);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  World& w = TheWorld();
  const uint64_t accepted_before = w.server->stats().accepted;

  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) std::abort();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(w.port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Loopback connect completes (or is in progress) without the server's loop running.
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
    std::abort();
  }

  std::string got;
  size_t sent = 0;
  bool half_closed = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (true) {
    if (sent < size) {
      ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<size_t>(n);
      else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN) sent = size;
    }
    if (sent == size && !half_closed) {
      ::shutdown(fd, SHUT_WR);
      half_closed = true;
    }
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) got.append(buf, static_cast<size_t>(n));
    w.io.restart();
    if (w.io.poll() == 0) w.io.run_one_for(std::chrono::milliseconds(1));
    bool served = w.server->stats().accepted > accepted_before;
    if (half_closed && served && w.server->stats().open == 0) break;
    if (std::chrono::steady_clock::now() > deadline) Die("session still open after 5 s", got);
  }
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) got.append(buf, static_cast<size_t>(n));
  linger lg{1, 0};  // RST: no TIME_WAIT pile-up over millions of runs
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(fd);
  CheckResponses(got);
  return 0;
}
