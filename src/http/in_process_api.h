// InProcessApi: a real TokenService on the embedded lock store, called without a network. For
// unit tests of routes and pages; requests are answered on io() (polled by Call).
//
//   InProcessApi api;
//   ASSERT_TRUE(api.Open().ok());
//   Response r = api.Call("GET", "/api/token/lock/0?holder=a");
#pragma once

#include <boost/asio/io_context.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/time_system.h"
#include "http/token_service.h"
#include "store/embedded_lock_service.h"

namespace lm::http {

class InProcessApi {
 public:
  InProcessApi() = default;
  InProcessApi(const InProcessApi&) = delete;
  InProcessApi& operator=(const InProcessApi&) = delete;
  ~InProcessApi() {
    if (lock_) lock_->Shutdown();
  }

  Status Open() {
    auto lock = store::EmbeddedLockService::Open(io_, clock_, {}, "");
    if (!lock.ok()) return lock.status();
    lock_ = std::move(*lock);
    api_ = std::make_unique<TokenService>(*lock_, TokenServiceOptions{});
    return Status::Ok();
  }

  Response Call(std::string method, std::string target, std::string body = "",
                std::vector<std::pair<std::string, std::string>> headers = {}) {
    Request req;
    req.method = std::move(method);
    if (!ParseTarget(target, req.path, req.query).ok()) return ErrorResponse(400, "bad target");
    req.target = std::move(target);
    req.body = std::move(body);
    req.headers = std::move(headers);
    Response out;
    out.status = 0;
    api_->Handle(req, std::make_shared<Responder>([&out](Response r) { out = std::move(r); }));
    io_.poll();
    return out;
  }

  boost::asio::io_context& io() { return io_; }
  SimulatedTimeSystem& clock() { return clock_; }
  TokenService& api() { return *api_; }

 private:
  boost::asio::io_context io_;
  SimulatedTimeSystem clock_;
  std::unique_ptr<lock::LockService> lock_;
  std::unique_ptr<TokenService> api_;  // after lock_: destroyed first
};

}  // namespace lm::http
