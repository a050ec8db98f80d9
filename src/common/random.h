// Random identifiers from the kernel's CSPRNG (getrandom, buffered per thread). Thread-safe.
//
//   std::string id = NewUuidV4();   // "1b4e28ba-2fa1-4d2e-883f-0016d3cca427"
//   uint64_t r = RandomU64();       // e.g. for backoff jitter
#pragma once

#include <cstdint>
#include <string>

namespace lm {

std::string NewUuidV4();
uint64_t RandomU64();
// True if s has the canonical lowercase 8-4-4-4-12 hex form.
bool LooksLikeUuid(const std::string& s);

}  // namespace lm
