#include "http/server.h"

#include "http/connection_manager.h"

namespace lm::http {

HttpServer::HttpServer(boost::asio::io_context& io, TimeSystem& time, ServerOptions options,
                       Handler& handler)
    : impl_(std::make_shared<ConnectionManager>(io, time, std::move(options), handler)) {}

HttpServer::~HttpServer() { impl_->Shutdown(); }

StatusOr<uint16_t> HttpServer::Listen(const std::string& address, uint16_t port) {
  return impl_->Listen(address, port);
}

void HttpServer::Stop(std::chrono::milliseconds grace) { impl_->Stop(grace); }

const ServerStats& HttpServer::stats() const { return impl_->stats(); }

}  // namespace lm::http
