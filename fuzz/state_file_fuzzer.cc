// tokenmgr's state file (last fencing token and the lease), read at start-up.
//   - ParseState never crashes; whatever it accepts satisfies the invariants start-up relies on
//     (lease token within 1..last_token, id 1..64 bytes, valid holder, ttl > 0);
//   - ParseState(SerializeState(s)) == s, and serialising is a fixed point.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/strings.h"
#include "store/state_file.h"

#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto s = lm::store::ParseState(in);
  if (!s.ok()) return 0;
  if (s->lease) {
    const auto& l = *s->lease;
    Check(l.token >= 1 && l.token <= s->last_token, "lease token outside 1..last_token");
    Check(!l.id.empty() && l.id.size() <= 64, "lease id length");
    Check(lm::ValidateLabel(l.holder, "holder").ok(), "lease holder label");
    Check(l.ttl_s > 0, "lease ttl");
  }
  std::string text = lm::store::SerializeState(*s);
  auto back = lm::store::ParseState(text);
  Check(back.ok() && *back == *s, "ParseState(SerializeState(s)) != s");
  Check(lm::store::SerializeState(*back) == text, "SerializeState is not a fixed point");
  return 0;
}
