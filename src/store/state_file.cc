#include "store/state_file.h"

#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/strings.h"

namespace lm::store {

using nlohmann::json;

std::string SerializeState(const lock::LockState& state) {
  json j;
  j["version"] = 1;
  j["last_token"] = state.last_token;
  if (state.lease) {
    const auto& l = *state.lease;
    j["lease"] = {{"id", l.id},       {"holder", l.holder},
                  {"token", l.token}, {"ttl_s", l.ttl_s},
                  {"acquired_unix_ms", l.acquired_unix_ms}, {"expires_unix_ms", l.expires_unix_ms}};
  } else {
    j["lease"] = nullptr;
  }
  return j.dump() + "\n";
}

namespace {

template <typename T>
StatusOr<T> Field(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end()) return DataLoss(std::string("state file: missing field '") + name + "'");
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return DataLoss(std::string("state file: '") + name + "' not a string");
    return it->template get<std::string>();
  } else if constexpr (std::is_same_v<T, uint64_t>) {
    if (!it->is_number_unsigned()) {
      return DataLoss(std::string("state file: '") + name + "' not a non-negative integer");
    }
    return it->template get<uint64_t>();
  } else {
    if (!it->is_number_integer()) {
      return DataLoss(std::string("state file: '") + name + "' not an integer");
    }
    return it->template get<int64_t>();
  }
}

template <typename T>
Status Assign(const json& obj, const char* name, T& out) {
  StatusOr<T> v = Field<T>(obj, name);
  if (!v.ok()) return v.status();
  out = std::move(*v);
  return Status::Ok();
}

}  // namespace

StatusOr<lock::LockState> ParseState(std::string_view text) {
  if (text.empty()) return DataLoss("state file is empty (truncated?)");
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return DataLoss("state file is not valid JSON (truncated or corrupt)");
  if (!j.is_object()) return DataLoss("state file: top level is not an object");
  lock::LockState s;
  int64_t version = 0;
  LM_RETURN_IF_ERROR(Assign<int64_t>(j, "version", version));
  if (version != 1) return DataLoss("state file: unsupported version " + std::to_string(version));
  LM_RETURN_IF_ERROR(Assign<uint64_t>(j, "last_token", s.last_token));
  auto lease_it = j.find("lease");
  if (lease_it == j.end()) return DataLoss("state file: missing field 'lease'");
  if (lease_it->is_null()) return s;
  if (!lease_it->is_object()) return DataLoss("state file: 'lease' is not an object");
  const json& lj = *lease_it;
  lock::PersistedLease l;
  LM_RETURN_IF_ERROR(Assign<std::string>(lj, "id", l.id));
  LM_RETURN_IF_ERROR(Assign<std::string>(lj, "holder", l.holder));
  LM_RETURN_IF_ERROR(Assign<uint64_t>(lj, "token", l.token));
  LM_RETURN_IF_ERROR(Assign<int64_t>(lj, "ttl_s", l.ttl_s));
  LM_RETURN_IF_ERROR(Assign<int64_t>(lj, "acquired_unix_ms", l.acquired_unix_ms));
  LM_RETURN_IF_ERROR(Assign<int64_t>(lj, "expires_unix_ms", l.expires_unix_ms));
  if (l.id.empty() || l.id.size() > 64) return DataLoss("state file: lease id has a bad length");
  if (!ValidateLabel(l.holder, "holder").ok()) return DataLoss("state file: bad holder label");
  if (l.token == 0 || l.token > s.last_token) {
    return DataLoss("state file: lease token is not within 1..last_token");
  }
  if (l.ttl_s <= 0 || l.ttl_s > 366LL * 24 * 3600) return DataLoss("state file: bad lease ttl");
  s.lease = std::move(l);
  return s;
}

StatusOr<lock::LockState> StateFile::Load() const {
  StatusOr<std::string> text = ReadSmallFile(path_, kMaxStateFileBytes);
  if (!text.ok()) {
    if (text.status().code() == StatusCode::kNotFound) return lock::LockState{};
    if (text.status().code() == StatusCode::kResourceExhausted) {
      return DataLoss("state file " + path_ + ": " + text.status().message());
    }
    return text.status();
  }
  StatusOr<lock::LockState> s = ParseState(*text);
  if (!s.ok()) return DataLoss(path_ + ": " + s.status().message());
  return s;
}

Status StateFile::Save(const lock::LockState& state) const {
  return WriteFileAtomically(path_, SerializeState(state), 0600);
}

}  // namespace lm::store
