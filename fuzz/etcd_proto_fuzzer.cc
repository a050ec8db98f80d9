// etcd's gRPC answers in protobuf wire format (issue 20): every proto::Decode* on the input.
//   - nothing crashes, reads past the input or allocates beyond a constant factor of it;
//   - an accepted answer holds at most one element per two input bytes, and its txns nest no
//     deeper than kMaxTxnDepth;
//   - protobuf's concatenation rule: an answer followed by itself decodes too, with its repeated
//     fields twice and its scalars the same (last wins, merged messages equal);
//   - unknown fields of every valid wire type appended are skipped: the answer is unchanged.
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "store/etcd_proto.h"

namespace {

namespace proto = lm::store::proto;
using lm::store::KeyValue;
using lm::store::OpResponse;

// Unknown fields 15..18 of wire types 0, 1, 2, 5.
const std::string kUnknown = std::string("\x78\x01", 2) + "\x81\x01" + std::string(8, '\0') +
                             "\x8a\x01\x02xy" + "\x95\x01" + std::string(4, '\0');

bool SameKv(const KeyValue& a, const KeyValue& b) {
  return a.key == b.key && a.value == b.value && a.create_revision == b.create_revision &&
         a.mod_revision == b.mod_revision && a.lease == b.lease;
}

bool SameKvs(const std::vector<KeyValue>& a, const std::vector<KeyValue>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!SameKv(a[i], b[i])) return false;
  }
  return true;
}

bool SameOps(const std::vector<OpResponse>& a, const std::vector<OpResponse>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!SameKvs(a[i].kvs, b[i].kvs) || a[i].succeeded != b[i].succeeded ||
        !SameOps(a[i].responses, b[i].responses)) {
      return false;
    }
  }
  return true;
}

// Elements in `ops`, the responses of a txn at nesting `depth` (outermost 1), counting kvs and
// responses at every depth; checks the depth bound on the way.
size_t Count(const std::vector<OpResponse>& ops, int depth) {
  Check(depth <= proto::kMaxTxnDepth, "txn nesting deeper than kMaxTxnDepth");
  size_t n = ops.size();
  for (const OpResponse& op : ops) n += op.kvs.size() + Count(op.responses, depth + 1);
  return n;
}

void CheckTxn(std::string_view in) {
  auto r = proto::DecodeTxn(in);
  if (!r.ok()) return;
  Check(Count(r->responses, 1) <= in.size() / 2, "more txn elements than input bytes / 2");
  auto twice = proto::DecodeTxn(std::string(in) + std::string(in));
  Check(twice.ok(), "DecodeTxn(x + x) failed where DecodeTxn(x) did not");
  Check(twice->revision == r->revision && twice->succeeded == r->succeeded &&
            twice->responses.size() == 2 * r->responses.size(),
        "DecodeTxn(x + x) is not x merged with itself");
  auto more = proto::DecodeTxn(std::string(in) + kUnknown);
  Check(more.ok() && more->revision == r->revision && more->succeeded == r->succeeded &&
            SameOps(more->responses, r->responses),
        "unknown fields changed DecodeTxn");
}

void CheckRange(std::string_view in) {
  auto r = proto::DecodeRange(in);
  if (!r.ok()) return;
  Check(r->kvs.size() <= in.size() / 2, "more kvs than input bytes / 2");
  for (const KeyValue& kv : r->kvs) Check(kv.undecodable.empty(), "undecodable set");
  auto twice = proto::DecodeRange(std::string(in) + std::string(in));
  Check(twice.ok() && twice->revision == r->revision && twice->count == r->count &&
            twice->kvs.size() == 2 * r->kvs.size(),
        "DecodeRange(x + x) is not x merged with itself");
  auto more = proto::DecodeRange(kUnknown + std::string(in));
  Check(more.ok() && more->revision == r->revision && more->count == r->count &&
            SameKvs(more->kvs, r->kvs),
        "unknown fields changed DecodeRange");
}

void CheckWatch(std::string_view in) {
  auto w = proto::DecodeWatch(in);
  if (!w.ok()) return;
  Check(w->events.size() <= in.size() / 2, "more events than input bytes / 2");
  auto twice = proto::DecodeWatch(std::string(in) + std::string(in));
  Check(twice.ok() && twice->revision == w->revision && twice->created == w->created &&
            twice->canceled == w->canceled && twice->cancel_reason == w->cancel_reason &&
            twice->events.size() == 2 * w->events.size(),
        "DecodeWatch(x + x) is not x merged with itself");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  CheckTxn(in);
  CheckRange(in);
  CheckWatch(in);
  auto grant = proto::DecodeLeaseGrant(in);
  auto keepalive = proto::DecodeLeaseKeepAlive(in);
  auto status = proto::DecodeStatus(in);
  if (status.ok()) {
    Check(status->alarms.size() <= size / 2, "more alarms than input bytes / 2");
    for (const std::string& a : status->alarms) Check(!a.empty(), "empty alarm name");
  }
  (void)grant;
  (void)keepalive;
  return 0;
}
