// TokenmgrClient: what the license-holder needs from tokenmgr (take and give back the mutex,
// report the node's state to the operator's console). HttpTokenmgrClient speaks the HTTP API
// with timeouts. Lock/Release/Report are called from one thread at a time; Abort() may be called
// from any thread to interrupt them (shutdown). Every Lock opens a new connection (a long poll must
// never be sent twice); the connection that brought a grant is kept open for the Release that
// follows, so giving the mutex back inside the critical section costs no connect or name lookup. If
// that kept connection turns out dead before any reply byte, the Release is retried once on a new
// one (a repeated release is harmless: at worst 404).
//
//   auto client = HttpTokenmgrClient::Create("http://tokenmgr.bitfusion:8080/api/token", {});
//   StatusOr<LockGrant> g = (*client)->Lock(10s, 10s, "gpu-node-7");
//   // FAILED_PRECONDITION: not granted within the wait; UNAVAILABLE: tokenmgr down or garbled
//   (*client)->Release(g->id);
//   StatusOr<console::Directives> d = (*client)->Report("gpu-node-7", report, 2s);
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/status.h"
#include "console/console.h"
#include "console/console_json.h"

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
  // PUT <root>/api/nodes/<node> with the report (console::AgentReportJson), giving up after
  // `timeout` in all (connect, send, answer). OK: the directives, with how many of the
  // report's events (the first `acknowledged`) tokenmgr stored.
  // INVALID_ARGUMENT: tokenmgr refused the report as malformed or too large (400, 413: the
  // agent drops those events); UNAUTHENTICATED: 401; NOT_FOUND: 404 (a tokenmgr without the
  // console); UNAVAILABLE: unreachable, 503, any other answer or a garbled one (the agent keeps
  // its events and its last directives).
  virtual StatusOr<console::Directives> Report(const std::string& node,
                                               const console::AgentReport& report,
                                               std::chrono::milliseconds timeout) = 0;
  virtual void Abort() = 0;
};

struct ParsedUrl {
  std::string host;  // a DNS name, IPv4 address or IPv6 address (no brackets: "::1")
  std::string port;
  std::string authority;  // host[:port] as written in the URL, e.g. "[::1]:8080" (Host header)
  std::string base_path;  // without trailing slash, e.g. "/api/token"
};
// Accepts only http://host[:port][/path], host an IPv6 literal in brackets
// (http://[::1]:8080/api/token); INVALID_ARGUMENT naming TOKENMGR_URL otherwise.
StatusOr<ParsedUrl> ParseHttpUrl(const std::string& url);

// The server's root path in a TOKENMGR_URL: the path without a trailing /api/token,
// /api/tokenmgr or /api ("http://tm:8080/api/token" and "http://tm:8080" both give "").
std::string ServerRoot(const ParsedUrl& url);

struct ApiReply {
  int status = 0;
  std::string body;
};

// Interprets a lock response (status code + body). Exposed for tests and fuzzing.
StatusOr<LockGrant> ParseLockResponse(int status, const std::string& body);
// Interprets the answer to a node report (see TokenmgrClient::Report). Exposed for tests.
StatusOr<console::Directives> ParseReportResponse(int status, const std::string& body);

class HttpTokenmgrClient final : public TokenmgrClient {
 public:
  static StatusOr<std::unique_ptr<HttpTokenmgrClient>> Create(
      const std::string& base_url, std::optional<std::string> auth_token,
      std::chrono::milliseconds io_timeout = std::chrono::seconds(5));
  ~HttpTokenmgrClient() override;

  StatusOr<LockGrant> Lock(std::chrono::seconds wait, std::chrono::seconds ttl,
                           const std::string& holder) override;
  Status Release(const std::string& id) override;
  // On a connection of its own, closed after the answer: thousands of agents keeping report
  // connections open would fill tokenmgr's connection limit and lock requests would be refused.
  StatusOr<console::Directives> Report(const std::string& node, const console::AgentReport& report,
                                       std::chrono::milliseconds timeout) override;
  void Abort() override;
  // Any API call, `path` from the server's root (see ServerRoot), e.g. "/api/nodes"; `body`,
  // when not empty, is sent as JSON. Keeps the connection for the next call.
  StatusOr<ApiReply> Api(const std::string& method, const std::string& path,
                         const std::string& body = "");

  // TCP connections opened so far (tests and benchmarks; loop thread only).
  uint64_t connections_opened() const { return connections_opened_; }

 private:
  HttpTokenmgrClient(ParsedUrl url, std::optional<std::string> auth, std::chrono::milliseconds t);
  struct Reply {
    int status = 0;
    std::string body;
  };
  enum class Conn { kNew, kReuse };  // kReuse: the kept connection, if there is one
  StatusOr<Reply> Call(const std::string& method, const std::string& target,
                       std::chrono::milliseconds timeout, Conn conn, bool keep_alive,
                       const std::string& body = "");

  ParsedUrl url_;
  std::optional<std::string> auth_;
  std::chrono::milliseconds io_timeout_;
  // One io_context for the client's lifetime (no per-call epoll, timer and resolver thread) and
  // the connection kept from the last Lock; used by the loop thread (Abort only stops it).
  struct Transport;
  std::unique_ptr<Transport> transport_;
  uint64_t connections_opened_ = 0;
  std::mutex mu_;
  bool aborted_ = false;  // Guarded by mu_
};

}  // namespace lm::client
