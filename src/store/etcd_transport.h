// What both etcd clients share (EtcdClient over the JSON gateway, EtcdGrpcClient over gRPC):
// endpoint URLs, the TLS context, connecting (TCP, then the TLS handshake with host
// verification), and the one mapping from etcd's gRPC error codes and texts to our Status codes.
// Not thread-safe: one io_context thread, like the clients.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace lm::store {

struct EtcdEndpoint {
  std::string host;
  std::string port;
  bool tls = false;
};
// "http://host:port" or "https://host:port" (no scheme: http) -> endpoint.
StatusOr<EtcdEndpoint> ParseEtcdEndpoint(const std::string& url);

// PEM files for TLS to etcd; empty = unset.
struct EtcdTlsFiles {
  std::string ca_file;    // CAs that sign etcd's server certificate (empty: system CAs)
  std::string cert_file;  // client certificate (with its chain), for --client-cert-auth
  std::string key_file;   // its private key
};

// How tokenmgr talks to etcd: gRPC over HTTP/2 (EtcdGrpcClient, the default) or etcd's JSON
// gateway over HTTP/1.1 (EtcdClient; for a proxy in between that passes only HTTP/1.1).
enum class EtcdProtocol { kGrpc, kJson };

struct EtcdClientOptions {
  std::vector<std::string> endpoints;  // http(s)://host:port, tried in order; one scheme for all
  std::chrono::milliseconds timeout{2000};
  size_t max_idle_connections = 8;  // kJson: kept-alive connections (kGrpc multiplexes one)
  EtcdTlsFiles tls;                 // only with https:// endpoints
  EtcdProtocol protocol = EtcdProtocol::kGrpc;
};

// The TLS context for https:// endpoints: peer verification against `files.ca_file` (or the
// system CAs), TLS 1.2 or newer, the client certificate if given, and with `http2` the ALPN
// protocol "h2" (etcd serves gRPC over TLS only to clients that offer it).
struct EtcdTls {
  boost::asio::ssl::context ctx{boost::asio::ssl::context::tls_client};
};
StatusOr<std::unique_ptr<EtcdTls>> LoadEtcdTls(const EtcdTlsFiles& files, bool http2);

// Parses every URL (one scheme for all) and loads the TLS files for https:// ones; refuses TLS
// files with http:// endpoints.
struct EtcdTargets {
  std::vector<EtcdEndpoint> endpoints;
  std::unique_ptr<EtcdTls> tls;  // set for https:// endpoints
};
StatusOr<EtcdTargets> ParseEtcdTargets(const std::vector<std::string>& urls,
                                       const EtcdTlsFiles& files, bool http2);

// One connection to one endpoint, plain or TLS. `With(f)` calls f with the stream to read and
// write (so one code path serves both); `tcp()` is the socket underneath, for timeouts and close.
struct EtcdConn {
  using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;
  EtcdConn(boost::asio::io_context& io, size_t ep, EtcdTls* tls) : endpoint(ep) {
    if (tls)
      secure.emplace(io, tls->ctx);
    else
      plain.emplace(io);
  }
  boost::beast::tcp_stream& tcp() { return secure ? secure->next_layer() : *plain; }
  template <class F>
  void With(F&& f) {
    if (secure)
      f(*secure);
    else
      f(*plain);
  }
  void Close() {
    boost::beast::error_code ignored;
    tcp().socket().close(ignored);
  }
  std::optional<boost::beast::tcp_stream> plain;
  std::optional<TlsStream> secure;
  boost::beast::flat_buffer buffer;
  size_t endpoint;
};

// Resolves, connects (TCP_NODELAY) and, for TLS, handshakes `conn` to `ep` (named `name` in
// errors), all within `timeout` (the stream's expiry, left set: the caller resets it).
// `done` gets `conn` or UNAVAILABLE naming the step.
void ConnectEtcd(boost::asio::io_context& io, std::shared_ptr<EtcdConn> conn,
                 const EtcdEndpoint& ep, std::string name, std::chrono::milliseconds timeout,
                 std::function<void(StatusOr<std::shared_ptr<EtcdConn>>)> done);

// UNAVAILABLE "etcd <endpoint>: <what>: <error>" (with a hint for TLS errors).
Status EtcdTransportError(const std::string& endpoint, const std::string& what,
                          const boost::beast::error_code& ec);

// etcd refused a request with gRPC status `code` and `message` (`answer` says how, e.g.
// "answered 400"): code 3 (our request was malformed) is INTERNAL, code 5 (e.g. a put on a
// lease that is gone: refused, not applied) NOT_FOUND, the space quota alarm UNAVAILABLE with
// EtcdMaintenance::kNoSpaceMessage, anything else UNAVAILABLE (the outcome of a write unknown).
Status EtcdErrorStatus(const std::string& endpoint, const std::string& answer, int code,
                       std::string_view message);

// A member cut off from the others answers "etcdserver: no leader" (with the "hasleader"
// metadata, which both clients send on every request and watch).
bool EtcdNoLeader(std::string_view message);
// An election ended the request in flight; the member itself works (it has a new leader).
bool EtcdLeaderChanged(std::string_view message);
// Whether a call answered `took` after it was sent moves later calls to the next of
// `endpoints`: half its `timeout` or more went through a member or a path that stalls (a link
// that flaps: each cut shorter than the timeout, so no call fails, but every call sent in one
// waits for the heal and TCP's retransmission; or a member between leaders). Both clients then
// move on as after a failure, though this call was answered. With one endpoint, never.
inline bool EtcdAnsweredLate(std::chrono::steady_clock::duration took,
                             std::chrono::milliseconds timeout, size_t endpoints) {
  return endpoints > 1 && took >= timeout / 2;
}

}  // namespace lm::store
