// ReadPacer: after a response, whether a connection reads its next request at once or waits for
// readability first. Pure policy, no I/O. Not thread-safe: one connection's event loop.
//
//   if (pacer.ReadAtOnce()) n = Read(ec); else return WaitReadable();
//   pacer.OnRead(/*found_nothing=*/ec == would_block);
//
// A client that waits for each answer is often already done sending its next request when the
// server gets here, so a read at once takes it with one system call where a readiness wait costs
// more (docs/architecture.md, "After a response"). A read that finds nothing is one wasted call, so
// after a miss the next responses wait first: 1 after one miss, then 3, 7 and at most 15 while the
// misses go on; a hit starts over. A client that never has its next request ready costs one
// wasted read per 16 requests.
#pragma once

#include <algorithm>

namespace lm::http {

class ReadPacer {
 public:
  static constexpr int kMaxMissStreak = 4;

  // Asked once after each response the connection sent while dispatching its request: true to
  // read now (then report the read with OnRead), false to wait for readability first.
  bool ReadAtOnce() {
    if (skip_ == 0) {
      trying_ = true;
      return true;
    }
    --skip_;
    return false;
  }

  // The outcome of the connection's next read; counts only after ReadAtOnce() said true.
  void OnRead(bool found_nothing) {
    if (!trying_) return;
    trying_ = false;
    if (found_nothing) {
      miss_streak_ = std::min(miss_streak_ + 1, kMaxMissStreak);
      skip_ = (1 << miss_streak_) - 1;
    } else {
      miss_streak_ = 0;
    }
  }

 private:
  bool trying_ = false;  // the read after a response has not been reported yet
  int skip_ = 0;         // responses left that wait before reading
  int miss_streak_ = 0;  // reads at once that found nothing, in a row
};

}  // namespace lm::http
