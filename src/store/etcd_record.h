// Reading what etcd holds without trusting it: safe accessors for the JSON gateway's answers
// and the parsers of the values tokenmgr keeps under its prefix. Nothing here throws; anything
// etcd sends (foreign values of any type, size or encoding, bad base64, odd keys) is an error
// Status or a default. Thread-compatible (pure functions).
//
//   StatusOr<EtcdKv> kv = ParseKv(event_kv);               // base64 decoded, revisions read
//   StatusOr<GrantValue> g = ParseGrantValue(kv->value);   // INVALID_ARGUMENT names the field
//   const nlohmann::json& events = JsonArray(result, "events");  // [] unless an array is there
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace lm::store {

// `j[field]` if j is an object holding it, else null. Never throws.
const nlohmann::json& JsonField(const nlohmann::json& j, std::string_view field);
// The field if it has that type, else an empty object / empty array / "" / false.
const nlohmann::json& JsonObject(const nlohmann::json& j, std::string_view field);
const nlohmann::json& JsonArray(const nlohmann::json& j, std::string_view field);
std::string JsonString(const nlohmann::json& j, std::string_view field);
bool JsonBool(const nlohmann::json& j, std::string_view field);

// One key-value as the gateway sends it (base64 key and value, int64 fields as strings).
struct EtcdKv {
  std::string key, value;  // decoded
  int64_t create_revision = 0, mod_revision = 0, lease = 0;
};
// INVALID_ARGUMENT when `kv` is not an object or its key or value is not valid base64.
StatusOr<EtcdKv> ParseKv(const nlohmann::json& kv);

// A grant key's value: {"id","holder","ttl","acquired_unix_ms","expires_unix_ms"[,"epoch"]}.
inline constexpr size_t kMaxRecordValueBytes = 4096;
struct GrantValue {
  std::string id, holder;
  int64_t ttl_s = 0, acquired_ms = 0, expires_ms = 0;
  uint64_t epoch = 0;  // absent in grants of tokenmgr before token epochs: 0
};
// INVALID_ARGUMENT naming the field when the value is not a grant tokenmgr writes (not JSON,
// too large, missing or mistyped field, bad id length, bad holder label, ttl <= 0).
StatusOr<GrantValue> ParseGrantValue(std::string_view value);
std::string SerializeGrantValue(const GrantValue& g);

// The token epoch key's value: decimal microseconds, 1..2^53 (tokens stay exact in JSON
// numbers), no leading zeros. INVALID_ARGUMENT otherwise.
StatusOr<uint64_t> ParseEpochValue(std::string_view value);

// The alarm one of etcd's status `errors` strings names ("memberID:1 alarm:NOSPACE " ->
// "NOSPACE"), or nullopt when it names none (e.g. "etcdserver: no leader"). etcd 3.4 and newer
// list active alarms there; the JSON gateway and the gRPC codec both read them with this rule.
std::optional<std::string> AlarmName(std::string_view error_text);

// Bytes of `s` safe to log: printable ASCII kept, others as \xNN, cut at 80 bytes.
std::string Printable(std::string_view s);

}  // namespace lm::store
