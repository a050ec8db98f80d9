// OpenEtcdApi: the one place that picks how tokenmgr talks to etcd (options.protocol): gRPC
// (EtcdGrpcApi, the default) or the JSON gateway (EtcdGatewayApi). INVALID_ARGUMENT for bad
// endpoints or TLS files, before any connection is made.
#pragma once

#include <boost/asio/io_context.hpp>
#include <memory>

#include "common/status.h"
#include "store/etcd_api.h"
#include "store/etcd_transport.h"

namespace lm::store {

StatusOr<std::unique_ptr<EtcdApi>> OpenEtcdApi(boost::asio::io_context& io,
                                               EtcdClientOptions options);

}  // namespace lm::store
