#include "common/random.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <cstdlib>

namespace lm {

namespace {
void FillRandom(unsigned char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(buf + got, n - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      std::perror("getrandom");
      std::abort();  // no entropy means no safe lock ids: a broken invariant
    }
    got += static_cast<size_t>(r);
  }
}
// Kernel randomness fetched 256 bytes at a time per thread: one getrandom per 16 lock ids
// instead of one each. Bytes are handed out once and wiped as they are used.
void TakeRandom(unsigned char* out, size_t n) {
  thread_local unsigned char pool[256];
  thread_local size_t pos = sizeof pool;
  for (size_t i = 0; i < n; ++i) {
    if (pos == sizeof pool) {
      FillRandom(pool, sizeof pool);
      pos = 0;
    }
    out[i] = pool[pos];
    pool[pos++] = 0;
  }
}
}  // namespace

std::string NewUuidV4() {
  unsigned char b[16];
  TakeRandom(b, sizeof b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  static constexpr char kHex[] = "0123456789abcdef";
  char out[36];
  size_t n = 0;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[n++] = '-';
    out[n++] = kHex[b[i] >> 4];
    out[n++] = kHex[b[i] & 0x0f];
  }
  return std::string(out, n);
}

uint64_t RandomU64() {
  uint64_t v;
  TakeRandom(reinterpret_cast<unsigned char*>(&v), sizeof v);
  return v;
}

bool LooksLikeUuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

}  // namespace lm
