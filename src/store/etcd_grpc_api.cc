#include "store/etcd_grpc_api.h"

#include "store/etcd_proto.h"

namespace lm::store {

namespace {

// `done` with what `decode` reads from the answer; an answer it cannot read is UNAVAILABLE.
template <typename T, typename Decode>
EtcdGrpcClient::BytesDone Decoded(EtcdApi::Done<T> done, Decode decode) {
  return [done = std::move(done), decode](StatusOr<std::string> r) {
    if (!r.ok()) return done(r.status());
    StatusOr<T> v = decode(*r);
    if (!v.ok()) return done(Unavailable("etcd answer not understood: " + v.status().message()));
    done(std::move(*v));
  };
}

EtcdGrpcClient::BytesDone StatusOfAnswer(EtcdApi::StatusDone done) {
  return [done = std::move(done)](StatusOr<std::string> r) {
    if (done) done(r.status());
  };
}

// A Range or Txn answer from etcd always carries the store's revision (at least 1); an empty
// message decodes as all defaults (protobuf), which would read as "no keys" or "compare
// failed". Such an answer is refused instead.
template <typename T>
StatusOr<T> WithRevision(StatusOr<T> r) {
  if (r.ok() && r->revision <= 0) return InvalidArgument("no store revision in the answer");
  return r;
}

}  // namespace

void EtcdGrpcApi::Range(RangeRequest request, Done<RangeResponse> done) {
  client_->Call(
      "/etcdserverpb.KV/Range", proto::EncodeRange(request),
      Decoded(std::move(done),
              [](std::string_view b) { return WithRevision(proto::DecodeRange(b)); }),
      /*idempotent=*/true);
}

void EtcdGrpcApi::DoTxn(Txn txn, Done<TxnResponse> done) {
  client_->Call(
      "/etcdserverpb.KV/Txn", proto::EncodeTxn(txn),
      Decoded(std::move(done),
              [](std::string_view b) { return WithRevision(proto::DecodeTxn(b)); }));
}

void EtcdGrpcApi::DoTxnApart(Txn txn, Done<TxnResponse> done) {
  client_->CallApart(
      "/etcdserverpb.KV/Txn", proto::EncodeTxn(txn),
      Decoded(std::move(done),
              [](std::string_view b) { return WithRevision(proto::DecodeTxn(b)); }));
}

void EtcdGrpcApi::DeleteKey(std::string key, StatusDone done) {
  client_->Call("/etcdserverpb.KV/DeleteRange", proto::EncodeDeleteRange(key),
                StatusOfAnswer(std::move(done)));
}

void EtcdGrpcApi::LeaseGrant(int64_t ttl_s, Done<LeaseGrantResponse> done) {
  client_->Call("/etcdserverpb.Lease/LeaseGrant", proto::EncodeLeaseGrant(ttl_s),
                Decoded(std::move(done), proto::DecodeLeaseGrant));
}

void EtcdGrpcApi::LeaseKeepAlive(int64_t id, Done<int64_t> done) {
  // A bidi stream in etcd's API, used here for one request and its answer.
  client_->Call("/etcdserverpb.Lease/LeaseKeepAlive", proto::EncodeLeaseKeepAlive(id),
                Decoded(std::move(done), proto::DecodeLeaseKeepAlive), /*idempotent=*/true);
}

void EtcdGrpcApi::LeaseRevoke(int64_t id, StatusDone done, bool retry) {
  client_->Call("/etcdserverpb.Lease/LeaseRevoke", proto::EncodeLeaseRevoke(id),
                StatusOfAnswer(std::move(done)), retry);
}

void EtcdGrpcApi::Watch(WatchRequest request,
                        std::function<void(const WatchResponse&)> on_response,
                        StatusDone on_closed) {
  auto closed = std::make_shared<StatusDone>(std::move(on_closed));
  client_->Watch(
      proto::EncodeWatchCreate(request),
      [this, closed, on_response = std::move(on_response)](std::string_view message) {
        StatusOr<WatchResponse> w = proto::DecodeWatch(message);
        if (w.ok()) return on_response(*w);
        // Ends the stream (the caller reads the store again and watches anew).
        StatusDone f = std::move(*closed);
        *closed = nullptr;
        client_->CancelWatch();
        if (f) f(Internal("etcd watch event not understood: " + w.status().message()));
      },
      [closed](Status why) {
        StatusDone f = std::move(*closed);
        *closed = nullptr;
        if (f) f(std::move(why));
      });
}

void EtcdGrpcApi::Compact(int64_t revision, StatusDone done) {
  client_->Call("/etcdserverpb.KV/Compact", proto::EncodeCompaction(revision),
                StatusOfAnswer(std::move(done)), /*idempotent=*/true);
}

void EtcdGrpcApi::MemberStatus(Done<EtcdStatusResponse> done) {
  client_->Call("/etcdserverpb.Maintenance/Status", proto::EncodeStatus(),
                Decoded(std::move(done), proto::DecodeStatus), /*idempotent=*/true);
}

}  // namespace lm::store
