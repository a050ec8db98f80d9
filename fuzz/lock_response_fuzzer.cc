// The agent's view of a tokenmgr answer: ParseLockResponse(status, body). tokenmgr (or whatever
// answers at TOKENMGR_URL) is not trusted to be well-formed.
// Input: 2 bytes choose the status (a few real ones or any 100..599), the rest is the body.
//   - never crashes; a grant it accepts has a 1..64 byte id and a non-zero token, and only a
//     200 yields a grant.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "client/tokenmgr_client.h"

#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int kCommon[] = {200, 200, 200, 200, 409, 503, 401, 404};
  int status = 200;
  if (size >= 2) {
    status = data[0] < 128 ? kCommon[data[0] % 8] : 100 + (data[0] * 256 + data[1]) % 500;
    data += 2;
    size -= 2;
  }
  std::string body(reinterpret_cast<const char*>(data), size);
  auto g = lm::client::ParseLockResponse(status, body);
  if (g.ok()) {
    Check(status == 200, "grant from a non-200 answer");
    Check(!g->id.empty() && g->id.size() <= 64, "grant id length");
    Check(g->token != 0, "grant without a fencing token");
  }
  return 0;
}
