#include "store/etcd_proto.h"

#include <optional>
#include <span>
#include <utility>

#include "store/etcd_record.h"

namespace lm::store::proto {
namespace {

// ---------------------------------------------------------------------------------------------
// Field numbers: etcd 3.4 api/etcdserverpb/rpc.proto and api/mvccpb/kv.proto.

enum WireType : int { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

namespace range_request {  // RangeRequest
constexpr int kKey = 1, kRangeEnd = 2, kCountOnly = 9;
}
namespace put_request {  // PutRequest
constexpr int kKey = 1, kValue = 2, kLease = 3;
}
namespace delete_range_request {  // DeleteRangeRequest
constexpr int kKey = 1, kRangeEnd = 2;
}
namespace request_op {  // RequestOp, oneof request
constexpr int kRange = 1, kPut = 2, kDeleteRange = 3, kTxn = 4;
}
namespace compare {  // Compare
constexpr int kResult = 1, kTarget = 2, kKey = 3, kCreateRevision = 5, kModRevision = 6, kValue = 7,
              kRangeEnd = 64;
}
namespace txn_request {  // TxnRequest
constexpr int kCompare = 1, kSuccess = 2, kFailure = 3;
}
namespace watch_request {  // WatchRequest, oneof request_union; WatchCreateRequest
constexpr int kCreateRequest = 1;
constexpr int kKey = 1, kRangeEnd = 2, kStartRevision = 3;
}  // namespace watch_request

// ---------------------------------------------------------------------------------------------
// Encoding. proto3: a scalar equal to its default (0, "") is omitted unless it is a oneof member,
// which is always written so that the member is set. Fields go in field-number order, as
// protobuf's own serializers write them.

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutTag(std::string* out, int field, WireType type) {
  PutVarint(out, static_cast<uint64_t>(field) << 3 | type);
}

// int64, uint64, bool and enum fields alike; a negative int64 takes ten bytes.
void PutInt(std::string* out, int field, int64_t v, bool always = false) {
  if (v == 0 && !always) return;
  PutTag(out, field, kVarint);
  PutVarint(out, static_cast<uint64_t>(v));
}

// bytes, string and embedded-message fields.
void PutBytes(std::string* out, int field, std::string_view v, bool always = false) {
  if (v.empty() && !always) return;
  PutTag(out, field, kLen);
  PutVarint(out, v.size());
  out->append(v);
}

// An embedded message is present even when empty (e.g. a RequestOp's request_range).
void PutMessage(std::string* out, int field, std::string_view message) {
  PutBytes(out, field, message, /*always=*/true);
}

int ResultNumber(CompareResult r) {
  switch (r) {
    case CompareResult::kEqual:
      return 0;
    case CompareResult::kGreater:
      return 1;
    case CompareResult::kLess:
      return 2;
    case CompareResult::kNotEqual:
      return 3;
  }
  return 0;
}

std::string CompareBytes(const Compare& c) {
  std::string out;
  PutInt(&out, compare::kResult, ResultNumber(c.result));
  switch (c.target) {  // Compare.target: VERSION=0 CREATE=1 MOD=2 VALUE=3 LEASE=4
    case CompareTarget::kCreate:
      PutInt(&out, compare::kTarget, 1);
      PutBytes(&out, compare::kKey, c.key);
      PutInt(&out, compare::kCreateRevision, c.revision, /*always=*/true);
      break;
    case CompareTarget::kMod:
      PutInt(&out, compare::kTarget, 2);
      PutBytes(&out, compare::kKey, c.key);
      PutInt(&out, compare::kModRevision, c.revision, /*always=*/true);
      break;
    case CompareTarget::kValue:
      PutInt(&out, compare::kTarget, 3);
      PutBytes(&out, compare::kKey, c.key);
      PutBytes(&out, compare::kValue, c.value, /*always=*/true);
      break;
  }
  PutBytes(&out, compare::kRangeEnd, c.range_end);
  return out;
}

std::string RangeBytes(std::string_view key, std::string_view range_end, bool count_only) {
  std::string out;
  PutBytes(&out, range_request::kKey, key);
  PutBytes(&out, range_request::kRangeEnd, range_end);
  PutInt(&out, range_request::kCountOnly, count_only ? 1 : 0);
  return out;
}

std::string DeleteRangeBytes(std::string_view key, std::string_view range_end) {
  std::string out;
  PutBytes(&out, delete_range_request::kKey, key);
  PutBytes(&out, delete_range_request::kRangeEnd, range_end);
  return out;
}

std::string RequestOpBytes(const Op& op) {
  std::string out;
  switch (op.kind) {
    case Op::Kind::kPut: {
      std::string put;
      PutBytes(&put, put_request::kKey, op.key);
      PutBytes(&put, put_request::kValue, op.value);
      PutInt(&put, put_request::kLease, op.lease);
      PutMessage(&out, request_op::kPut, put);
      break;
    }
    case Op::Kind::kDelete:
      PutMessage(&out, request_op::kDeleteRange, DeleteRangeBytes(op.key, op.range_end));
      break;
    case Op::Kind::kRange:
      PutMessage(&out, request_op::kRange, RangeBytes(op.key, op.range_end, false));
      break;
    case Op::Kind::kTxn:
      PutMessage(&out, request_op::kTxn, op.txn ? EncodeTxn(*op.txn) : std::string());
      break;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding: a reader that never reads past its input, and one loop that walks a message's
// fields, checks the wire type of the known ones and skips the others.

// The largest field number protobuf allows (2^29 - 1).
constexpr uint64_t kMaxFieldNumber = (uint64_t{1} << 29) - 1;

struct Field {
  int number = 0;
  uint64_t varint = 0;     // kVarint
  std::string_view bytes;  // kLen
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool AtEnd() const { return pos_ == in_.size(); }

  Status Varint(uint64_t* v) {
    uint64_t result = 0;
    for (int i = 0; i < 10; ++i) {
      if (pos_ == in_.size()) return InvalidArgument("truncated varint");
      uint8_t b = static_cast<uint8_t>(in_[pos_++]);
      if (i == 9 && b >= 0x80) return InvalidArgument("varint longer than 10 bytes");
      if (i == 9 && b > 1) return InvalidArgument("varint overflows 64 bits");
      result |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
      if (b < 0x80) break;
    }
    *v = result;
    return Status::Ok();
  }

  Status Skip(uint64_t n) {
    if (n > in_.size() - pos_) {
      return InvalidArgument("length " + std::to_string(n) + " past the end (" +
                             std::to_string(in_.size() - pos_) + " bytes left)");
    }
    pos_ += n;
    return Status::Ok();
  }

  // The value of a field of wire type `type` into `f`.
  Status Value(int type, Field* f) {
    switch (type) {
      case kVarint:
        return Varint(&f->varint);
      case kFixed64:
        return Skip(8);
      case kFixed32:
        return Skip(4);
      case kLen: {
        uint64_t n = 0;
        LM_RETURN_IF_ERROR(Varint(&n));
        size_t start = pos_;
        LM_RETURN_IF_ERROR(Skip(n));
        f->bytes = in_.substr(start, n);
        return Status::Ok();
      }
      case 3:
      case 4:
        return InvalidArgument("group wire type " + std::to_string(type) + " (not proto3)");
      default:
        return InvalidArgument("invalid wire type " + std::to_string(type));
    }
  }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

// A field a decoder reads, with the wire type its declaration implies.
struct FieldSpec {
  int number;
  const char* name;
  WireType type;
};

Status Prefixed(const std::string& where, const Status& s) {
  return InvalidArgument(where + ": " + s.message());
}

// Walks the fields of `message` (named `name` in errors), calling `on_field(field)` for each
// field listed in `specs` and skipping the rest. INVALID_ARGUMENT "Name.field: why".
template <typename OnField>
Status ParseMessage(std::string_view message, const char* name, std::span<const FieldSpec> specs,
                    OnField&& on_field) {
  Reader r(message);
  while (!r.AtEnd()) {
    uint64_t tag = 0;
    if (Status s = r.Varint(&tag); !s.ok()) return Prefixed(std::string(name) + " tag", s);
    uint64_t number = tag >> 3;
    int type = static_cast<int>(tag & 7);
    if (number == 0 || number > kMaxFieldNumber) {
      return InvalidArgument(std::string(name) + ": field number " + std::to_string(number) +
                             " out of range");
    }
    const FieldSpec* spec = nullptr;
    for (const FieldSpec& s : specs) {
      if (static_cast<uint64_t>(s.number) == number) spec = &s;
    }
    auto where = [&] {  // only on error: no string work per field
      return std::string(name) +
             (spec ? std::string(".") + spec->name : " field " + std::to_string(number));
    };
    if (spec && type != spec->type) {
      return InvalidArgument(where() + ": wire type " + std::to_string(type) + ", want " +
                             std::to_string(spec->type));
    }
    Field f;
    f.number = static_cast<int>(number);
    if (Status s = r.Value(type, &f); !s.ok()) return Prefixed(where(), s);
    if (!spec) continue;
    if (Status s = on_field(f); !s.ok()) return Prefixed(where(), s);
  }
  return Status::Ok();
}

// A message whose fields are all unknown to us: checked for well-formedness only.
Status CheckMessage(std::string_view message, const char* name) {
  return ParseMessage(message, name, {}, [](const Field&) { return Status::Ok(); });
}

// ResponseHeader: merged into `revision`.
Status MergeHeader(std::string_view b, int64_t* revision) {
  static constexpr FieldSpec kSpecs[] = {{1, "cluster_id", kVarint},
                                         {2, "member_id", kVarint},
                                         {3, "revision", kVarint},
                                         {4, "raft_term", kVarint}};
  return ParseMessage(b, "ResponseHeader", kSpecs, [&](const Field& f) {
    if (f.number == 3) *revision = static_cast<int64_t>(f.varint);
    return Status::Ok();
  });
}

Status MergeKeyValue(std::string_view b, KeyValue* kv) {
  static constexpr FieldSpec kSpecs[] = {{1, "key", kLen},
                                         {2, "create_revision", kVarint},
                                         {3, "mod_revision", kVarint},
                                         {4, "version", kVarint},
                                         {5, "value", kLen},
                                         {6, "lease", kVarint}};
  return ParseMessage(b, "KeyValue", kSpecs, [&](const Field& f) {
    int64_t v = static_cast<int64_t>(f.varint);
    switch (f.number) {
      case 1:
        kv->key.assign(f.bytes);
        break;
      case 2:
        kv->create_revision = v;
        break;
      case 3:
        kv->mod_revision = v;
        break;
      case 5:
        kv->value.assign(f.bytes);
        break;
      case 6:
        kv->lease = v;
        break;
    }
    return Status::Ok();
  });
}

// A repeated KeyValue field's next element.
Status AppendKeyValue(std::string_view b, std::vector<KeyValue>* kvs) {
  kvs->emplace_back();
  return MergeKeyValue(b, &kvs->back());
}

Status MergeRange(std::string_view b, RangeResponse* r) {
  static constexpr FieldSpec kSpecs[] = {
      {1, "header", kLen}, {2, "kvs", kLen}, {3, "more", kVarint}, {4, "count", kVarint}};
  return ParseMessage(b, "RangeResponse", kSpecs, [&](const Field& f) {
    switch (f.number) {
      case 1:
        return MergeHeader(f.bytes, &r->revision);
      case 2:
        return AppendKeyValue(f.bytes, &r->kvs);
      case 4:
        r->count = static_cast<int64_t>(f.varint);
        break;
    }
    return Status::Ok();
  });
}

Status MergeTxn(std::string_view b, int depth, int64_t* revision, bool* succeeded,
                std::vector<OpResponse>* responses);

// ResponseOp: one element of TxnResponse.responses. Its oneof member seen again merges into it
// (protobuf's rule for a message field); another member replaces it.
Status ReadResponseOp(std::string_view b, int depth, OpResponse* op) {
  static constexpr FieldSpec kSpecs[] = {{1, "response_range", kLen},
                                         {2, "response_put", kLen},
                                         {3, "response_delete_range", kLen},
                                         {4, "response_txn", kLen}};
  int member = 0;
  return ParseMessage(b, "ResponseOp", kSpecs, [&](const Field& f) {
    if (f.number != member) *op = OpResponse();
    member = f.number;
    switch (f.number) {
      case 1: {
        RangeResponse range;
        range.kvs = std::move(op->kvs);
        Status s = MergeRange(f.bytes, &range);
        op->kvs = std::move(range.kvs);
        return s;
      }
      case 2:
        return CheckMessage(f.bytes, "PutResponse");
      case 3:
        return CheckMessage(f.bytes, "DeleteRangeResponse");
      case 4: {
        if (depth >= kMaxTxnDepth) {
          return InvalidArgument("txns nested deeper than " + std::to_string(kMaxTxnDepth));
        }
        int64_t ignored = 0;
        return MergeTxn(f.bytes, depth + 1, &ignored, &op->succeeded, &op->responses);
      }
    }
    return Status::Ok();
  });
}

// TxnResponse at nesting `depth` (the outermost is 1).
Status MergeTxn(std::string_view b, int depth, int64_t* revision, bool* succeeded,
                std::vector<OpResponse>* responses) {
  static constexpr FieldSpec kSpecs[] = {
      {1, "header", kLen}, {2, "succeeded", kVarint}, {3, "responses", kLen}};
  return ParseMessage(b, "TxnResponse", kSpecs, [&](const Field& f) {
    switch (f.number) {
      case 1:
        return MergeHeader(f.bytes, revision);
      case 2:
        *succeeded = f.varint != 0;
        break;
      case 3:
        responses->emplace_back();
        return ReadResponseOp(f.bytes, depth, &responses->back());
    }
    return Status::Ok();
  });
}

Status MergeEvent(std::string_view b, WatchEvent* e) {
  static constexpr FieldSpec kSpecs[] = {
      {1, "type", kVarint}, {2, "kv", kLen}, {3, "prev_kv", kLen}};
  return ParseMessage(b, "Event", kSpecs, [&](const Field& f) {
    switch (f.number) {
      case 1:
        e->deleted = static_cast<int32_t>(f.varint) == 1;
        break;  // PUT=0 DELETE=1
      case 2:
        return MergeKeyValue(f.bytes, &e->kv);
      case 3: {
        KeyValue prev;  // not used, checked only
        return MergeKeyValue(f.bytes, &prev);
      }
    }
    return Status::Ok();
  });
}

// The answer of a public Decode*: INVALID_ARGUMENT "malformed etcd <what>" on error.
template <typename T>
StatusOr<T> Answer(Status s, T value) {
  if (!s.ok()) return InvalidArgument("malformed etcd answer: " + s.message());
  return value;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

std::string EncodeRange(const RangeRequest& request) {
  return RangeBytes(request.key, request.range_end, request.count_only);
}

std::string EncodeTxn(const Txn& txn) {
  std::string out;
  for (const Compare& c : txn.compare) PutMessage(&out, txn_request::kCompare, CompareBytes(c));
  for (const Op& op : txn.success) PutMessage(&out, txn_request::kSuccess, RequestOpBytes(op));
  for (const Op& op : txn.failure) PutMessage(&out, txn_request::kFailure, RequestOpBytes(op));
  return out;
}

std::string EncodeDeleteRange(std::string_view key) { return DeleteRangeBytes(key, ""); }

std::string EncodeLeaseGrant(int64_t ttl_s) {
  std::string out;
  PutInt(&out, 1, ttl_s);  // LeaseGrantRequest.TTL; ID 0: etcd picks one
  return out;
}

std::string EncodeLeaseKeepAlive(int64_t id) {
  std::string out;
  PutInt(&out, 1, id);  // LeaseKeepAliveRequest.ID
  return out;
}

std::string EncodeLeaseRevoke(int64_t id) {
  std::string out;
  PutInt(&out, 1, id);  // LeaseRevokeRequest.ID
  return out;
}

std::string EncodeWatchCreate(const WatchRequest& request) {
  std::string create, out;
  PutBytes(&create, watch_request::kKey, request.key);
  PutBytes(&create, watch_request::kRangeEnd, request.range_end);
  PutInt(&create, watch_request::kStartRevision, request.start_revision);
  PutMessage(&out, watch_request::kCreateRequest, create);
  return out;
}

std::string EncodeCompaction(int64_t revision) {
  std::string out;
  PutInt(&out, 1, revision);  // CompactionRequest.revision; physical false
  return out;
}

std::string EncodeStatus() { return std::string(); }

StatusOr<RangeResponse> DecodeRange(std::string_view bytes) {
  RangeResponse r;
  Status s = MergeRange(bytes, &r);
  return Answer(std::move(s), std::move(r));
}

StatusOr<TxnResponse> DecodeTxn(std::string_view bytes) {
  TxnResponse r;
  Status s = MergeTxn(bytes, 1, &r.revision, &r.succeeded, &r.responses);
  return Answer(std::move(s), std::move(r));
}

StatusOr<LeaseGrantResponse> DecodeLeaseGrant(std::string_view bytes) {
  static constexpr FieldSpec kSpecs[] = {
      {1, "header", kLen}, {2, "ID", kVarint}, {3, "TTL", kVarint}, {4, "error", kLen}};
  LeaseGrantResponse r;
  int64_t revision = 0;
  std::string error;
  Status s = ParseMessage(bytes, "LeaseGrantResponse", kSpecs, [&](const Field& f) {
    switch (f.number) {
      case 1:
        return MergeHeader(f.bytes, &revision);
      case 2:
        r.id = static_cast<int64_t>(f.varint);
        break;
      case 3:
        r.ttl = static_cast<int64_t>(f.varint);
        break;
      case 4:
        error.assign(f.bytes);
        break;
    }
    return Status::Ok();
  });
  if (s.ok() && !error.empty()) return Internal("etcd refused the lease grant: " + error);
  return Answer(std::move(s), r);
}

StatusOr<int64_t> DecodeLeaseKeepAlive(std::string_view bytes) {
  static constexpr FieldSpec kSpecs[] = {
      {1, "header", kLen}, {2, "ID", kVarint}, {3, "TTL", kVarint}};
  int64_t revision = 0, ttl = 0;
  Status s = ParseMessage(bytes, "LeaseKeepAliveResponse", kSpecs, [&](const Field& f) {
    if (f.number == 1) return MergeHeader(f.bytes, &revision);
    if (f.number == 3) ttl = static_cast<int64_t>(f.varint);
    return Status::Ok();
  });
  return Answer(std::move(s), ttl);
}

StatusOr<WatchResponse> DecodeWatch(std::string_view bytes) {
  static constexpr FieldSpec kSpecs[] = {{1, "header", kLen},
                                         {2, "watch_id", kVarint},
                                         {3, "created", kVarint},
                                         {4, "canceled", kVarint},
                                         {5, "compact_revision", kVarint},
                                         {6, "cancel_reason", kLen},
                                         {7, "fragment", kVarint},
                                         {11, "events", kLen}};
  WatchResponse r;
  int64_t compact_revision = 0;
  Status s = ParseMessage(bytes, "WatchResponse", kSpecs, [&](const Field& f) {
    switch (f.number) {
      case 1:
        return MergeHeader(f.bytes, &r.revision);
      case 3:
        r.created = f.varint != 0;
        break;
      case 4:
        r.canceled = f.varint != 0;
        break;
      case 5:
        compact_revision = static_cast<int64_t>(f.varint);
        break;
      case 6:
        r.cancel_reason.assign(f.bytes);
        break;
      case 11:
        r.events.emplace_back();
        return MergeEvent(f.bytes, &r.events.back());
    }
    return Status::Ok();
  });
  // etcd 3.4 cancels a watch whose start revision was compacted with compact_revision set and
  // no reason; say why, for the logs.
  if (r.canceled && r.cancel_reason.empty() && compact_revision != 0) {
    r.cancel_reason = "start revision compacted (etcd compacted up to revision " +
                      std::to_string(compact_revision) + ")";
  }
  return Answer(std::move(s), std::move(r));
}

StatusOr<EtcdStatusResponse> DecodeStatus(std::string_view bytes) {
  static constexpr FieldSpec kSpecs[] = {{1, "header", kLen},
                                         {2, "version", kLen},
                                         {3, "dbSize", kVarint},
                                         {4, "leader", kVarint},
                                         {5, "raftIndex", kVarint},
                                         {6, "raftTerm", kVarint},
                                         {7, "raftAppliedIndex", kVarint},
                                         {8, "errors", kLen},
                                         {9, "dbSizeInUse", kVarint},
                                         {10, "isLearner", kVarint}};
  EtcdStatusResponse r;
  Status s = ParseMessage(bytes, "StatusResponse", kSpecs, [&](const Field& f) {
    switch (f.number) {
      case 1:
        return MergeHeader(f.bytes, &r.revision);
      case 3:
        r.db_size = static_cast<int64_t>(f.varint);
        break;
      case 8:
        if (std::optional<std::string> alarm = AlarmName(f.bytes)) r.alarms.insert(*alarm);
        break;
      case 9:
        r.db_size_in_use = static_cast<int64_t>(f.varint);
        break;
    }
    return Status::Ok();
  });
  return Answer(std::move(s), std::move(r));
}

}  // namespace lm::store::proto
