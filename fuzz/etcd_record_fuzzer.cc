// What tokenmgr reads from etcd under its prefix (issue 15: one foreign value ended every
// replica). The input is used three ways: as a grant key's value, as a token epoch value, and
// as a gateway key-value object whose decoded value is parsed again.
//   - nothing throws or crashes, whatever the bytes (JSON or not, any type, size, encoding);
//   - an accepted grant has a valid holder label, an id of 1..64 bytes and ttl > 0, and
//     ParseGrantValue(SerializeGrantValue(g)) == g;
//   - an accepted epoch is 1..2^53 and prints back as the same decimal text;
//   - base64 (OpenSSL's codec) round-trips any bytes, and decoding any text never crashes.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/strings.h"
#include "fuzz_check.h"
#include "store/etcd_client.h"
#include "store/etcd_record.h"

namespace {

void CheckGrant(std::string_view value) {
  auto g = lm::store::ParseGrantValue(value);
  if (!g.ok()) return;
  Check(lm::ValidateLabel(g->holder, "holder").ok(), "grant holder label");
  Check(!g->id.empty() && g->id.size() <= 64, "grant id length");
  Check(g->ttl_s > 0, "grant ttl");
  auto back = lm::store::ParseGrantValue(lm::store::SerializeGrantValue(*g));
  Check(back.ok() && back->id == g->id && back->holder == g->holder && back->ttl_s == g->ttl_s &&
            back->acquired_ms == g->acquired_ms && back->expires_ms == g->expires_ms &&
            back->epoch == g->epoch,
        "ParseGrantValue(SerializeGrantValue(g)) != g");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  CheckGrant(in);
  auto epoch = lm::store::ParseEpochValue(in);
  if (epoch.ok()) {
    Check(*epoch >= 1 && *epoch <= (uint64_t{1} << 53), "epoch range");
    Check(std::to_string(*epoch) == in, "epoch text round trip");
  }
  (void)lm::store::Printable(in);
  auto back = lm::store::Base64Decode(lm::store::Base64Encode(in));
  Check(back.ok() && *back == in, "Base64Decode(Base64Encode(x)) != x");
  (void)lm::store::Base64Decode(in);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  auto kv = lm::store::ParseKv(j);
  if (kv.ok()) CheckGrant(kv->value);
  for (const char* f : {"kvs", "events", "header", "result", "value"}) {
    (void)lm::store::JsonArray(j, f);
    (void)lm::store::JsonObject(j, f);
    (void)lm::store::JsonString(j, f);
    (void)lm::store::JsonBool(j, f);
  }
  return 0;
}
