// The claim record (`<pool>/<license>/lockedby`), written by other nodes and the seed's agent.
//   - ParseClaim never crashes, and anything it accepts round-trips:
//     ParseClaim(SerializeClaim(c)) == c (for our JSON format);
//   - a seed-format claim is the trimmed text and a valid label;
//   - a record built from fuzzed fields that SerializeClaim writes is parsed back unchanged
//     (serialising must not throw, e.g. on bytes that are not UTF-8).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/strings.h"
#include "license/claim.h"

#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lm::license;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto c = ParseClaim(in);
  if (c.ok()) {
    Check(lm::ValidateLabel(c->node, "node").ok(), "accepted claim with a bad node");
    if (c->seed_format) {
      Check(c->node == lm::Trim(in), "seed claim is not the trimmed text");
    } else {
      std::string text = SerializeClaim(*c);
      Check(text.size() <= kMaxClaimBytes, "serialised claim exceeds kMaxClaimBytes");
      auto back = ParseClaim(text);
      Check(back.ok() && *back == *c, "ParseClaim(SerializeClaim(c)) != c");
    }
  }

  // The other direction: fields from the fuzzer, as the agent would fill them.
  FuzzedDataProvider p(data, size);
  ClaimRecord r;
  r.node = p.ConsumeRandomLengthString(300);
  r.pod = p.ConsumeRandomLengthString(300);
  r.token = p.ConsumeIntegral<uint64_t>();
  r.renewals = p.ConsumeIntegral<uint64_t>();
  r.claimed_at_ms = p.ConsumeIntegral<int64_t>();
  r.renewed_at_ms = p.ConsumeIntegral<int64_t>();
  if (lm::ValidateLabel(r.node, "node").ok() &&
      (r.pod.empty() || lm::ValidateLabel(r.pod, "pod").ok())) {
    auto back = ParseClaim(SerializeClaim(r));
    Check(back.ok() && *back == r, "a valid record does not round-trip");
  }
  return 0;
}
