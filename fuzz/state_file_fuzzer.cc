// tokenmgr's state file (last fencing token and the lease), read at start-up, either format.
//   - DecodeStateFile never crashes; whatever it accepts satisfies the invariants start-up
//     relies on (lease token within 1..last_token, id 1..64 bytes, valid holder, ttl > 0);
//   - ParseState(SerializeState(s)) == s, and serialising is a fixed point;
//   - a slot written by EncodeStateSlot decodes to the same state and sequence.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/strings.h"
#include "store/state_file.h"

#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto d = lm::store::DecodeStateFile(in);
  if (!d.ok()) return 0;
  const lm::lock::LockState& s = d->state;
  if (s.lease) {
    const auto& l = *s.lease;
    Check(l.token >= 1 && l.token <= s.last_token, "lease token outside 1..last_token");
    Check(!l.id.empty() && l.id.size() <= 64, "lease id length");
    Check(lm::ValidateLabel(l.holder, "holder").ok(), "lease holder label");
    Check(l.ttl_s > 0, "lease ttl");
  }
  std::string text = lm::store::SerializeState(s);
  auto back = lm::store::ParseState(text);
  Check(back.ok() && *back == s, "ParseState(SerializeState(s)) != s");
  Check(lm::store::SerializeState(*back) == text, "SerializeState is not a fixed point");
  const uint64_t seq = d->seq + 1;
  auto slot = lm::store::EncodeStateSlot(seq, s);
  Check(slot.ok() && slot->size() == lm::store::kStateSlotBytes, "a valid state fits a slot");
  std::string file = seq % 2 ? std::string(lm::store::kStateSlotBytes, '\n') + *slot
                             : *slot + std::string(lm::store::kStateSlotBytes, '\n');
  auto again = lm::store::DecodeStateFile(file);
  Check(again.ok() && again->state == s && again->seq == seq && !again->legacy,
        "EncodeStateSlot does not round-trip");
  return 0;
}
