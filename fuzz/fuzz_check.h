// Check(): a property a fuzz target asserts; a violation aborts, which libFuzzer reports as a
// crash and saves the input. Header-only, for the targets in this folder.
//
//   Check(back.ok() && *back == c, "ParseClaim(SerializeClaim(c)) != c");
#pragma once

#include <cstdio>
#include <cstdlib>

inline void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz target: property violated: %s\n", what);
    std::abort();
  }
}
