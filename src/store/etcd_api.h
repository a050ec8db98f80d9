// EtcdApi: the typed calls tokenmgr makes to etcd (range, txn, leases, watch, compaction,
// status). The etcd store builds every request through it; nothing above it sees JSON or base64.
// Implementations: EtcdGatewayApi (etcd_gateway_api.h, over EtcdClient and etcd's JSON gateway)
// and FakeEtcd (store/testing/fake_etcd.h, in memory, for unit tests).
// Not thread-safe: call it, and receive its callbacks, on one io_context thread. Every callback
// runs exactly once and never inside the call that was given it.
//
//   Txn txn;
//   txn.compare.push_back(Compare::Create(key, CompareResult::kEqual, 0));  // key absent
//   txn.success.push_back(Op::Put(key, "value", lease));
//   api.Txn(std::move(txn), [](StatusOr<TxnResponse> r) { if (r.ok() && r->succeeded) ... });
//
// Errors: UNAVAILABLE for a transport failure, a timeout or a member without leader (the outcome
// of a write is unknown); NOT_FOUND when etcd refused a write naming a lease that is gone (not
// applied); INTERNAL for a request etcd calls malformed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "store/etcd_record.h"

namespace lm::store {

// One key-value read from etcd. `undecodable` is set (why) when etcd's answer held one whose key
// or value could not be decoded; only mod_revision is meaningful then.
struct KeyValue : EtcdKv {
  std::string undecodable;
};

enum class CompareTarget { kCreate, kMod, kValue };
enum class CompareResult { kEqual, kGreater, kLess, kNotEqual };

// One txn condition on `key` (or on every key in [key, range_end) when range_end is set: it
// holds only if it holds for each of them; an absent key has create and mod revision 0).
struct Compare {
  std::string key, range_end;
  CompareTarget target = CompareTarget::kCreate;
  CompareResult result = CompareResult::kEqual;
  int64_t revision = 0;  // for kCreate and kMod
  std::string value;     // for kValue (false when the key is absent)

  static Compare Create(std::string key, CompareResult r, int64_t revision,
                        std::string range_end = "") {
    return {std::move(key), std::move(range_end), CompareTarget::kCreate, r, revision, ""};
  }
  static Compare Mod(std::string key, CompareResult r, int64_t revision) {
    return {std::move(key), "", CompareTarget::kMod, r, revision, ""};
  }
  static Compare Value(std::string key, std::string value) {
    return {std::move(key), "", CompareTarget::kValue, CompareResult::kEqual, 0, std::move(value)};
  }
};

struct Txn;

// One operation of a txn: put (bound to `lease` unless 0), delete of one key or of a range,
// range read of [key, range_end), or a nested txn (whose compares see the store as it was
// before the outer txn).
struct Op {
  enum class Kind { kPut, kDelete, kRange, kTxn };
  Kind kind = Kind::kPut;
  std::string key, value, range_end;
  int64_t lease = 0;
  std::shared_ptr<const Txn> txn;

  static Op Put(std::string key, std::string value, int64_t lease = 0) {
    return {Kind::kPut, std::move(key), std::move(value), "", lease, nullptr};
  }
  static Op Delete(std::string key) { return {Kind::kDelete, std::move(key), "", "", 0, nullptr}; }
  // Every key in [key, range_end).
  static Op DeleteRange(std::string key, std::string range_end) {
    return {Kind::kDelete, std::move(key), "", std::move(range_end), 0, nullptr};
  }
  static Op Range(std::string key, std::string range_end = "") {
    return {Kind::kRange, std::move(key), "", std::move(range_end), 0, nullptr};
  }
  static Op Nested(Txn txn);
};

struct Txn {
  std::vector<Compare> compare;
  std::vector<Op> success, failure;
};
inline Op Op::Nested(Txn txn) {
  return {Kind::kTxn, "", "", "", 0, std::make_shared<const Txn>(std::move(txn))};
}

// The answer to one op, in the order of the branch that ran.
struct OpResponse {
  std::vector<KeyValue> kvs;  // kRange
  bool succeeded = false;     // kTxn: which branch the nested txn ran
  std::vector<OpResponse> responses;  // kTxn
};

struct TxnResponse {
  int64_t revision = 0;  // the store's revision after the txn (the write's, if it wrote)
  bool succeeded = false;
  std::vector<OpResponse> responses;
};

struct RangeRequest {
  std::string key, range_end;  // range_end empty: the key alone
  bool count_only = false;
};
struct RangeResponse {
  int64_t revision = 0;
  std::vector<KeyValue> kvs;
  int64_t count = 0;
};

struct LeaseGrantResponse {
  int64_t id = 0;
  int64_t ttl = 0;  // seconds granted
};

struct WatchRequest {
  std::string key, range_end;
  int64_t start_revision = 0;  // 0: from now
};
struct WatchEvent {
  bool deleted = false;
  KeyValue kv;
};
struct WatchResponse {
  bool created = false;   // the first answer of a stream
  bool canceled = false;  // etcd ended the watch, e.g. its start revision was compacted
  std::string cancel_reason;
  int64_t revision = 0;  // the store's revision as of this answer
  std::vector<WatchEvent> events;
};

struct EtcdStatusResponse {
  int64_t revision = 0;
  int64_t db_size = 0, db_size_in_use = 0;
  std::set<std::string> alarms;  // e.g. {"NOSPACE"}
};

class EtcdApi {
 public:
  template <typename T>
  using Done = std::function<void(StatusOr<T>)>;
  using StatusDone = std::function<void(Status)>;

  virtual ~EtcdApi() = default;

  // Linearizable reads (retried once on another member when one fails).
  virtual void Range(RangeRequest request, Done<RangeResponse> done) = 0;
  virtual void DoTxn(Txn txn, Done<TxnResponse> done) = 0;
  // DoTxn, not queued behind calls stuck on a shared connection (a network cut that healed
  // leaves those in the kernel's retransmit queue for up to seconds): gRPC sends it over a new
  // connection of its own; clients that pick an idle or new connection per call anyway (the
  // JSON gateway's) and fakes send it as DoTxn. Sent once.
  virtual void DoTxnApart(Txn txn, Done<TxnResponse> done) {
    DoTxn(std::move(txn), std::move(done));
  }
  virtual void DeleteKey(std::string key, StatusDone done) = 0;

  virtual void LeaseGrant(int64_t ttl_s, Done<LeaseGrantResponse> done) = 0;
  // The lease's TTL restarted now; 0 when the lease is gone.
  virtual void LeaseKeepAlive(int64_t id, Done<int64_t> done) = 0;
  // `retry`: sent again to another member after a failure (the default).
  virtual void LeaseRevoke(int64_t id, StatusDone done, bool retry = true) = 0;

  // One watch at a time: a new one cancels the old. `on_response` gets every answer of the
  // stream; `on_closed` runs once when it ends for any reason other than CancelWatch().
  virtual void Watch(WatchRequest request, std::function<void(const WatchResponse&)> on_response,
                     StatusDone on_closed) = 0;
  virtual void CancelWatch() = 0;

  // Compacting to a revision already compacted fails with a message holding "has been
  // compacted".
  virtual void Compact(int64_t revision, StatusDone done) = 0;
  // The member's status (local, no raft round): revision, database size, alarms.
  virtual void MemberStatus(Done<EtcdStatusResponse> done) = 0;

  // Fails every call in flight (UNAVAILABLE) and refuses new ones. Idempotent.
  virtual void Shutdown() = 0;
  // The member in use, for logs.
  virtual std::string current_endpoint() const = 0;
};

}  // namespace lm::store
