#include "license/claim.h"

#include <nlohmann/json.hpp>

#include "common/strings.h"

namespace lm::license {

using nlohmann::json;

std::string SerializeClaim(const ClaimRecord& c) {
  json j = {{"v", 1},
            {"node", c.node},
            {"pod", c.pod},
            {"token", c.token},
            {"renewals", c.renewals},
            {"claimed_at_ms", c.claimed_at_ms},
            {"renewed_at_ms", c.renewed_at_ms}};
  if (c.exiting) j["exiting"] = true;
  return j.dump() + "\n";
}

namespace {

Status UnsignedField(const json& j, const char* name, uint64_t& out) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_number_unsigned()) {
    return InvalidArgument(std::string("claim: '") + name + "' missing or not a whole number");
  }
  out = it->get<uint64_t>();
  return Status::Ok();
}

Status IntField(const json& j, const char* name, int64_t& out) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_number_integer()) {
    return InvalidArgument(std::string("claim: '") + name + "' missing or not an integer");
  }
  out = it->get<int64_t>();
  return Status::Ok();
}

}  // namespace

StatusOr<ClaimRecord> ParseClaim(std::string_view text) {
  if (text.size() > kMaxClaimBytes) return InvalidArgument("claim: larger than 4096 bytes");
  std::string_view t = Trim(text);
  if (t.empty()) return InvalidArgument("claim: empty");
  ClaimRecord c;
  if (t.front() != '{') {
    // The seed's agent wrote `hostname` (a pod name) and nothing else.
    if (!ValidateLabel(t, "claim").ok()) return InvalidArgument("claim: unrecognised content");
    c.node = std::string(t);
    c.seed_format = true;
    return c;
  }
  json j = json::parse(t, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("claim: malformed JSON");
  auto v = j.find("v");
  if (v == j.end() || !v->is_number_integer() || v->get<int64_t>() != 1) {
    return InvalidArgument("claim: unsupported version");
  }
  auto node = j.find("node");
  if (node == j.end() || !node->is_string()) return InvalidArgument("claim: 'node' missing");
  c.node = node->get<std::string>();
  LM_RETURN_IF_ERROR(ValidateLabel(c.node, "claim node"));
  auto pod = j.find("pod");
  if (pod != j.end()) {
    if (!pod->is_string()) return InvalidArgument("claim: 'pod' not a string");
    c.pod = pod->get<std::string>();
    if (!c.pod.empty()) LM_RETURN_IF_ERROR(ValidateLabel(c.pod, "claim pod"));
  }
  LM_RETURN_IF_ERROR(UnsignedField(j, "token", c.token));
  LM_RETURN_IF_ERROR(UnsignedField(j, "renewals", c.renewals));
  LM_RETURN_IF_ERROR(IntField(j, "claimed_at_ms", c.claimed_at_ms));
  LM_RETURN_IF_ERROR(IntField(j, "renewed_at_ms", c.renewed_at_ms));
  auto exiting = j.find("exiting");
  if (exiting != j.end()) {
    if (!exiting->is_boolean()) return InvalidArgument("claim: 'exiting' not a boolean");
    c.exiting = exiting->get<bool>();
  }
  return c;
}

}  // namespace lm::license
