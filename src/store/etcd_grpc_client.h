// EtcdGrpcClient: a small asynchronous gRPC client for etcd's v3 API (unary calls and one watch
// stream) over HTTP/2 (libnghttp2 for the framing and HPACK; plain h2c with prior knowledge, or
// TLS with ALPN "h2"), on the caller's io_context. It moves bytes: the protobuf messages are
// built and read by etcd_proto.h, and EtcdGrpcApi (etcd_grpc_api.h) puts the two together.
// Not thread-safe: call it, and receive its callbacks, on that io_context's thread. Every
// callback runs exactly once, never inside the call that was given it.
//
//   auto etcd = EtcdGrpcClient::Create(io, {.endpoints = {"http://127.0.0.1:2379"}});
//   (*etcd)->Call("/etcdserverpb.KV/Range", proto::EncodeRange(req),
//                 [](StatusOr<std::string> answer) { ... proto::DecodeRange(*answer) ... });
//
// Why gRPC and not etcd's JSON gateway (EtcdClient): the gateway is a gRPC client inside etcd
// that calls etcd's own gRPC server over loopback, with JSON marshalling on both sides. Measured
// on etcd 3.4 (2026-12-07), a txn cost etcd 0.9-1.3 ms of CPU through the gateway and 0.4 ms
// over gRPC, and etcd's CPU is what limits tokenmgr's lock rate (docs/benchmarks.md).
//
// Connections: unary calls share one HTTP/2 connection to the current endpoint (multiplexed);
// the watch has a connection of its own. Endpoints, failover and errors follow EtcdClient:
// - An endpoint that cannot be connected to is skipped for the next one, up to every endpoint
//   once, for any call (nothing was sent). A stream the server refused unprocessed (GOAWAY,
//   REFUSED_STREAM) is sent again once, for any call.
// - A call that failed after it was sent (connection lost, no answer within `timeout`) moves
//   later calls to the next endpoint, over a new connection; `idempotent` calls are retried
//   there once. Other calls in flight on the old connection keep their own deadlines (one held
//   up by a network cut still lands when it heals).
// - A call answered late (half the timeout or more: EtcdAnsweredLate) moves later calls to the
//   next endpoint too: a member behind a link that flaps answers every call, late.
// - Every request and the watch carry the gRPC metadata "hasleader": a member cut off from the
//   others answers "no leader" at once (and ends its watch); later calls go to the next endpoint
//   and an idempotent call is sent there once. A read answered "leader changed" is sent again
//   once to the next endpoint.
// - gRPC status codes map through EtcdErrorStatus() (etcd_transport.h): 3 INTERNAL, 5
//   NOT_FOUND, the space alarm and everything else UNAVAILABLE.
// Answers are bounded at 64 MiB per message; a bigger one fails the call (UNAVAILABLE).
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "store/etcd_transport.h"

namespace lm::store {

class EtcdGrpcClient {
 public:
  using BytesDone = std::function<void(StatusOr<std::string>)>;
  using MessageFn = std::function<void(std::string_view message)>;
  using ClosedFn = std::function<void(Status why)>;

  static constexpr size_t kMaxMessageBytes = 64u << 20;

  // INVALID_ARGUMENT for bad endpoints or TLS files (as EtcdClient::Create).
  static StatusOr<std::unique_ptr<EtcdGrpcClient>> Create(boost::asio::io_context& io,
                                                          EtcdClientOptions options);
  ~EtcdGrpcClient();

  // One unary call of `method` (e.g. "/etcdserverpb.KV/Txn") with the serialized `request`;
  // `done` gets the serialized answer. Also serves a bidi method used for one message each
  // way (LeaseKeepAlive): the request half-closes the stream and the first answer is kept.
  void Call(std::string method, std::string request, BytesDone done, bool idempotent = false);
  // The same call on a new connection of its own to the current endpoint, closed once the call
  // ends; sent once (no retry), and a failure moves later calls on as for Call(). For a call
  // that must not queue behind calls stuck on the shared connection: after a network cut heals,
  // those stay in the kernel's retransmit queue until its backoff timer fires (0.4 s, 0.8 s,
  // 1.6 s ... after the cut began), while a new connection's handshake goes through at once.
  void CallApart(std::string method, std::string request, BytesDone done);

  // Opens "/etcdserverpb.Watch/Watch" with `request` (a WatchRequest) on a connection of its
  // own, on the first endpoint from the current one on that accepts it. `on_message` gets every
  // WatchResponse; `on_closed` runs once when the stream ends for any reason other than
  // CancelWatch() (an error, or UNAVAILABLE when etcd ended it). The first answer must come
  // within `timeout`; after that the stream may stay silent for ever. One watch at a time.
  void Watch(std::string request, MessageFn on_message, ClosedFn on_closed);
  void CancelWatch();

  // Fails every call in flight (UNAVAILABLE) and closes every connection. Idempotent.
  void Shutdown();

  const std::string& current_endpoint() const;

  // Tests: new connections start at this stream id (odd, >= 1), to reach the last one quickly.
  void set_first_stream_id_for_test(int32_t id) { first_stream_id_ = id; }

  class Http2;  // one HTTP/2 connection (etcd_grpc_client.cc)
  struct Stream;

 private:
  struct Slot;
  struct WatchState;
  using ConnDone = std::function<void(StatusOr<std::shared_ptr<Http2>>)>;
  EtcdGrpcClient(boost::asio::io_context& io, EtcdClientOptions options, EtcdTargets targets);
  void Send(std::string method, std::shared_ptr<std::string> body, BytesDone done,
            bool retry_left, bool idempotent);
  // The shared connection to the current endpoint, connecting (and moving on to the next
  // endpoint after a failure, `tries` in all) when there is none.
  void Shared(size_t tries, ConnDone done);
  // A new connection to the current endpoint, moving on like Shared().
  void Dial(size_t tries, ConnDone done);
  void Failed(size_t endpoint);
  // A call to `endpoint` sent at `sent` was answered: answered late (EtcdAnsweredLate), later
  // calls go to the next endpoint.
  void AnsweredAfter(size_t endpoint, std::chrono::steady_clock::time_point sent);
  void Post(std::function<void()> f);

  boost::asio::io_context& io_;
  EtcdClientOptions options_;
  std::vector<EtcdEndpoint> endpoints_;
  std::unique_ptr<EtcdTls> tls_;
  size_t current_ = 0;
  std::vector<std::unique_ptr<Slot>> slots_;  // per endpoint
  std::vector<std::weak_ptr<EtcdConn>> dialling_;
  std::vector<std::weak_ptr<Http2>> apart_;  // CallApart's connections, closed by Shutdown
  std::shared_ptr<WatchState> watch_;
  int32_t first_stream_id_ = 1;
  bool stopped_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace lm::store
