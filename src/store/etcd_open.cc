#include "store/etcd_open.h"

#include "store/etcd_client.h"
#include "store/etcd_gateway_api.h"
#include "store/etcd_grpc_api.h"

namespace lm::store {

StatusOr<std::unique_ptr<EtcdApi>> OpenEtcdApi(boost::asio::io_context& io,
                                               EtcdClientOptions options) {
  if (options.protocol == EtcdProtocol::kJson) {
    auto client = EtcdClient::Create(io, std::move(options));
    if (!client.ok()) return client.status();
    return std::unique_ptr<EtcdApi>(std::make_unique<EtcdGatewayApi>(std::move(*client)));
  }
  auto client = EtcdGrpcClient::Create(io, std::move(options));
  if (!client.ok()) return client.status();
  return std::unique_ptr<EtcdApi>(std::make_unique<EtcdGrpcApi>(std::move(*client)));
}

}  // namespace lm::store
