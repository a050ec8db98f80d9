// EtcdGatewayApi: EtcdApi over EtcdClient, i.e. etcd's JSON gateway (base64 keys and values,
// int64 fields as strings). Not thread-safe: one io_context thread, like EtcdClient.
//
//   auto client = EtcdClient::Create(io, {.endpoints = {"http://127.0.0.1:2379"}});
//   EtcdGatewayApi api(std::move(*client));
//   api.Range({.key = "/tokenmgr/", .range_end = PrefixEnd("/tokenmgr/")}, ...);
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "store/etcd_api.h"
#include "store/etcd_client.h"

namespace lm::store {

// The alarm names in a /v3/maintenance/status answer ("errors": ["memberID:1 alarm:NOSPACE "]),
// e.g. {"NOSPACE"}. etcd 3.4 and newer list active alarms there.
std::set<std::string> AlarmsFromStatus(const nlohmann::json& status);

// The gateway's JSON for a txn, and a txn answer read back (exposed for tests).
nlohmann::json TxnJson(const Txn& txn);
TxnResponse ParseTxnResponse(const nlohmann::json& r);

class EtcdGatewayApi final : public EtcdApi {
 public:
  explicit EtcdGatewayApi(std::unique_ptr<EtcdClient> client) : client_(std::move(client)) {}

  void Range(RangeRequest request, Done<RangeResponse> done) override;
  void DoTxn(Txn txn, Done<TxnResponse> done) override;
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
  std::unique_ptr<EtcdClient> client_;
};

}  // namespace lm::store
