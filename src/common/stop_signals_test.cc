#include "common/stop_signals.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <boost/asio/post.hpp>

#include <chrono>
#include <optional>

namespace lm {
namespace {

// Blocks the stop signals for one test and restores the old mask afterwards.
class StopSignalsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pthread_sigmask(SIG_SETMASK, nullptr, &old_);
    BlockStopSignals();
  }
  void TearDown() override { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  sigset_t old_;
};

TEST_F(StopSignalsTest, TheSetIsTermIntAndHup) {
  sigset_t set = StopSignals();
  EXPECT_EQ(sigismember(&set, SIGTERM), 1);
  EXPECT_EQ(sigismember(&set, SIGINT), 1);
  EXPECT_EQ(sigismember(&set, SIGHUP), 1);
  EXPECT_EQ(sigismember(&set, SIGKILL), 0);
  EXPECT_EQ(sigismember(&set, SIGUSR1), 0);
}

TEST_F(StopSignalsTest, BlockingMakesTheSignalWaitInsteadOfKilling) {
  sigset_t mask;
  pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  EXPECT_EQ(sigismember(&mask, SIGTERM), 1);
  EXPECT_EQ(sigismember(&mask, SIGHUP), 1);
}

// Signals are raised on this thread (raise: the test binary may have other threads without the
// block). A signal sent before the reader exists (right after the port file appears) is read.
TEST_F(StopSignalsTest, ASignalSentBeforeTheReaderOpensIsRead) {
  ASSERT_EQ(raise(SIGHUP), 0);
  boost::asio::io_context io;
  std::optional<int> got;
  auto reader = StopSignalReader::Open(io, [&](int sig) { got = sig; });
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  io.run_for(std::chrono::seconds(5));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, SIGHUP);
}

TEST_F(StopSignalsTest, ASignalSentWhileRunningIsReadOnceOnTheIoThread) {
  boost::asio::io_context io;
  int calls = 0;
  int got = 0;
  auto reader = StopSignalReader::Open(io, [&](int sig) {
    ++calls;
    got = sig;
  });
  ASSERT_TRUE(reader.ok());
  boost::asio::post(io, [] { raise(SIGTERM); });
  io.run_for(std::chrono::seconds(5));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(got, SIGTERM);
  // A second signal is not read (the program is already stopping); it stays pending, blocked.
  ASSERT_EQ(raise(SIGINT), 0);
  io.restart();
  io.run_for(std::chrono::milliseconds(50));
  EXPECT_EQ(calls, 1);
  sigset_t pending;
  sigpending(&pending);
  EXPECT_EQ(sigismember(&pending, SIGINT), 1);
  sigset_t take;
  sigemptyset(&take);
  sigaddset(&take, SIGINT);
  int sig = 0;
  sigwait(&take, &sig);  // leave nothing pending for the next test
  EXPECT_EQ(sig, SIGINT);
}

TEST_F(StopSignalsTest, NoCallbackAfterCancel) {
  boost::asio::io_context io;
  int calls = 0;
  auto reader = StopSignalReader::Open(io, [&](int) { ++calls; });
  ASSERT_TRUE(reader.ok());
  (*reader)->Cancel();
  (*reader)->Cancel();  // idempotent
  ASSERT_EQ(raise(SIGTERM), 0);
  io.run_for(std::chrono::milliseconds(50));
  EXPECT_EQ(calls, 0);
  sigset_t take = StopSignals();
  int sig = 0;
  sigwait(&take, &sig);
  EXPECT_EQ(sig, SIGTERM);
}

}  // namespace
}  // namespace lm
