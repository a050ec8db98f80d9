// InProcessService: tokenmgr's routes (JSON API, and the web page once InstallPage ran) on the
// embedded lock store and simulated time, called without a network. For unit tests and
// handler_bench (target lm_tokenmgr_testing); requests are answered on io(), polled by Call.
// Not thread-safe.
//
//   InProcessService s;
//   ASSERT_TRUE(s.Open().ok());
//   http::Response r = s.Call("GET", "/api/token/lock/0?holder=a");
#pragma once

#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/time_system.h"
#include "http/router.h"
#include "license/fs.h"
#include "store/embedded_lock_service.h"
#include "tokenmgr/lock_api.h"
#include "tokenmgr/token_service.h"
#include "tokenmgr/ui.h"

namespace lm::tokenmgr {

class InProcessService {
 public:
  InProcessService() = default;
  InProcessService(const InProcessService&) = delete;
  InProcessService& operator=(const InProcessService&) = delete;
  ~InProcessService() {
    if (ui_) ui_->Stop();
    if (store_) store_->Shutdown();
  }

  Status Open(LockApiOptions options = {}) {
    auto store = store::EmbeddedLockService::Open(io_, time_, {}, "");
    if (!store.ok()) return store.status();
    store_ = std::move(*store);
    api_ = std::make_unique<LockApi>(*store_, time_, std::move(options));
    service_ = std::make_unique<TokenService>(router_, *api_, *store_);
    return Status::Ok();
  }

  // Adds the web page (its pool, if any, read from the real filesystem).
  WebUi& InstallPage(WebUiOptions options = {}) {
    ui_ = std::make_unique<WebUi>(io_, router_, *api_, fs_, time_, std::move(options));
    service_->AddMetrics([ui = ui_.get()] { return ui->RenderMetrics(); });
    return *ui_;
  }

  http::Response Call(std::string method, std::string target, std::string body = "",
                      std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::Request req;
    req.method = std::move(method);
    if (!http::ParseTarget(target, req.path, req.query).ok()) {
      return http::ErrorResponse(400, "bad target");
    }
    req.target = std::move(target);
    req.body = std::move(body);
    req.headers = std::move(headers);
    http::Response out;
    out.status = 0;
    router_.Handle(
        req, std::make_shared<http::Responder>([&out](http::Response r) { out = std::move(r); }));
    io_.poll();
    return out;
  }

  boost::asio::io_context& io() { return io_; }
  SimulatedTimeSystem& time() { return time_; }
  http::Router& router() { return router_; }
  LockApi& api() { return *api_; }
  TokenService& service() { return *service_; }

 private:
  boost::asio::io_context io_;
  SimulatedTimeSystem time_;
  license::PosixFilesystem fs_;
  http::Router router_;
  std::unique_ptr<lock::LockService> store_;
  std::unique_ptr<LockApi> api_;
  std::unique_ptr<TokenService> service_;
  std::unique_ptr<WebUi> ui_;  // last: destroyed first
};

}  // namespace lm::tokenmgr
