#include "http/connection_manager.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <vector>

#include "http/connection.h"

namespace lm::http {

namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

std::string TooManyConnections(const ServerOptions& o) {
  std::string out;
  SerializeResponse(ErrorResponse(503, "too many open connections"), o.server_name,
                    /*keep_alive=*/false, /*with_body=*/true, out);
  return out;
}

}  // namespace

ConnectionManager::ConnectionManager(net::io_context& io, TimeSystem& time, ServerOptions options,
                                     Handler& handler)
    : io_(io),
      time_(time),
      opts_(std::move(options)),
      handler_(handler),
      acceptor_(io),
      // The timers' owner outlives them, and a destroyed timer never calls back: `this` is safe.
      retry_timer_(time.CreateTimer(io.get_executor(), [this] { Accept(); })),
      grace_timer_(time.CreateTimer(io.get_executor(), [this] { CloseAll(); })),
      sweep_timer_(time.CreateTimer(io.get_executor(), [this] { Sweep(); })),
      too_many_connections_(TooManyConnections(opts_)) {}

ConnectionManager::~ConnectionManager() = default;

CodecLimits ConnectionManager::limits() const {
  return {opts_.max_header_bytes, opts_.max_header_count, opts_.max_body_bytes};
}

Timeouts ConnectionManager::timeouts() const {
  return {opts_.read_timeout, opts_.idle_timeout, opts_.write_timeout, opts_.trim_after};
}

void ConnectionManager::Add(Connection* c) {
  connections_.insert(c);
  ++stats_.open;
}

void ConnectionManager::Remove(Connection* c) {
  connections_.erase(c);
  --stats_.open;
  if (stopping_ && connections_.empty()) grace_timer_->Disarm();
}

void ConnectionManager::StartSweep() {
  if (sweep_timer_->armed() || stopping_) return;
  auto shortest =
      std::min({opts_.read_timeout, opts_.idle_timeout, opts_.write_timeout, opts_.trim_after});
  sweep_timer_->Arm(
      std::clamp(shortest / 4, std::chrono::milliseconds(10), std::chrono::milliseconds(250)));
}

void ConnectionManager::Sweep() {
  const SteadyTime now = time_.Now();
  std::vector<Connection*> all(connections_.begin(), connections_.end());
  for (Connection* c : all) {
    if (connections_.count(c)) c->CheckDeadlines(now);
  }
  if (!connections_.empty()) StartSweep();
}

void ConnectionManager::Accept() {
  acceptor_.async_accept(
      [self = shared_from_this()](boost::system::error_code ec, tcp::socket socket) {
        self->OnAccept(ec, std::move(socket));
      });
}

void ConnectionManager::OnAccept(boost::system::error_code ec, tcp::socket socket) {
  if (stopping_ || !acceptor_.is_open()) return;
  if (ec) {
    // EMFILE and friends: back off briefly instead of spinning.
    spdlog::warn("accept failed: {}", ec.message());
    retry_timer_->Arm(std::chrono::milliseconds(50));
    return;
  }
  ++stats_.accepted;
  if (stats_.open >= opts_.max_connections) {
    ++stats_.rejected_connections;
    boost::system::error_code ignored;
    socket.non_blocking(true, ignored);
    socket.write_some(net::buffer(too_many_connections_), ignored);
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  } else {
    std::make_shared<Connection>(shared_from_this(), std::move(socket))->Start();
    StartSweep();
  }
  Accept();
}

StatusOr<uint16_t> ConnectionManager::Listen(const std::string& address, uint16_t port) {
  boost::system::error_code ec;
  auto addr = net::ip::make_address(address, ec);
  if (ec) return InvalidArgument("bind address '" + address + "' is not an IP address");
  tcp::endpoint ep(addr, port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    const std::string& setting = opts_.listen_setting;
    return Unavailable("cannot listen on " + address + ":" + std::to_string(port) +
                       (setting.empty() ? "" : " (set by " + setting + ")") + ": " + ec.message());
  }
  Accept();
  return acceptor_.local_endpoint().port();
}

void ConnectionManager::Stop(std::chrono::milliseconds grace) {
  if (stopping_) return;
  stopping_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
  retry_timer_->Disarm();
  sweep_timer_->Disarm();  // the grace timer bounds what is left
  std::vector<Connection*> all(connections_.begin(), connections_.end());
  for (Connection* c : all) c->CloseIfIdle();
  if (connections_.empty()) return;
  grace_timer_->Arm(grace);
}

void ConnectionManager::CloseAll() {
  std::vector<Connection*> left(connections_.begin(), connections_.end());
  for (Connection* c : left) c->Close();
}

void ConnectionManager::Shutdown() {
  boost::system::error_code ec;
  acceptor_.close(ec);
  retry_timer_->Disarm();
  grace_timer_->Disarm();
  sweep_timer_->Disarm();
}

}  // namespace lm::http
