#include "store/state_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <boost/crc.hpp>
#include <cerrno>
#include <cinttypes>
#include <cstdio>

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

namespace {

constexpr std::string_view kSlotMagic = "lmstate2 ";
// "lmstate2 seq=%020llu len=%05zu crc=%08x\n": the CRC covers everything before " crc=" and
// the JSON, so a slot's sequence and length are protected too.
constexpr size_t kHeaderPrefixBytes = 9 + 24 + 1 + 9;  // "lmstate2 " "seq=<20>" " " "len=<5>"
constexpr size_t kHeaderBytes = kHeaderPrefixBytes + 14;  // " crc=<8>\n"

uint32_t SlotCrc(std::string_view prefix, std::string_view json) {
  boost::crc_32_type crc;
  crc.process_bytes(prefix.data(), prefix.size());
  crc.process_bytes(json.data(), json.size());
  return crc.checksum();
}

enum class SlotResult { kValid, kUnwritten, kTorn, kHostile };

// A slot never written (newline padding) is skipped silently; a torn slot (crash mid-write) is
// skipped with the reason in `why`; a slot whose CRC matches but whose state is invalid is not
// something tokenmgr writes: DATA_LOSS.
SlotResult DecodeSlot(std::string_view slot, uint64_t& seq, lock::LockState& out,
                      std::string& why) {
  if (slot.find_first_not_of('\n') == std::string_view::npos) return SlotResult::kUnwritten;
  why = "torn (bad header or checksum)";
  if (slot.size() < kHeaderBytes || slot.substr(0, kSlotMagic.size()) != kSlotMagic) {
    return SlotResult::kTorn;
  }
  unsigned long long s = 0;
  unsigned len = 0, crc = 0;
  int used = 0;
  std::string header(slot.substr(0, kHeaderBytes));
  if (std::sscanf(header.c_str(), "lmstate2 seq=%20llu len=%5u crc=%8x\n%n", &s, &len, &crc,
                  &used) != 3 ||
      used != static_cast<int>(kHeaderBytes) || len > slot.size() - kHeaderBytes) {
    return SlotResult::kTorn;
  }
  std::string_view json = slot.substr(kHeaderBytes, len);
  if (SlotCrc(slot.substr(0, kHeaderPrefixBytes), json) != crc) return SlotResult::kTorn;
  StatusOr<lock::LockState> st = ParseState(json);
  if (!st.ok() || s == 0) {
    why = st.ok() ? "slot sequence 0" : st.status().message();
    return SlotResult::kHostile;
  }
  seq = s;
  out = std::move(*st);
  return SlotResult::kValid;
}

}  // namespace

StatusOr<std::string> EncodeStateSlot(uint64_t seq, const lock::LockState& state) {
  std::string json = SerializeState(state);
  if (json.size() > kStateSlotBytes - kHeaderBytes) {
    return ResourceExhausted("state does not fit a " + std::to_string(kStateSlotBytes) +
                             "-byte slot");
  }
  char prefix[kHeaderPrefixBytes + 1];
  std::snprintf(prefix, sizeof prefix, "lmstate2 seq=%020" PRIu64 " len=%05zu", seq, json.size());
  char crc[16];
  std::snprintf(crc, sizeof crc, " crc=%08x\n",
                static_cast<unsigned>(SlotCrc({prefix, kHeaderPrefixBytes}, json)));
  std::string slot(prefix, kHeaderPrefixBytes);
  slot += crc;
  slot += json;
  slot.resize(kStateSlotBytes, '\n');
  return slot;
}

StatusOr<DecodedStateFile> DecodeStateFile(std::string_view content) {
  DecodedStateFile out;
  auto starts_slot = [&](size_t at) {
    return content.size() >= at + kSlotMagic.size() &&
           content.substr(at, kSlotMagic.size()) == kSlotMagic;
  };
  if (!starts_slot(0) && !starts_slot(kStateSlotBytes)) {
    // Format 1: one JSON object (or garbage, which ParseState names).
    StatusOr<lock::LockState> s = ParseState(content);
    if (!s.ok()) return s.status();
    out.state = std::move(*s);
    out.legacy = true;
    return out;
  }
  if (content.size() != 2 * kStateSlotBytes) {
    return DataLoss("state file: " + std::to_string(content.size()) + " bytes, expected " +
                    std::to_string(2 * kStateSlotBytes) + " (truncated or corrupt)");
  }
  bool found = false;
  for (size_t i = 0; i < 2; ++i) {
    uint64_t seq = 0;
    lock::LockState st;
    std::string why;
    switch (DecodeSlot(content.substr(i * kStateSlotBytes, kStateSlotBytes), seq, st, why)) {
      case SlotResult::kUnwritten:
        break;
      case SlotResult::kTorn:
        out.problems.push_back("slot " + std::to_string(i) + " " + why);
        break;
      case SlotResult::kHostile:
        return DataLoss("state file: slot " + std::to_string(i) + ": " + why);
      case SlotResult::kValid:
        if (found && seq == out.seq) return DataLoss("state file: two slots share a sequence");
        if (!found || seq > out.seq) {
          out.seq = seq;
          out.slot = static_cast<int>(i);
          out.state = std::move(st);
        }
        found = true;
        break;
    }
  }
  if (!found) return DataLoss("state file: no intact slot (truncated or corrupt)");
  if (!out.problems.empty()) {
    out.problems.back() += "; used slot " + std::to_string(out.slot) + " (sequence " +
                           std::to_string(out.seq) + "), which may be one change older";
  }
  return out;
}

StateFile::~StateFile() { CloseFd(); }

void StateFile::CloseFd() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

StatusOr<lock::LockState> StateFile::Load() {
  StatusOr<std::string> text = ReadSmallFile(path_, kMaxStateFileBytes);
  if (!text.ok()) {
    if (text.status().code() == StatusCode::kNotFound) return lock::LockState{};
    if (text.status().code() == StatusCode::kResourceExhausted) {
      return DataLoss("state file " + path_ + ": " + text.status().message() + ". " +
                      std::string(kStateRecoveryHint));
    }
    return text.status();
  }
  StatusOr<DecodedStateFile> d = DecodeStateFile(*text);
  if (!d.ok()) {
    return DataLoss(path_ + ": " + d.status().message() + ". " + std::string(kStateRecoveryHint));
  }
  seq_ = d->seq;
  // The first Save re-creates the file this process then updates in place (and converts
  // format 1).
  CloseFd();
  lock::LockState state = d->state;
  last_load_ = std::move(*d);
  return state;
}

Status StateFile::Recreate(const lock::LockState& state) {
  CloseFd();
  uint64_t seq = seq_ + 1;
  StatusOr<std::string> slot = EncodeStateSlot(seq, state);
  if (!slot.ok()) return slot.status();
  std::string content(2 * kStateSlotBytes, '\n');
  content.replace((seq % 2) * kStateSlotBytes, kStateSlotBytes, *slot);
  StatusOr<int> fd = CreateFileAtomically(path_, content, 0600);
  if (!fd.ok()) return fd.status();
  fd_ = *fd;
  seq_ = seq;
  return Status::Ok();
}

Status StateFile::Save(const lock::LockState& state) {
  if (fd_ >= 0) {
    // Deleted or replaced (renamed over) while open: writing to the orphan would be lost.
    struct stat st;
    if (::fstat(fd_, &st) != 0 || st.st_nlink == 0) CloseFd();
  }
  if (fd_ < 0) return Recreate(state);
  uint64_t seq = seq_ + 1;
  StatusOr<std::string> slot = EncodeStateSlot(seq, state);
  if (!slot.ok()) return slot.status();
  const off_t offset = static_cast<off_t>((seq % 2) * kStateSlotBytes);
  size_t done = 0;
  while (done < slot->size()) {
    ssize_t n = ::pwrite(fd_, slot->data() + done, slot->size() - done,
                         offset + static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      CloseFd();  // the next save starts over with a fresh file
      return Unavailable(ErrnoMessage("write", path_, err));
    }
    done += static_cast<size_t>(n);
  }
  if (::fdatasync(fd_) != 0) {
    int err = errno;
    CloseFd();  // after a failed flush the page cache cannot be trusted (fsyncgate)
    return Unavailable(ErrnoMessage("fdatasync", path_, err));
  }
  seq_ = seq;
  return Status::Ok();
}

}  // namespace lm::store
