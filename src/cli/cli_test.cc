#include "cli/cli.h"

#include <gtest/gtest.h>

#include <map>
#include <sstream>

#include "cli/table.h"

namespace lm::cli {
namespace {

using namespace std::chrono_literals;

// Answers from a table of "METHOD path" -> reply; records every call.
class FakeApi final : public Api {
 public:
  StatusOr<client::ApiReply> Call(const std::string& method, const std::string& path,
                                  const std::string& body) override {
    calls.push_back(method + " " + path);
    if (down) return Unavailable("connection refused");
    auto it = replies.find(method + " " + path);
    if (it == replies.end()) return client::ApiReply{404, R"({"Error": "Resource not found"})"};
    return it->second;
  }
  bool down = false;
  std::map<std::string, client::ApiReply> replies;
  std::vector<std::string> calls;
};

class CliTest : public ::testing::Test {
 protected:
  int RunWords(const std::vector<std::string>& words) {
    out_.str("");
    err_.str("");
    auto c = ParseCommand(words);
    if (!c.ok()) {
      err_ << c.status().message();
      return kUsage;
    }
    return cli::Run(*c, api_, clock_, sleeper_, out_, err_);
  }
  FakeApi api_;
  FakeClock clock_;
  FakeSleeper sleeper_{clock_};
  std::ostringstream out_, err_;
};

TEST_F(CliTest, NodesPrintsAnAlignedTableWithAges) {
  const long long now = UnixMillis(clock_.WallNow());
  api_.replies["GET /api/nodes"] = {
      200, R"({"nodes":[{"node":"gpu-1","pod":"p1","state":"waiting","license":null,"since_ms":)" +
               std::to_string(now - 125000) + R"(,"last_seen_ms":)" + std::to_string(now - 2000) +
               R"(,"version":"1.0.0"},{"node":"gpu-22","pod":"p2","state":"held","license":"license3",)"
               R"("since_ms":)" + std::to_string(now - 3600000) + R"(,"last_seen_ms":)" +
               std::to_string(now) + R"(,"version":"1.0.0"}],"totals":{}})"};
  EXPECT_EQ(RunWords({"nodes"}), kOk) << err_.str();
  EXPECT_EQ(out_.str(),
            "NODE     STATE     LICENSE    FOR    LAST SEEN   POD   VERSION\n"
            "gpu-1    waiting              2m5s   2s ago      p1    1.0.0\n"
            "gpu-22   held      license3   1h     0s ago      p2    1.0.0\n");
}

TEST_F(CliTest, LicensesSayWhichAreDisabled) {
  api_.replies["GET /api/licenses"] = {
      200, R"({"configured":true,"licenses":[{"name":"license1","state":"free","disabled":true},)"
           R"({"name":"license2","state":"free","disabled":false}],"totals":{}})"};
  EXPECT_EQ(RunWords({"licenses"}), kOk) << err_.str();
  EXPECT_NE(out_.str().find("license1   disabled, free"), std::string::npos) << out_.str();
  EXPECT_NE(out_.str().find("license2   free"), std::string::npos) << out_.str();
}

TEST_F(CliTest, JsonOutputIsTheServersDocument) {
  api_.replies["GET /api/nodes"] = {200, R"({"nodes":[],"totals":{"held":0}})"};
  EXPECT_EQ(RunWords({"nodes", "-o", "json"}), kOk);
  EXPECT_NE(out_.str().find("\"totals\""), std::string::npos);
}

TEST_F(CliTest, CordonPostsToTheNodeAndSaysWhatItDid) {
  api_.replies["POST /api/nodes/gpu-7/cordon"] = {200, R"({"node":"gpu-7","cordoned":true})"};
  EXPECT_EQ(RunWords({"cordon", "gpu-7"}), kOk);
  EXPECT_EQ(out_.str(), "node/gpu-7 cordoned\n");
  api_.replies["POST /api/licenses/license3/disable"] = {200, "{}"};
  EXPECT_EQ(RunWords({"disable", "license3"}), kOk);
  EXPECT_EQ(out_.str(), "license/license3 disabled\n");
}

TEST_F(CliTest, ExitCodesSayWhatWentWrong) {
  EXPECT_EQ(RunWords({"cordon", "nobody"}), kNotFound);
  EXPECT_NE(err_.str().find("tokenmgr nodes"), std::string::npos) << err_.str();
  api_.replies["POST /api/nodes/n1/cordon"] = {401, R"({"Error":"missing bearer token"})"};
  EXPECT_EQ(RunWords({"cordon", "n1"}), kDenied);
  EXPECT_NE(err_.str().find("--token-file"), std::string::npos) << err_.str();
  api_.replies["GET /api/nodes"] = {503, R"({"Error":"etcd unavailable"})"};
  EXPECT_EQ(RunWords({"nodes"}), kFailed);
  EXPECT_NE(err_.str().find("etcd unavailable"), std::string::npos);
  api_.down = true;
  EXPECT_EQ(RunWords({"nodes"}), kUnreachable);
  EXPECT_NE(err_.str().find("TOKENMGR_URL"), std::string::npos);
}

TEST_F(CliTest, BadCommandLinesAreUsageErrorsThatSayWhatToType) {
  for (std::vector<std::string> bad :
       {std::vector<std::string>{"nodez"}, {"cordon"}, {"cordon", "a", "b"}, {"cordon", "bad name"},
        {"nodes", "-o", "yaml"}, {"nodes", "--follow"}, {"events", "--limit", "x"},
        {"events", "--limit", "5000"}, {"nodes", "--from", "-1h"}, {"events", "--bogus"},
        {"nodes", "extra"}, {"events", "--after"}}) {
    EXPECT_EQ(RunWords(bad), kUsage) << bad[0] << " " << (bad.size() > 1 ? bad[1] : "");
    EXPECT_FALSE(err_.str().empty());
  }
  EXPECT_TRUE(api_.calls.empty());
}

TEST_F(CliTest, EventsShowTheNewestLimitByDefault) {
  api_.replies["GET /api/events?limit=0"] = {200, R"({"events":[],"next":0,"more":false,"last_seq":120})"};
  api_.replies["GET /api/events?after=70&limit=50"] = {
      200, R"({"events":[{"seq":71,"time_ms":0,"kind":"claim","license":"l1","node":"n1",)"
           R"("token":5,"actor":"","detail":""}],"next":71,"more":false,"last_seq":120})"};
  EXPECT_EQ(RunWords({"events"}), kOk) << err_.str();
  EXPECT_NE(out_.str().find("71    1970-01-01T00:00:00Z   claim   l1"), std::string::npos)
      << out_.str();
}

TEST_F(CliTest, EventDetailsCannotDriveTheTerminal) {
  api_.replies["GET /api/events?after=0&limit=50"] = {
      200, R"({"events":[{"seq":1,"time_ms":0,"kind":"withdraw","license":"l1","node":"n1",)"
           R"("token":0,"actor":"","detail":"\u001b]0;pwned\u0007\u001b[2J"}],"next":1,"more":false})"};
  EXPECT_EQ(RunWords({"events", "--after", "0"}), kOk);
  EXPECT_EQ(out_.str().find('\x1b'), std::string::npos);
  EXPECT_NE(out_.str().find("?]0;pwned??[2J"), std::string::npos) << out_.str();
}

TEST_F(CliTest, FollowKeepsPollingFromTheCursorUntilStopped) {
  api_.replies["GET /api/events?after=3&limit=1000"] = {
      200, R"({"events":[{"seq":4,"time_ms":0,"kind":"claim","license":"l","node":"n","token":1,)"
           R"("actor":"","detail":""}],"next":4,"more":false})"};
  api_.replies["GET /api/events?after=4&limit=1000"] = {200, R"({"events":[],"next":4,"more":false})"};
  // The fake sleeper never blocks; stop it after a few polls through the api's call count.
  struct StoppingApi : Api {
    FakeApi& inner;
    FakeSleeper& sleeper;
    StoppingApi(FakeApi& a, FakeSleeper& s) : inner(a), sleeper(s) {}
    StatusOr<client::ApiReply> Call(const std::string& m, const std::string& p,
                                    const std::string& b) override {
      if (inner.calls.size() >= 4) sleeper.stopped_ = true;
      return inner.Call(m, p, b);
    }
  } api(api_, sleeper_);
  auto c = ParseCommand({"events", "-f", "--after", "3"});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(cli::Run(*c, api, clock_, sleeper_, out_, err_), kOk);
  ASSERT_GE(api_.calls.size(), 3u);
  EXPECT_EQ(api_.calls[0], "GET /api/events?after=3&limit=1000");
  EXPECT_EQ(api_.calls[1], "GET /api/events?after=4&limit=1000");
  EXPECT_EQ(clock_.Now() - SteadyTime(std::chrono::hours(1000)) >= 2s, true);
}

TEST_F(CliTest, UsageAsCsvPassesTheWindowEncoded) {
  api_.replies["GET /api/usage?format=csv&from=2026-12-01T00%3A00%3A00Z&to=-1h"] = {
      200, "kind,name,held_seconds,holds\nnode,n1,60.000,1\n"};
  EXPECT_EQ(RunWords({"usage", "-o", "csv", "--from", "2026-12-01T00:00:00Z", "--to=-1h"}), kOk)
      << err_.str();
  EXPECT_EQ(out_.str(), "kind,name,held_seconds,holds\nnode,n1,60.000,1\n");
}

TEST_F(CliTest, StatusSumsUpLockLicensesAndNodes) {
  api_.replies["GET /api/token/status"] = {
      200, R"({"held":true,"holder":"gpu-1","token":42,"waiters":2,"expires_in_ms":8000})"};
  api_.replies["GET /api/licenses"] = {200, R"({"totals":{"total":3,"free":1,"held":2}})"};
  EXPECT_EQ(RunWords({"status"}), kOk) << err_.str();
  EXPECT_NE(out_.str().find("held by gpu-1 (token 42, lease ends in 8s), 2 waiting"),
            std::string::npos)
      << out_.str();
  EXPECT_NE(out_.str().find("1 free"), std::string::npos);
}

TEST_F(CliTest, AnswerOfAnUnexpectedShapeIsAnErrorNotACrash) {
  api_.replies["GET /api/nodes"] = {200, R"({"nodes":[{"node":5,"since_ms":"x"}],"totals":7})"};
  EXPECT_EQ(RunWords({"nodes"}), kOk);  // odd fields print as they are
  api_.replies["GET /api/events?limit=0"] = {200, R"({"last_seq":"many"})"};
  EXPECT_EQ(RunWords({"events"}), kFailed);
  EXPECT_NE(err_.str().find("unexpected shape"), std::string::npos) << err_.str();
  api_.replies["GET /api/nodes"] = {200, "<html>"};
  EXPECT_EQ(RunWords({"nodes"}), kFailed);
}

TEST(Table, ShortDurationsReadLikeKubectl) {
  EXPECT_EQ(ShortDuration(0), "0s");
  EXPECT_EQ(ShortDuration(59999), "59s");
  EXPECT_EQ(ShortDuration(60000), "1m");
  EXPECT_EQ(ShortDuration(3723000), "1h2m");
  EXPECT_EQ(ShortDuration(90000000), "1d1h");
  EXPECT_EQ(ShortDuration(-5), "0s");
}

}  // namespace
}  // namespace lm::cli

namespace lm::cli {
namespace {

TEST(AsCommandLine, FindsTheCommandAfterGlobalFlagsAndLeavesServerFlagsAlone) {
  using W = std::vector<std::string>;
  EXPECT_EQ(AsCommandLine({"nodes", "-o", "json"}), (W{"nodes", "-o", "json"}));
  EXPECT_EQ(AsCommandLine({"--url", "http://tm:8080", "nodes"}),
            (W{"nodes", "--url", "http://tm:8080"}));
  EXPECT_EQ(AsCommandLine({"--token-file=/t", "-o", "json", "cordon", "n1"}),
            (W{"cordon", "--token-file=/t", "-o", "json", "n1"}));
  EXPECT_EQ(AsCommandLine({"nodez"}), (W{"nodez"}));  // ParseCommand says what to type
  EXPECT_FALSE(AsCommandLine({}).has_value());
  EXPECT_FALSE(AsCommandLine({"--listen-port", "0", "--state-file", "s"}).has_value());
  EXPECT_FALSE(AsCommandLine({"-p", "8080"}).has_value());
  EXPECT_FALSE(AsCommandLine({"--url", "http://tm:8080"}).has_value());
}

TEST(ParseCommandTypos, SuggestTheCommandMeant) {
  auto c = ParseCommand({"nodez"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("did you mean 'nodes'?"), std::string::npos)
      << c.status().message();
  auto far = ParseCommand({"frobnicate"});
  EXPECT_EQ(far.status().message().find("did you mean"), std::string::npos);
}

}  // namespace
}  // namespace lm::cli
