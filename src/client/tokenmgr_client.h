// TokenmgrClient: what the license-holder needs from tokenmgr (take and give back the mutex).
// HttpTokenmgrClient speaks the HTTP API with timeouts. Lock/Release are called from one
// thread at a time; Abort() may be called from any thread to interrupt them (shutdown).
//
//   auto client = HttpTokenmgrClient::Create("http://tokenmgr.bitfusion:8080/api/token", {});
//   StatusOr<LockGrant> g = (*client)->Lock(10s, 10s, "gpu-node-7");
//   // FAILED_PRECONDITION: not granted within the wait; UNAVAILABLE: tokenmgr down or garbled
//   (*client)->Release(g->id);
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/status.h"

namespace boost::asio {
class io_context;
}

namespace lm::client {

struct LockGrant {
  std::string id;
  uint64_t token = 0;
  int64_t ttl_s = 0;
  int64_t expires_in_ms = 0;
};

class TokenmgrClient {
 public:
  virtual ~TokenmgrClient() = default;
  virtual StatusOr<LockGrant> Lock(std::chrono::seconds wait, std::chrono::seconds ttl,
                                   const std::string& holder) = 0;
  virtual Status Release(const std::string& id) = 0;
  virtual void Abort() = 0;
};

struct ParsedUrl {
  std::string host;
  std::string port;
  std::string base_path;  // without trailing slash, e.g. "/api/token"
};
// Accepts only http://host[:port][/path]; INVALID_ARGUMENT otherwise.
StatusOr<ParsedUrl> ParseHttpUrl(const std::string& url);

// Interprets a lock response (status code + body). Exposed for tests and fuzzing.
StatusOr<LockGrant> ParseLockResponse(int status, const std::string& body);

class HttpTokenmgrClient final : public TokenmgrClient {
 public:
  static StatusOr<std::unique_ptr<HttpTokenmgrClient>> Create(
      const std::string& base_url, std::optional<std::string> auth_token,
      std::chrono::milliseconds io_timeout = std::chrono::seconds(5));

  StatusOr<LockGrant> Lock(std::chrono::seconds wait, std::chrono::seconds ttl,
                           const std::string& holder) override;
  Status Release(const std::string& id) override;
  void Abort() override;

 private:
  HttpTokenmgrClient(ParsedUrl url, std::optional<std::string> auth, std::chrono::milliseconds t)
      : url_(std::move(url)), auth_(std::move(auth)), io_timeout_(t) {}
  struct Reply {
    int status = 0;
    std::string body;
  };
  StatusOr<Reply> Call(const std::string& method, const std::string& target,
                       std::chrono::milliseconds timeout);

  ParsedUrl url_;
  std::optional<std::string> auth_;
  std::chrono::milliseconds io_timeout_;
  std::mutex mu_;
  boost::asio::io_context* current_ = nullptr;  // Guarded by mu_
  bool aborted_ = false;                        // Guarded by mu_
};

}  // namespace lm::client
