#include "tokenmgr/lock_api.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

#include "common/time_system.h"

namespace lm::tokenmgr {
namespace {

using ::testing::HasSubstr;

// A store that is never asked: these tests cover what LockApi decides before asking.
class NoLock : public lock::LockService {
 public:
  CancelFn Acquire(lock::AcquireRequest, GrantDone) override {
    return [] {};
  }
  void Release(std::string_view, StatusDone) override {}
  void Renew(std::string, lock::Seconds, GrantDone) override {}
  void GetView(ViewDone) override {}
  lock::Counters CountersSnapshot() const override { return {}; }
  bool Ready() const override { return true; }
  void Shutdown() override {}
  const lock::Options& options() const override { return options_; }
  lock::Options options_;
};

// Captures what is logged while it lives.
class LogCapture {
 public:
  LogCapture() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

class LockApiTest : public ::testing::Test {
 protected:
  NoLock store_;
  SimulatedTimeSystem time_;
  LockApi api_{store_, time_, {.auth_token = "s3cret"}};
};

TEST_F(LockApiTest, BearerSchemeIsCaseInsensitive) {
  EXPECT_TRUE(api_.Authorized("Bearer s3cret"));
  EXPECT_TRUE(api_.Authorized("bearer s3cret"));
  EXPECT_TRUE(api_.Authorized("BEARER  s3cret"));
  EXPECT_FALSE(api_.Authorized("Basic s3cret"));
  EXPECT_FALSE(api_.Authorized("Bearers3cret"));
  EXPECT_FALSE(api_.Authorized("bearer S3cret"));  // the token itself is exact
  EXPECT_FALSE(api_.Authorized("bearer "));
}

TEST_F(LockApiTest, WithoutATokenEveryoneIsAuthorized) {
  LockApi open(store_, time_, {});
  EXPECT_FALSE(open.auth_enabled());
  EXPECT_TRUE(open.Authorize("", http::Request{}).ok());
}

TEST_F(LockApiTest, RefusalsAreLoggedOncePerTenSecondsOfTheInjectedClock) {
  LogCapture log;
  http::Request req;
  req.method = "POST";
  req.path = "/api/token/release/secret-lease-id";
  req.remote_address = "10.0.0.9";
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(api_.Authorize("Bearer wrong", req).code(), StatusCode::kUnauthenticated);
  }
  time_.Advance(std::chrono::seconds(10));
  EXPECT_EQ(api_.Authorize("", req).code(), StatusCode::kUnauthenticated);
  std::string text = log.text();
  EXPECT_THAT(text, HasSubstr("refused POST /api/token/release/… from 10.0.0.9: 401, wrong"));
  EXPECT_THAT(text, HasSubstr("401, no bearer token (2 more 401s since the last such line)"));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("secret-lease-id")));
}

TEST_F(LockApiTest, ArgumentErrorsNameTheField) {
  store_.options_.max_wait = lock::Seconds(300);
  store_.options_.max_ttl = lock::Seconds(3600);
  EXPECT_EQ(*api_.ParseWait("0"), lock::Seconds(0));
  EXPECT_THAT(api_.ParseWait("301").status().message(), HasSubstr("timeout is 301"));
  EXPECT_THAT(api_.ParseWait("5?ttl=1").status().message(), HasSubstr("timeout must be"));
  EXPECT_EQ(*api_.ParseTtl("30"), lock::Seconds(30));
  EXPECT_EQ(api_.ParseTtl("0").status().message(), "ttl must be at least 1 second");
  EXPECT_THAT(api_.ParseTtl("3601").status().message(), HasSubstr("ttl is 3601"));
  EXPECT_TRUE(LockApi::CheckHolder("gpu-node-7").ok());
  EXPECT_THAT(LockApi::CheckHolder("my node").message(), HasSubstr("holder"));
}

}  // namespace
}  // namespace lm::tokenmgr
