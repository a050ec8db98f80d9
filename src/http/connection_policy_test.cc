// The connection's pure policies: its deadlines (http/deadlines.h) and when it reads its next
// request at once (http/read_pacer.h). No sockets, no clocks: times are made up.
#include <gtest/gtest.h>

#include "http/deadlines.h"
#include "http/read_pacer.h"

namespace lm::http {
namespace {

using namespace std::chrono_literals;

const Timeouts kTimeouts{.read = 10s, .idle = 60s, .write = 5s, .trim = 1s};
const SteadyTime kT0 = SteadyTime(std::chrono::hours(1));

TEST(ConnectionDeadlines, NothingExpiresBeforeAPhaseStarts) {
  ConnectionDeadlines d(kTimeouts);
  EXPECT_FALSE(d.Expired(kT0 + std::chrono::hours(10000)));
}

TEST(ConnectionDeadlines, EachPhaseExpiresAfterItsOwnTimeout) {
  ConnectionDeadlines d(kTimeouts);
  d.StartIdle(kT0);
  EXPECT_FALSE(d.Expired(kT0 + 60s - 1ms));
  EXPECT_TRUE(d.Expired(kT0 + 60s));
  d.StartRead(kT0);
  EXPECT_FALSE(d.Expired(kT0 + 10s - 1ms));
  EXPECT_TRUE(d.Expired(kT0 + 10s));
  d.StartWrite(kT0);
  EXPECT_FALSE(d.Expired(kT0 + 5s - 1ms));
  EXPECT_TRUE(d.Expired(kT0 + 5s));
}

TEST(ConnectionDeadlines, AHandledRequestHasNoDeadline) {
  ConnectionDeadlines d(kTimeouts);
  d.StartRead(kT0);
  d.None();
  EXPECT_FALSE(d.Expired(kT0 + std::chrono::hours(10000)));
}

TEST(ConnectionDeadlines, TrimIsDueOnceIdleForTrimAfterCountedFromTheLastStartIdle) {
  ConnectionDeadlines d(kTimeouts);
  d.StartIdle(kT0);
  EXPECT_FALSE(d.TrimDue(kT0 + 1s - 1ms));
  EXPECT_TRUE(d.TrimDue(kT0 + 1s));
  d.StartIdle(kT0 + 5s);
  EXPECT_FALSE(d.TrimDue(kT0 + 5s + 999ms));
}

TEST(ReadPacer, ReadsAtOnceWhileReadsFindTheNextRequest) {
  ReadPacer p;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(p.ReadAtOnce());
    p.OnRead(/*found_nothing=*/false);
  }
}

// Misses in a row make the next 1, 3, 7, then at most 15 responses wait first.
TEST(ReadPacer, WaitsFirstForLongerAfterEachMissUpToFifteen) {
  ReadPacer p;
  for (int skipped : {1, 3, 7, 15, 15}) {
    ASSERT_TRUE(p.ReadAtOnce());
    p.OnRead(/*found_nothing=*/true);
    for (int i = 0; i < skipped; ++i) EXPECT_FALSE(p.ReadAtOnce()) << skipped << " " << i;
  }
}

TEST(ReadPacer, AHitStartsOver) {
  ReadPacer p;
  for (int i = 0; i < 3; ++i) {  // a streak of 3: 7 waits
    ASSERT_TRUE(p.ReadAtOnce());
    p.OnRead(true);
    while (!p.ReadAtOnce()) {
    }
  }
  p.OnRead(false);  // the read at once after the waits found a request
  ASSERT_TRUE(p.ReadAtOnce());
  p.OnRead(true);
  EXPECT_FALSE(p.ReadAtOnce());  // one wait only
  EXPECT_TRUE(p.ReadAtOnce());
}

TEST(ReadPacer, OnlyTheReadAfterReadAtOnceCounts) {
  ReadPacer p;
  p.OnRead(true);  // a read inside a request: not counted
  p.OnRead(true);
  EXPECT_TRUE(p.ReadAtOnce());
}

}  // namespace
}  // namespace lm::http
