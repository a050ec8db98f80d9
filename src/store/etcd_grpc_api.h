// EtcdGrpcApi: EtcdApi over EtcdGrpcClient, i.e. etcd's gRPC API (protobuf messages built and
// read by etcd_proto.h). Not thread-safe: one io_context thread, like the client.
//
//   auto client = EtcdGrpcClient::Create(io, {.endpoints = {"http://127.0.0.1:2379"}});
//   EtcdGrpcApi api(std::move(*client));
//   api.Range({.key = "/tokenmgr/", .range_end = PrefixEnd("/tokenmgr/")}, ...);
//
// An answer that is not a valid encoding of its message fails the call UNAVAILABLE (for a
// write: applied or not, unknown), and ends a watch INTERNAL.
#pragma once

#include <memory>
#include <string>

#include "store/etcd_api.h"
#include "store/etcd_grpc_client.h"

namespace lm::store {

class EtcdGrpcApi final : public EtcdApi {
 public:
  explicit EtcdGrpcApi(std::unique_ptr<EtcdGrpcClient> client) : client_(std::move(client)) {}

  void Range(RangeRequest request, Done<RangeResponse> done) override;
  void DoTxn(Txn txn, Done<TxnResponse> done) override;
  void DoTxnApart(Txn txn, Done<TxnResponse> done) override;
  void DeleteKey(std::string key, StatusDone done) override;
  void LeaseGrant(int64_t ttl_s, Done<LeaseGrantResponse> done) override;
  void LeaseKeepAlive(int64_t id, Done<int64_t> done) override;
  void LeaseRevoke(int64_t id, StatusDone done, bool retry = true) override;
  void Watch(WatchRequest request, std::function<void(const WatchResponse&)> on_response,
             StatusDone on_closed) override;
  void CancelWatch() override { client_->CancelWatch(); }
  void Compact(int64_t revision, StatusDone done) override;
  void MemberStatus(Done<EtcdStatusResponse> done) override;
  void Shutdown() override { client_->Shutdown(); }
  std::string current_endpoint() const override { return client_->current_endpoint(); }

 private:
  std::unique_ptr<EtcdGrpcClient> client_;
};

}  // namespace lm::store
