#include "store/etcd_record.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "store/etcd_client.h"

namespace lm::store {
namespace {

using nlohmann::json;

constexpr const char* kGood =
    R"({"id":"0b7c5e0e-8f0e-4b47-9d5c-3c8c0f5c9a11","holder":"node-1","ttl":10,)"
    R"("acquired_unix_ms":1700000000000,"expires_unix_ms":1700000010000})";

TEST(EtcdRecord, ReadsAGrantTokenmgrWrites) {
  StatusOr<GrantValue> g = ParseGrantValue(kGood);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->holder, "node-1");
  EXPECT_EQ(g->ttl_s, 10);
  EXPECT_EQ(g->epoch, 0u);
  g->epoch = 1796580834678489;
  StatusOr<GrantValue> back = ParseGrantValue(SerializeGrantValue(*g));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->epoch, g->epoch);
  EXPECT_EQ(back->id, g->id);
}

// The value of issue 15 (`etcdctl put <prefix>lock/x '{"id":5}'`) ended every replica with an
// uncaught nlohmann type_error. Every shape is an error naming the field, never an exception.
TEST(EtcdRecord, ForeignValuesOfAnyShapeAreErrorsNotExceptions) {
  for (
      std::string v : std::vector<std::string>{
          R"({"id":5})", R"({"id":"x","holder":7})", R"([1,2])", "5", "null", "\"s\"", "", "{",
          "\xff\xfe",
          R"({"id":"x","holder":"h","ttl":"10","acquired_unix_ms":1,"expires_unix_ms":2})",
          R"({"id":"x","holder":"h","ttl":1e3,"acquired_unix_ms":1,"expires_unix_ms":2})",
          R"({"id":"x","holder":"h","ttl":0,"acquired_unix_ms":1,"expires_unix_ms":2})",
          R"({"id":"x","holder":"h","ttl":5,"acquired_unix_ms":18446744073709551615,"expires_unix_ms":2})",
          R"({"id":"x","holder":"h","ttl":5,"acquired_unix_ms":1,"expires_unix_ms":2,"epoch":-1})",
          R"({"id":"x","holder":"bad label!","ttl":5,"acquired_unix_ms":1,"expires_unix_ms":2})",
          R"({"id":"","holder":"h","ttl":5,"acquired_unix_ms":1,"expires_unix_ms":2})",
          std::string(10000, '['), std::string(kMaxRecordValueBytes + 1, ' ')}) {
    Status s = Status::Ok();
    ASSERT_NO_THROW(s = ParseGrantValue(v).status()) << v.substr(0, 60);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << v.substr(0, 60);
  }
  EXPECT_NE(ParseGrantValue(R"({"id":5})").status().message().find("'id'"), std::string::npos);
}

TEST(EtcdRecord, KeyValuesWithBadBase64OrShapeAreErrors) {
  EXPECT_FALSE(ParseKv(json::array()).ok());
  EXPECT_FALSE(ParseKv(json{{"key", "!!!"}}).ok());
  EXPECT_FALSE(ParseKv(json{{"key", Base64Encode("k")}, {"value", "%%"}}).ok());
  StatusOr<EtcdKv> odd =
      ParseKv(json{{"key", 5}, {"value", json::object()}, {"create_revision", "x"}, {"lease", -3}});
  ASSERT_TRUE(odd.ok());  // wrong types read as absent
  EXPECT_EQ(odd->key, "");
  StatusOr<EtcdKv> kv = ParseKv(json{{"key", Base64Encode("/t/lock/a")},
                                     {"value", Base64Encode("v")},
                                     {"create_revision", "7"},
                                     {"mod_revision", "9"},
                                     {"lease", "12"}});
  ASSERT_TRUE(kv.ok());
  EXPECT_EQ(kv->key, "/t/lock/a");
  EXPECT_EQ(kv->create_revision, 7);
  EXPECT_EQ(kv->mod_revision, 9);
  EXPECT_EQ(kv->lease, 12);
}

TEST(EtcdRecord, AccessorsNeverThrowOnTheWrongType) {
  json odd = {{"events", 5}, {"header", "x"}, {"created", "yes"}, {"canceled", 1}};
  EXPECT_TRUE(JsonArray(odd, "events").empty());
  EXPECT_TRUE(JsonObject(odd, "header").empty());
  EXPECT_FALSE(JsonBool(odd, "created"));
  EXPECT_FALSE(JsonBool(odd, "canceled"));
  EXPECT_EQ(JsonString(odd, "events"), "");
  EXPECT_TRUE(JsonArray(json::array({1}), "x").empty());
  EXPECT_EQ(JsonInt(json("str"), "x"), 0);
}

TEST(EtcdRecord, EpochIsDecimalMicroseconds) {
  EXPECT_EQ(*ParseEpochValue("1796580834678489"), 1796580834678489u);
  for (const char* bad :
       {"", "0", "-1", "12a", "0881", "+5", " 1", "99999999999999999999", "9007199254740993"}) {
    EXPECT_FALSE(ParseEpochValue(bad).ok()) << bad;
  }
}

TEST(EtcdRecord, PrintableEscapesControlAndNonAscii) {
  EXPECT_EQ(Printable("a\nb\xff"), "a\\x0ab\\xff");
  EXPECT_EQ(Printable(std::string(100, 'x')).size(), 83u);
}

}  // namespace
}  // namespace lm::store
