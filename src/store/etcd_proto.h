// etcd's v3 gRPC messages in protobuf wire format, by hand: the requests EtcdGrpcApi sends
// (etcdserverpb.*Request) and the answers it reads (*Response), for the few fields tokenmgr
// uses. No protobuf library and no generated code: etcd 3.4's rpc.proto and kv.proto field
// numbers are written out in etcd_proto.cc. Thread-compatible (pure functions).
//
//   std::string body = proto::EncodeTxn(txn);                 // a TxnRequest
//   StatusOr<TxnResponse> r = proto::DecodeTxn(answer_bytes);  // INVALID_ARGUMENT if malformed
//
// Decoding trusts nothing: truncated varints or lengths, wrong wire types, over-long varints,
// nesting deeper than kMaxTxnDepth and unknown fields are handled without reading past the
// input (unknown fields of any valid wire type are skipped, as protobuf does). Nothing throws.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "store/etcd_api.h"

namespace lm::store::proto {

// Nested txns deeper than this are refused by etcd itself (its --max-txn-ops counts ops, not
// depth; tokenmgr nests one level). Decoding refuses deeper answers.
inline constexpr int kMaxTxnDepth = 8;

// Requests. Oneof fields (a compare's revision or value) are always written, zero included.
std::string EncodeRange(const RangeRequest& request);           // RangeRequest
std::string EncodeTxn(const Txn& txn);                          // TxnRequest
std::string EncodeDeleteRange(std::string_view key);            // DeleteRangeRequest, one key
std::string EncodeLeaseGrant(int64_t ttl_s);                    // LeaseGrantRequest
std::string EncodeLeaseKeepAlive(int64_t id);                   // LeaseKeepAliveRequest
std::string EncodeLeaseRevoke(int64_t id);                      // LeaseRevokeRequest
std::string EncodeWatchCreate(const WatchRequest& request);     // WatchRequest{create_request}
std::string EncodeCompaction(int64_t revision);                 // CompactionRequest
std::string EncodeStatus();                                     // StatusRequest (empty)

// Answers. INVALID_ARGUMENT naming the message and field when the bytes are not a valid
// encoding of it. The header's revision fills `revision`. Protobuf's rules hold: no bytes at all
// is the all-default message (revision 0), a scalar seen twice keeps the last, a message seen
// twice is merged. Each element of a repeated field costs at least two input bytes, so memory
// stays within a constant factor of the input.
StatusOr<RangeResponse> DecodeRange(std::string_view bytes);
StatusOr<TxnResponse> DecodeTxn(std::string_view bytes);
// A LeaseGrantResponse whose `error` field is set is INTERNAL with that text.
StatusOr<LeaseGrantResponse> DecodeLeaseGrant(std::string_view bytes);
// LeaseKeepAliveResponse: the TTL (0 when the lease is gone).
StatusOr<int64_t> DecodeLeaseKeepAlive(std::string_view bytes);
// A watch canceled for compaction without a reason (etcd 3.4) gets one naming compact_revision.
StatusOr<WatchResponse> DecodeWatch(std::string_view bytes);
// StatusResponse: header revision, dbSize, dbSizeInUse, and the alarm names from `errors`
// (e.g. "memberID:1 alarm:NOSPACE " -> "NOSPACE"; AlarmsFromStatus's rule, one home).
StatusOr<EtcdStatusResponse> DecodeStatus(std::string_view bytes);

}  // namespace lm::store::proto
