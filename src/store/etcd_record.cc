#include "store/etcd_record.h"

#include <cctype>
#include <charconv>

#include "common/strings.h"
#include "store/etcd_client.h"

namespace lm::store {

using nlohmann::json;

const json& JsonField(const json& j, std::string_view field) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(field);
  return it == j.end() ? kNull : *it;
}

const json& JsonObject(const json& j, std::string_view field) {
  static const json kEmpty = json::object();
  const json& f = JsonField(j, field);
  return f.is_object() ? f : kEmpty;
}

const json& JsonArray(const json& j, std::string_view field) {
  static const json kEmpty = json::array();
  const json& f = JsonField(j, field);
  return f.is_array() ? f : kEmpty;
}

std::string JsonString(const json& j, std::string_view field) {
  const json& f = JsonField(j, field);
  return f.is_string() ? f.get<std::string>() : std::string();
}

bool JsonBool(const json& j, std::string_view field) {
  const json& f = JsonField(j, field);
  return f.is_boolean() && f.get<bool>();
}

StatusOr<EtcdKv> ParseKv(const json& kv) {
  if (!kv.is_object()) return InvalidArgument("etcd key-value is not an object");
  EtcdKv out;
  StatusOr<std::string> key = Base64Decode(JsonString(kv, "key"));
  if (!key.ok()) return InvalidArgument("etcd key is not valid base64");
  StatusOr<std::string> value = Base64Decode(JsonString(kv, "value"));
  if (!value.ok()) {
    return InvalidArgument("etcd key " + Printable(*key) + ": value is not valid base64");
  }
  out.key = std::move(*key);
  out.value = std::move(*value);
  out.create_revision = JsonInt(kv, "create_revision");
  out.mod_revision = JsonInt(kv, "mod_revision");
  out.lease = JsonInt(kv, "lease");
  return out;
}

namespace {

Status Bad(std::string_view what) {
  return InvalidArgument("not a tokenmgr grant: " + std::string(what));
}

}  // namespace

StatusOr<GrantValue> ParseGrantValue(std::string_view value) {
  if (value.size() > kMaxRecordValueBytes) {
    return Bad("value is " + std::to_string(value.size()) + " bytes");
  }
  json v = json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) return Bad("value is not JSON");
  if (!v.is_object()) return Bad("value is not a JSON object");
  GrantValue g;
  const json& id = JsonField(v, "id");
  if (!id.is_string()) return Bad("'id' missing or not a string");
  g.id = id.get<std::string>();
  if (g.id.empty() || g.id.size() > 64) return Bad("'id' is not 1 to 64 bytes");
  const json& holder = JsonField(v, "holder");
  if (!holder.is_string()) return Bad("'holder' missing or not a string");
  g.holder = holder.get<std::string>();
  if (!ValidateLabel(g.holder, "holder").ok()) return Bad("'holder' is not a valid label");
  struct Int {
    const char* name;
    int64_t* out;
  };
  for (Int f : {Int{"ttl", &g.ttl_s}, Int{"acquired_unix_ms", &g.acquired_ms},
                Int{"expires_unix_ms", &g.expires_ms}}) {
    const json& n = JsonField(v, f.name);
    if (!n.is_number_integer())
      return Bad(std::string("'") + f.name + "' missing or not an integer");
    if (n.is_number_unsigned() && n.get<uint64_t>() > uint64_t(INT64_MAX)) {
      return Bad(std::string("'") + f.name + "' out of range");
    }
    *f.out = n.get<int64_t>();
  }
  if (g.ttl_s <= 0 || g.ttl_s > 366LL * 24 * 3600) return Bad("'ttl' out of range");
  const json& epoch = JsonField(v, "epoch");
  if (!epoch.is_null()) {
    if (!epoch.is_number_unsigned() || epoch.get<uint64_t>() > (uint64_t{1} << 53)) {
      return Bad("'epoch' is not an integer in 0..2^53");
    }
    g.epoch = epoch.get<uint64_t>();
  }
  return g;
}

std::string SerializeGrantValue(const GrantValue& g) {
  json j = {{"id", g.id},
            {"holder", g.holder},
            {"ttl", g.ttl_s},
            {"acquired_unix_ms", g.acquired_ms},
            {"expires_unix_ms", g.expires_ms}};
  if (g.epoch) j["epoch"] = g.epoch;
  return j.dump();
}

StatusOr<uint64_t> ParseEpochValue(std::string_view value) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (value.empty() || value[0] == '0' || ec != std::errc() || end != value.data() + value.size() ||
      v == 0 || v > (uint64_t{1} << 53)) {
    return InvalidArgument("token epoch '" + Printable(value) +
                           "' is not a decimal integer in 1..2^53 (no leading zeros)");
  }
  return v;
}

std::optional<std::string> AlarmName(std::string_view error_text) {
  size_t at = error_text.find("alarm:");
  if (at == std::string_view::npos) return std::nullopt;
  at += 6;
  size_t end = at;
  while (end < error_text.size() && std::isalnum(static_cast<unsigned char>(error_text[end]))) {
    ++end;
  }
  if (end == at) return std::nullopt;
  return std::string(error_text.substr(at, end - at));
}

std::string Printable(std::string_view s) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < s.size() && i < 80; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (s.size() > 80) out += "...";
  return out;
}

}  // namespace lm::store
