#include "store/etcd_proto.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace lm::store::proto {
namespace {

// Hex of bytes, "0a 01 6b", for readable failures.
std::string Hex(std::string_view b) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : b) {
    if (!out.empty()) out += ' ';
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

// A test-only protobuf encoder for etcd's answers; the expected request bytes below are written
// out by hand instead (the same as this Python gives, e.g. for the put-if-absent txn):
//   def varint(n):
//     n &= 2**64 - 1; out = b""
//     while True:
//       b, n = n & 0x7f, n >> 7
//       if not n: return out + bytes([b])
//       out += bytes([b | 0x80])
//   def fld(num, data): return varint(num << 3 | 2) + varint(len(data)) + data
//   def fint(num, v): return varint(num << 3) + varint(v)
//   cmp = fint(2, 1) + fld(3, b"l") + fint(5, 0)
//   print((fld(1, cmp) + fld(2, fld(2, fld(1, b"l") + fld(2, b"v")))).hex(" "))
std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out += static_cast<char>(v | 0x80);
    v >>= 7;
  }
  return out + static_cast<char>(v);
}
std::string Int(int field, int64_t v) {
  return Varint(static_cast<uint64_t>(field) << 3) + Varint(static_cast<uint64_t>(v));
}
std::string Len(int field, std::string_view data) {
  return Varint(static_cast<uint64_t>(field) << 3 | 2) + Varint(data.size()) + std::string(data);
}
std::string Header(int64_t revision) { return Len(1, Int(1, 7) + Int(2, 8) + Int(3, revision)); }
std::string Kv(std::string_view key, std::string_view value, int64_t create, int64_t mod,
               int64_t lease = 0) {
  return Len(1, key) + Int(2, create) + Int(3, mod) + Int(4, 1) + Len(5, value) + Int(6, lease);
}
std::string TxnAnswer(int64_t revision, bool succeeded, const std::vector<std::string>& ops) {
  std::string out = Header(revision) + Int(2, succeeded ? 1 : 0);
  for (const std::string& op : ops) out += Len(3, op);
  return out;
}
// ResponseOp{response_range{kvs}}.
std::string RangeOp(const std::vector<std::string>& kvs) {
  std::string range = Header(0);
  for (const std::string& kv : kvs) range += Len(2, kv);
  return Len(1, range);
}
std::string PutOp() { return Len(2, Header(5)); }
// A TxnResponse with `depth` txns nested inside the outermost one.
std::string Nested(int depth) {
  std::string txn = TxnAnswer(9, true, {});
  for (int i = 0; i < depth; ++i) txn = TxnAnswer(9, true, {Len(4, txn)});
  return txn;
}

// ---- Requests: exact bytes ----

TEST(EtcdProtoEncode, PutIfAbsentTxnHasTheHandComputedBytes) {
  Txn txn;
  txn.compare.push_back(Compare::Create("l", CompareResult::kEqual, 0));
  txn.success.push_back(Op::Put("l", "v"));
  // compare{target=CREATE key="l" create_revision=0} success{request_put{key="l" value="v"}}
  EXPECT_EQ(Hex(EncodeTxn(txn)), "0a 07 10 01 1a 01 6c 28 00 12 08 12 06 0a 01 6c 12 01 76");
}

TEST(EtcdProtoEncode, CompareAlwaysWritesItsTargetMember) {
  Txn txn;
  txn.compare.push_back(Compare::Value("k", ""));
  txn.compare.push_back(Compare::Mod("k", CompareResult::kNotEqual, 0));
  txn.compare.push_back(Compare::Create("a", CompareResult::kGreater, 5, "z"));
  // result omitted (EQUAL), target=VALUE, key, value="" (field 7, empty but present)
  // result=NOT_EQUAL, target=MOD, key, mod_revision=0 (field 6)
  // result=GREATER, target=CREATE, key, create_revision=5, range_end (field 64: 82 04)
  EXPECT_EQ(Hex(EncodeTxn(txn)),
            "0a 07 10 03 1a 01 6b 3a 00 "
            "0a 09 08 03 10 02 1a 01 6b 30 00 "
            "0a 0d 08 01 10 01 1a 01 61 28 05 82 04 01 7a");
}

TEST(EtcdProtoEncode, LessResultAndFailureBranch) {
  Txn txn;
  txn.compare.push_back(Compare::Mod("k", CompareResult::kLess, 300));
  txn.failure.push_back(Op::Range("a", "b"));
  txn.failure.push_back(Op::DeleteRange("a", "b"));
  txn.failure.push_back(Op::Delete("k"));
  EXPECT_EQ(Hex(EncodeTxn(txn)),
            "0a 0a 08 02 10 02 1a 01 6b 30 ac 02 "  // mod_revision 300 = ac 02
            "1a 08 0a 06 0a 01 61 12 01 62 "        // failure{request_range{a, b}}
            "1a 08 1a 06 0a 01 61 12 01 62 "        // failure{request_delete_range{a, b}}
            "1a 05 1a 03 0a 01 6b");                // failure{request_delete_range{k}}
}

TEST(EtcdProtoEncode, NegativeLeaseIsTenBytesOfTwosComplement) {
  Txn txn;
  txn.success.push_back(Op::Put("k", "", -1));
  // success{request_put{key="k" lease=-1}}: value "" omitted
  EXPECT_EQ(Hex(EncodeTxn(txn)), "12 10 12 0e 0a 01 6b 18 ff ff ff ff ff ff ff ff ff 01");
}

TEST(EtcdProtoEncode, NestedTxnIsRequestTxn) {
  Txn inner;
  inner.compare.push_back(Compare::Create("k", CompareResult::kEqual, 0));
  inner.success.push_back(Op::Put("k", "v", 0x12));
  Txn outer;
  outer.success.push_back(Op::Nested(std::move(inner)));
  EXPECT_EQ(Hex(EncodeTxn(outer)),
            "12 17 22 15 "  // success{request_txn{
            "0a 07 10 01 1a 01 6b 28 00 12 0a 12 08 0a 01 6b 12 01 76 18 12");
}

TEST(EtcdProtoEncode, EmptyTxnIsEmpty) { EXPECT_EQ(EncodeTxn(Txn{}), ""); }

TEST(EtcdProtoEncode, RangeRequest) {
  EXPECT_EQ(Hex(EncodeRange({.key = "a", .range_end = "b", .count_only = true})),
            "0a 01 61 12 01 62 48 01");  // count_only is field 9
  EXPECT_EQ(Hex(EncodeRange({.key = "a", .range_end = "", .count_only = false})), "0a 01 61");
}

TEST(EtcdProtoEncode, SmallRequests) {
  EXPECT_EQ(Hex(EncodeDeleteRange("k")), "0a 01 6b");
  EXPECT_EQ(Hex(EncodeLeaseGrant(10)), "08 0a");
  EXPECT_EQ(Hex(EncodeLeaseKeepAlive(0x694d7c4a1c4c3a05)), "08 85 f4 b0 e2 a1 89 df a6 69");
  EXPECT_EQ(Hex(EncodeLeaseRevoke(1)), "08 01");
  EXPECT_EQ(Hex(EncodeCompaction(5)), "08 05");
  EXPECT_EQ(EncodeStatus(), "");
  EXPECT_EQ(Hex(EncodeWatchCreate({.key = "a", .range_end = "b", .start_revision = 300})),
            "0a 09 0a 01 61 12 01 62 18 ac 02");
  EXPECT_EQ(Hex(EncodeWatchCreate({.key = "a", .range_end = "", .start_revision = 0})),
            "0a 03 0a 01 61");
}

// ---- Answers ----

TEST(EtcdProtoDecode, RangeAnswer) {
  std::string bytes = Header(42) + Len(2, Kv("k1", "v1", 3, 4, 99)) +
                      Len(2, Kv("k2", std::string("\0\xff", 2), 5, 6)) + Int(3, 1) + Int(4, 2);
  StatusOr<RangeResponse> r = DecodeRange(bytes);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->revision, 42);
  EXPECT_EQ(r->count, 2);
  ASSERT_EQ(r->kvs.size(), 2u);
  EXPECT_EQ(r->kvs[0].key, "k1");
  EXPECT_EQ(r->kvs[0].value, "v1");
  EXPECT_EQ(r->kvs[0].create_revision, 3);
  EXPECT_EQ(r->kvs[0].mod_revision, 4);
  EXPECT_EQ(r->kvs[0].lease, 99);
  EXPECT_EQ(r->kvs[1].value, std::string("\0\xff", 2));
  EXPECT_EQ(r->kvs[1].lease, 0);
  EXPECT_EQ(r->kvs[1].undecodable, "");
}

TEST(EtcdProtoDecode, TxnAnswerKeepsOpResponseSemantics) {
  std::string inner = TxnAnswer(0, false, {RangeOp({Kv("n", "x", 1, 2)})});
  std::string bytes = TxnAnswer(77, true,
                                {PutOp(), RangeOp({Kv("a", "1", 5, 6), Kv("b", "2", 7, 8)}),
                                 Len(3, Header(77) + Int(3, 1)), Len(4, inner)});
  StatusOr<TxnResponse> r = DecodeTxn(bytes);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->revision, 77);
  EXPECT_TRUE(r->succeeded);
  ASSERT_EQ(r->responses.size(), 4u);
  EXPECT_TRUE(r->responses[0].kvs.empty());  // put
  ASSERT_EQ(r->responses[1].kvs.size(), 2u);
  EXPECT_EQ(r->responses[1].kvs[1].key, "b");
  EXPECT_EQ(r->responses[1].kvs[1].mod_revision, 8);
  EXPECT_TRUE(r->responses[2].kvs.empty());  // delete
  EXPECT_FALSE(r->responses[3].succeeded);   // nested txn: its branch and its responses
  ASSERT_EQ(r->responses[3].responses.size(), 1u);
  ASSERT_EQ(r->responses[3].responses[0].kvs.size(), 1u);
  EXPECT_EQ(r->responses[3].responses[0].kvs[0].value, "x");
}

TEST(EtcdProtoDecode, FieldsInAnyOrderAndInterleaved) {
  std::string bytes = Len(3, RangeOp({Kv("a", "", 1, 1)})) + Int(2, 1) +
                      Len(3, RangeOp({Kv("b", "", 2, 2)})) + Header(5);
  StatusOr<TxnResponse> r = DecodeTxn(bytes);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->revision, 5);
  EXPECT_TRUE(r->succeeded);
  ASSERT_EQ(r->responses.size(), 2u);
  EXPECT_EQ(r->responses[0].kvs.at(0).key, "a");
  EXPECT_EQ(r->responses[1].kvs.at(0).key, "b");
}

TEST(EtcdProtoDecode, ScalarSeenTwiceLastWinsAndMessagesMerge) {
  // succeeded 1 then 0; header twice (the second sets only revision); a kv with mod_revision twice.
  std::string kv_part1 = Len(1, "k") + Int(3, 4);
  std::string kv_part2 = Int(3, 9) + Len(5, "v");
  std::string bytes = Int(2, 1) + Int(2, 0) + Header(3) + Len(1, Int(3, 6)) +
                      Len(3, Len(1, Len(2, kv_part1 + kv_part2)));
  StatusOr<TxnResponse> r = DecodeTxn(bytes);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->succeeded);
  EXPECT_EQ(r->revision, 6);
  ASSERT_EQ(r->responses.size(), 1u);
  ASSERT_EQ(r->responses[0].kvs.size(), 1u);
  EXPECT_EQ(r->responses[0].kvs[0].key, "k");
  EXPECT_EQ(r->responses[0].kvs[0].value, "v");
  EXPECT_EQ(r->responses[0].kvs[0].mod_revision, 9);
}

TEST(EtcdProtoDecode, ResponseOpMemberSeenTwiceMergesAnotherReplaces) {
  std::string range_a = Len(1, Len(2, Kv("a", "", 1, 1)));
  std::string range_b = Len(1, Len(2, Kv("b", "", 2, 2)));
  StatusOr<TxnResponse> merged = DecodeTxn(Len(3, range_a + range_b));
  ASSERT_TRUE(merged.ok()) << merged.status().ToString();
  EXPECT_EQ(merged->responses.at(0).kvs.size(), 2u);
  StatusOr<TxnResponse> replaced = DecodeTxn(Len(3, range_a + Len(2, "") + range_b));
  ASSERT_TRUE(replaced.ok()) << replaced.status().ToString();
  ASSERT_EQ(replaced->responses.at(0).kvs.size(), 1u);
  EXPECT_EQ(replaced->responses[0].kvs[0].key, "b");
}

TEST(EtcdProtoDecode, NegativeRevisionAndLeaseDecode) {
  std::string bytes = Header(-2) + Len(2, Kv("k", "v", -3, -4, -1));
  StatusOr<RangeResponse> r = DecodeRange(bytes);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->revision, -2);
  EXPECT_EQ(r->kvs.at(0).create_revision, -3);
  EXPECT_EQ(r->kvs.at(0).mod_revision, -4);
  EXPECT_EQ(r->kvs.at(0).lease, -1);
}

TEST(EtcdProtoDecode, UnknownFieldsOfEveryValidWireTypeAreSkipped) {
  std::string unknown = Int(15, 300) + Varint(16 << 3 | 1) + std::string(8, '\xff') +
                        Len(17, "whatever") + Varint(18 << 3 | 5) + std::string(4, '\x01') +
                        Int(536870911, 1);  // the largest field number
  std::string kv = unknown + Kv("k", "v", 1, 2) + unknown;
  std::string op = unknown + Len(1, unknown + Len(2, kv)) + Len(9, "future oneof member");
  std::string bytes = unknown + TxnAnswer(4, true, {op}) + Len(1, unknown + Int(3, 5)) + unknown;
  StatusOr<TxnResponse> r = DecodeTxn(bytes);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->revision, 5);
  ASSERT_EQ(r->responses.size(), 1u);
  ASSERT_EQ(r->responses[0].kvs.size(), 1u);
  EXPECT_EQ(r->responses[0].kvs[0].key, "k");
}

TEST(EtcdProtoDecode, EmptyInputIsTheEmptyMessage) {
  // proto3: no bytes is a valid encoding of a message whose fields are all default.
  StatusOr<TxnResponse> t = DecodeTxn("");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->revision, 0);
  EXPECT_FALSE(t->succeeded);
  EXPECT_TRUE(t->responses.empty());
  EXPECT_TRUE(DecodeRange("").ok());
  EXPECT_TRUE(DecodeWatch("").ok());
  EXPECT_TRUE(DecodeStatus("").ok());
  EXPECT_TRUE(DecodeLeaseGrant("").ok());
  EXPECT_EQ(DecodeLeaseKeepAlive("").value(), 0);
}

TEST(EtcdProtoDecode, LeaseAnswers) {
  StatusOr<LeaseGrantResponse> g = DecodeLeaseGrant(Header(3) + Int(2, 0x694d) + Int(3, 10));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->id, 0x694d);
  EXPECT_EQ(g->ttl, 10);
  StatusOr<LeaseGrantResponse> refused =
      DecodeLeaseGrant(Header(3) + Len(4, "etcdserver: lease already exists"));
  EXPECT_EQ(refused.status().code(), StatusCode::kInternal);
  EXPECT_NE(refused.status().message().find("lease already exists"), std::string::npos);
  EXPECT_EQ(DecodeLeaseKeepAlive(Header(3) + Int(2, 5) + Int(3, 30)).value(), 30);
  EXPECT_EQ(DecodeLeaseKeepAlive(Header(3) + Int(2, 5)).value(), 0);  // lease gone
}

TEST(EtcdProtoDecode, WatchAnswer) {
  std::string put = Len(2, Kv("a", "1", 3, 3));
  std::string del = Int(1, 1) + Len(2, Kv("b", "", 0, 4)) + Len(3, Kv("b", "old", 2, 2));
  std::string bytes = Header(4) + Int(2, 0) + Len(11, put) + Len(11, del);
  StatusOr<WatchResponse> w = DecodeWatch(bytes);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(w->revision, 4);
  EXPECT_FALSE(w->created);
  ASSERT_EQ(w->events.size(), 2u);
  EXPECT_FALSE(w->events[0].deleted);
  EXPECT_EQ(w->events[0].kv.value, "1");
  EXPECT_TRUE(w->events[1].deleted);
  EXPECT_EQ(w->events[1].kv.key, "b");
  EXPECT_EQ(w->events[1].kv.value, "");  // prev_kv is not the event's kv
  EXPECT_EQ(w->events[1].kv.mod_revision, 4);

  StatusOr<WatchResponse> created = DecodeWatch(Header(4) + Int(3, 1));
  ASSERT_TRUE(created.ok());
  EXPECT_TRUE(created->created);
  StatusOr<WatchResponse> canceled = DecodeWatch(
      Header(9) + Int(4, 1) + Int(5, 7) + Len(6, "mvcc: required revision has been compacted"));
  ASSERT_TRUE(canceled.ok());
  EXPECT_TRUE(canceled->canceled);
  EXPECT_EQ(canceled->cancel_reason, "mvcc: required revision has been compacted");
}

TEST(EtcdProtoDecode, WatchCanceledForCompactionWithoutReasonSaysWhy) {
  // What etcd 3.4.23 sent (header without revision, canceled, compact_revision 4, no reason).
  std::string bytes = Len(1, Int(1, 7) + Int(2, 8) + Int(4, 2)) + Int(4, 1) + Int(5, 4);
  StatusOr<WatchResponse> w = DecodeWatch(bytes);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_TRUE(w->canceled);
  EXPECT_EQ(w->cancel_reason, "start revision compacted (etcd compacted up to revision 4)");
}

TEST(EtcdProtoDecode, StatusAnswerReadsSizesAndAlarms) {
  std::string bytes = Header(12) + Len(2, "3.4.30") + Int(3, 1 << 20) + Int(4, 1) + Int(5, 9) +
                      Int(6, 2) + Int(7, 9) +
                      Len(8, "memberID:3319814642761637952 alarm:NOSPACE ") +
                      Len(8, "etcdserver: no leader") + Len(8, "memberID:2 alarm:CORRUPT") +
                      Int(9, 4096) + Int(10, 0);
  StatusOr<EtcdStatusResponse> s = DecodeStatus(bytes);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->revision, 12);
  EXPECT_EQ(s->db_size, 1 << 20);
  EXPECT_EQ(s->db_size_in_use, 4096);
  EXPECT_EQ(s->alarms, (std::set<std::string>{"NOSPACE", "CORRUPT"}));
}

// ---- Hostile answers ----

void ExpectInvalid(const StatusOr<TxnResponse>& r, std::string_view needle) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
}

TEST(EtcdProtoHostile, TruncatedAtEveryByteFailsUnlessAtATopLevelFieldEnd) {
  std::vector<std::string> fields = {
      Header(77), Int(2, 1), Len(3, RangeOp({Kv("key", "value", 300, 70000, -1)})),
      Len(3, Len(4, TxnAnswer(0, true, {RangeOp({Kv("n", "x", 1, 2)})})))};
  std::string bytes;
  std::set<size_t> ends = {0};
  for (const std::string& f : fields) ends.insert((bytes += f).size());
  ASSERT_TRUE(DecodeTxn(bytes).ok());
  for (size_t n = 0; n < bytes.size(); ++n) {
    StatusOr<TxnResponse> r = DecodeTxn(std::string_view(bytes).substr(0, n));
    EXPECT_EQ(r.ok(), ends.count(n) == 1) << "cut at " << n << ": " << r.status().ToString();
  }
}

TEST(EtcdProtoHostile, OverLongVarintIsRefused) {
  // revision as 11 bytes: ten with the continuation bit, then 01.
  ExpectInvalid(DecodeTxn(Len(1, Varint(3 << 3) + std::string(10, '\xff') + '\x01')),
                "TxnResponse.header: ResponseHeader.revision: varint longer than 10 bytes");
  // Ten bytes whose last carries bits above 2^64.
  ExpectInvalid(DecodeTxn(Varint(2 << 3) + std::string(9, '\xff') + '\x02'),
                "varint overflows 64 bits");
  // A ten-byte varint of -1 is fine.
  EXPECT_TRUE(DecodeTxn(Varint(2 << 3) + std::string(9, '\xff') + '\x01').ok());
  ExpectInvalid(DecodeTxn(std::string(11, '\xff')), "TxnResponse tag: varint longer than 10");
}

TEST(EtcdProtoHostile, LengthPastTheEndIsRefused) {
  ExpectInvalid(DecodeTxn(Varint(3 << 3 | 2) + Varint(5) + "ab"),
                "TxnResponse.responses: length 5 past the end (2 bytes left)");
  ExpectInvalid(DecodeTxn(Varint(3 << 3 | 2) + Varint(uint64_t{1} << 63) + "ab"),
                "length 9223372036854775808 past the end");
  ExpectInvalid(DecodeTxn(Varint(3 << 3 | 2) + Varint(~uint64_t{0})), "past the end");
  ExpectInvalid(DecodeTxn(Varint(16 << 3 | 1) + "1234567"), "TxnResponse field 16: length 8");
  ExpectInvalid(DecodeTxn(Varint(16 << 3 | 5) + "123"), "TxnResponse field 16: length 4");
}

TEST(EtcdProtoHostile, WrongWireTypeForAKnownFieldNamesIt) {
  ExpectInvalid(DecodeTxn(Len(2, "")), "TxnResponse.succeeded: wire type 2, want 0");
  ExpectInvalid(DecodeTxn(Int(3, 1)), "TxnResponse.responses: wire type 0, want 2");
  ExpectInvalid(DecodeTxn(Len(3, Len(1, Len(2, Int(1, 5))))),
                "TxnResponse.responses: ResponseOp.response_range: RangeResponse.kvs: "
                "KeyValue.key: wire type 0, want 2");
  EXPECT_FALSE(DecodeRange(Varint(4 << 3 | 5) + "1234").ok());
}

TEST(EtcdProtoHostile, GroupAndInvalidWireTypesAreRefused) {
  ExpectInvalid(DecodeTxn(Varint(20 << 3 | 3)), "TxnResponse field 20: group wire type 3");
  ExpectInvalid(DecodeTxn(Varint(20 << 3 | 4)), "group wire type 4");
  ExpectInvalid(DecodeTxn(Varint(20 << 3 | 6)), "invalid wire type 6");
  ExpectInvalid(DecodeTxn(Varint(20 << 3 | 7)), "invalid wire type 7");
}

TEST(EtcdProtoHostile, FieldNumberZeroOrTooLargeIsRefused) {
  ExpectInvalid(DecodeTxn(Int(0, 1)), "field number 0 out of range");
  ExpectInvalid(DecodeTxn(Int(536870912, 1)), "field number 536870912 out of range");
}

TEST(EtcdProtoHostile, NestingDeeperThanTheLimitIsRefused) {
  StatusOr<TxnResponse> deepest = DecodeTxn(Nested(kMaxTxnDepth - 1));
  ASSERT_TRUE(deepest.ok()) << deepest.status().ToString();
  const OpResponse* op = &deepest->responses.at(0);
  for (int i = 2; i < kMaxTxnDepth; ++i) op = &op->responses.at(0);
  EXPECT_TRUE(op->succeeded);
  ExpectInvalid(DecodeTxn(Nested(kMaxTxnDepth)), "txns nested deeper than 8");
  ExpectInvalid(DecodeTxn(Nested(1000)), "txns nested deeper than 8");
}

TEST(EtcdProtoHostile, ElementCountIsBoundedByTheBytes) {
  // 200,000 empty kvs in 400,000 bytes, and a count claiming 2^62: nothing is sized by a count.
  std::string kvs;
  for (int i = 0; i < 200000; ++i) kvs += Len(2, "");
  StatusOr<RangeResponse> r = DecodeRange(Int(4, int64_t{1} << 62) + kvs);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->kvs.size(), 200000u);
  EXPECT_EQ(r->count, int64_t{1} << 62);
}

TEST(EtcdProtoHostile, MalformedPutAndDeleteAnswersAreRefused) {
  ExpectInvalid(DecodeTxn(Len(3, Len(2, Varint(1 << 3 | 2) + Varint(9)))),
                "ResponseOp.response_put: PutResponse field 1: length 9 past the end");
  ExpectInvalid(DecodeTxn(Len(3, Len(3, Varint(7 << 3 | 3)))),
                "ResponseOp.response_delete_range: DeleteRangeResponse field 7: group");
}

TEST(EtcdProtoHostile, EveryDecoderRefusesTheSameGarbage) {
  std::string garbage = Varint(1 << 3 | 2) + Varint(100) + "x";
  EXPECT_EQ(DecodeRange(garbage).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeLeaseGrant(garbage).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeLeaseKeepAlive(garbage).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeWatch(garbage).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeStatus(garbage).status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(DecodeWatch(Len(11, Int(2, 1))).status().message().find("Event.kv: wire type 0"),
            std::string::npos);
}

}  // namespace
}  // namespace lm::store::proto
