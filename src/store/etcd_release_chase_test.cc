// EtcdReleaseChase on FakeEtcd with simulated time (the lock service's use of it is tested in
// etcd_lock_service_test.cc).
#include "store/etcd_release_chase.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "common/time_system.h"
#include "store/testing/fake_etcd.h"

namespace lm::store {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class EtcdReleaseChaseTest : public ::testing::Test {
 protected:
  void Run(milliseconds d) { time_.AdvanceAndRun(d, io_); }
  int64_t PutKey() {
    etcd_.Put(kKey, "grant");
    return etcd_.Get(kKey)->mod_revision;
  }

  static constexpr const char* kKey = "/t/lock/a";
  SimulatedTimeSystem time_;
  boost::asio::io_context io_;
  FakeEtcd etcd_{time_, io_.get_executor()};
  std::unique_ptr<FakeEtcdClient> client_ = etcd_.NewClient("replica");
  EtcdReleaseChase chase_{time_, io_.get_executor(), *client_, milliseconds(500),
                          milliseconds(250)};
};

TEST_F(EtcdReleaseChaseTest, AnUnansweredReleaseIsChasedAndDeletesOnlyItsVersion) {
  const int64_t v1 = PutKey();
  int released = 0;
  chase_.Sent(kKey, v1, time_.Now() + seconds(10), [&] { ++released; });
  Run(milliseconds(400));
  EXPECT_TRUE(etcd_.Get(kKey).has_value());  // not before the hedge
  Run(milliseconds(200));
  EXPECT_FALSE(etcd_.Get(kKey).has_value());
  EXPECT_EQ(released, 1);
  EXPECT_EQ(chase_.pending(), 0u);
  PutKey();  // a newer version: no chase is left to delete it
  Run(seconds(2));
  EXPECT_TRUE(etcd_.Get(kKey).has_value());
}

TEST_F(EtcdReleaseChaseTest, ANewerVersionAnswersTheOlderReleaseThatWaitedForItsChases) {
  const int64_t v1 = PutKey();
  int released = 0;
  chase_.Sent(kKey, v1, time_.Now() + seconds(10), [&] { ++released; });
  client_->SetAnswerDelay(milliseconds(300));
  Run(milliseconds(500));  // the first chase is sent (it deletes v1; its answer is late)
  ASSERT_FALSE(etcd_.Get(kKey).has_value());
  std::optional<bool> then;
  chase_.NotApplied(kKey, [&](bool unknown) { then = unknown; });  // the release's own txn
  EXPECT_FALSE(then.has_value());  // waits for the chase in flight
  // Two handoffs later the key is back (lock/a, lock/b, lock/a) and its release is sent before
  // the old chase's answer came: the old release must still be answered.
  const int64_t v2 = PutKey();
  chase_.Sent(kKey, v2, time_.Now() + seconds(10), [] {});
  Run(milliseconds(0));
  ASSERT_TRUE(then.has_value());
  EXPECT_TRUE(*then);  // that version is gone, by the chase or not: unknown
  client_->SetAnswerDelay(milliseconds(0));
  Run(milliseconds(400));  // the old chase's answer: about another version, ignored
  EXPECT_EQ(released, 0);
  chase_.Settled(kKey);
  EXPECT_EQ(chase_.pending(), 0u);
  EXPECT_TRUE(etcd_.Get(kKey).has_value());  // v2 was never chased
}

}  // namespace
}  // namespace lm::store
