// EtcdClient: a small asynchronous client for etcd's v3 API through its JSON gateway
// (POST /v3/kv/range, /v3/kv/txn, /v3/kv/deleterange, /v3/lease/grant|revoke|keepalive,
// /v3/watch), over HTTP/1.1 keep-alive connections (plain or TLS) on the caller's io_context.
// Not thread-safe: call it, and receive its callbacks, on that io_context's thread. The store
// does not call it directly: EtcdGatewayApi (etcd_gateway_api.h) builds the typed requests of
// EtcdApi on it.
//
//   auto etcd = EtcdClient::Create(io, {.endpoints = {"http://127.0.0.1:2379"}, .timeout = 2s});
//   (*etcd)->Call("/v3/kv/range", {{"key", Base64Encode("/tokenmgr/lock")}},
//                 [](StatusOr<nlohmann::json> r) { ... });
//
// Used with ETCD_PROTOCOL=json: every etcd v3 server serves the gateway on its client port, over
// HTTP/1.1, so it passes proxies that do not speak HTTP/2. The default is gRPC (EtcdGrpcClient,
// etcd_grpc_client.h), which costs etcd about a third of the CPU per request. Connections are kept
// alive, so there is no per-request TCP set-up.
//
// TLS (https:// endpoints): the server's certificate must chain to `tls.ca_file` (or the system
// CAs when it is empty) and name the endpoint's host (DNS name or IP address); `tls.cert_file` and
// `tls.key_file` are the client certificate etcd's --client-cert-auth asks for. Files are read
// once, in Create(); a bad file or a key that does not match the certificate is an error there.
//
// Every request and watch asks for a member with a leader (gRPC metadata "hasleader" through
// the gateway): a member cut off from the others answers "no leader" at once and ends its watch,
// and the client moves on to the next endpoint (a read-only call is retried there once). A
// read-only call answered "leader changed" (an election ended it) is sent again once, to the
// next endpoint.
//
// Errors: every transport failure, timeout or non-200 answer is UNAVAILABLE (the caller must
// treat the outcome of a write as unknown); gRPC code 3 (bad request) is INTERNAL; gRPC code 5
// (NOT_FOUND, e.g. a put bound to a lease that no longer exists) is NOT_FOUND: refused, not
// applied.
#pragma once

#include <nlohmann/json.hpp>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "store/etcd_transport.h"

namespace lm::store {

// Standard base64 with padding (OpenSSL's EVP codec), as the gateway carries keys and values.
// Decode: INVALID_ARGUMENT for a byte outside the alphabet; stops at the first '='.
std::string Base64Encode(std::string_view in);
StatusOr<std::string> Base64Decode(std::string_view in);
// The gateway writes int64 fields as JSON strings and omits zero values.
int64_t JsonInt(const nlohmann::json& j, const char* field);
// The key just past every key with this prefix (etcd's range_end for a prefix).
std::string PrefixEnd(std::string prefix);

class EtcdClient {
 public:
  using JsonDone = std::function<void(StatusOr<nlohmann::json>)>;
  using EventFn = std::function<void(const nlohmann::json& result)>;
  using ClosedFn = std::function<void(Status why)>;

  static StatusOr<std::unique_ptr<EtcdClient>> Create(boost::asio::io_context& io,
                                                      EtcdClientOptions options);
  ~EtcdClient();

  // One unary call; `done` runs exactly once (UNAVAILABLE after Shutdown). An endpoint that
  // cannot be connected to is skipped for the next one, up to every endpoint once, for any
  // call (nothing was sent). A call that failed after it was sent moves later calls to the
  // next endpoint; `idempotent` calls are retried there once. So does a call answered late
  // (EtcdAnsweredLate: half the timeout or more), though it is not retried.
  void Call(std::string path, nlohmann::json body, JsonDone done, bool idempotent = false);

  // Opens a watch stream (POST /v3/watch with `create_request`) on the first endpoint, from the
  // current one on, that accepts the connection. `on_result` gets every
  // streamed "result" object; `on_closed` runs once when the stream ends for any reason or
  // CancelWatch() is called. One watch at a time.
  void Watch(nlohmann::json create_request, EventFn on_result, ClosedFn on_closed);
  void CancelWatch();

  // Fails every call in flight and closes all connections. Idempotent.
  void Shutdown();

  const std::string& current_endpoint() const;
  // Connections Shutdown() would close (in flight or kept alive): bounded by the calls in
  // flight, however many calls a kept-alive connection served.
  size_t tracked_connections() const { return busy_.size(); }

 private:
  using Conn = EtcdConn;
  struct WatchStream;
  EtcdClient(boost::asio::io_context& io, EtcdClientOptions options,
             std::vector<EtcdEndpoint> endpoints, std::unique_ptr<EtcdTls> tls);
  void Send(std::shared_ptr<Conn> conn, std::string path, std::string body, JsonDone done,
            bool retry_left, bool idempotent);
  void Connect(size_t endpoint, std::function<void(StatusOr<std::shared_ptr<Conn>>)> done);
  // Connect() to the current endpoint, moving on to the next after a failure, `tries` in all.
  void ConnectAny(size_t tries, std::function<void(StatusOr<std::shared_ptr<Conn>>)> done);
  void Failed(size_t endpoint);
  // Remembers `conn` for Shutdown(), once, and forgets connections that are gone.
  void Track(const std::shared_ptr<Conn>& conn);
  // The member answered "no leader" (cut off from the others): moves on to the next endpoint;
  // with `retry`, sends the call there once, else fails it with `error`.
  void LeaderLost(size_t endpoint, std::string path, std::string body, JsonDone done, bool retry,
                  Status error);

  boost::asio::io_context& io_;
  EtcdClientOptions options_;
  std::vector<EtcdEndpoint> endpoints_;
  std::unique_ptr<EtcdTls> tls_;  // set for https:// endpoints
  size_t current_ = 0;
  std::deque<std::shared_ptr<Conn>> idle_;
  std::vector<std::weak_ptr<Conn>> busy_;  // each connection once (Track())
  std::shared_ptr<WatchStream> watch_;
  bool stopped_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lm::store
