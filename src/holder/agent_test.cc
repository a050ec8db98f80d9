#include "holder/agent.h"

#include <gtest/gtest.h>

#include <memory>

#include "holder/release.h"
#include "license/fake_fs.h"

namespace lm::holder {
namespace {

using license::FakeFilesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

// A tokenmgr stand-in with the real contract: one holder, strictly increasing tokens.
class FakeClient : public client::TokenmgrClient {
 public:
  StatusOr<client::LockGrant> Lock(seconds, seconds ttl, const std::string&) override {
    ++calls;
    if (down) return Unavailable("connection refused");
    if (held) return FailedPrecondition("busy");
    held = true;
    return client::LockGrant{"id-" + std::to_string(token + 1), ++token, ttl.count(), ttl.count() * 1000};
  }
  Status Release(const std::string&) override {
    held = false;
    return Status::Ok();
  }
  void Abort() override {}
  uint64_t token = 100;
  bool held = false;
  bool down = false;
  int calls = 0;
};

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 1; i <= 3; ++i) {
      fs_.AddFile("/pool/license" + std::to_string(i) + "/lic/host_id", "ID" + std::to_string(i));
    }
  }
  AgentConfig Config(const std::string& node) {
    AgentConfig c;
    c.node = node;
    c.pod = "pod-" + node;
    c.pool_dir = "/pool";
    c.host_dir = "/host/" + node;
    c.heartbeat = seconds(1);
    c.claim_ttl = seconds(6);
    c.settle = milliseconds(100);
    c.servers_conf = "### g.conf\n1.2.3.4:5\n\n";
    fs_.AddDir(c.host_dir);
    return c;
  }
  std::unique_ptr<Agent> Make(const std::string& node) {
    auto a = std::make_unique<Agent>(Config(node), fs_, client_, clock_, sleeper_);
    a->Start();
    return a;
  }
  std::string Installed(const std::string& node) {
    return fs_.Content("/host/" + node + "/lic/host_id").value_or("");
  }
  // Steps every agent once per heartbeat for `beats` heartbeats.
  void Run(std::vector<Agent*> agents, int beats) {
    for (int i = 0; i < beats; ++i) {
      for (Agent* a : agents) a->Step();
      clock_.Advance(seconds(1));
    }
  }
  FakeFilesystem fs_;
  FakeClient client_;
  FakeClock clock_;
  FakeSleeper sleeper_{clock_};
};

TEST_F(AgentTest, NodesGetDistinctLicensesAndServersConf) {
  auto a = Make("a"), b = Make("b"), c = Make("c");
  Run({a.get(), b.get(), c.get()}, 1);
  std::set<std::string> got = {Installed("a"), Installed("b"), Installed("c")};
  EXPECT_EQ(got, (std::set<std::string>{"ID1", "ID2", "ID3"}));
  EXPECT_TRUE(a->Snapshot().ready);
  EXPECT_EQ(fs_.Content("/host/a/servers.conf"), "### g.conf\n1.2.3.4:5\n\n");
  EXPECT_FALSE(fs_.Exists("/host/a/lockedby"));  // the claim never lands on the node
  auto claim = license::ParseClaim(*fs_.Content("/pool/" + a->Snapshot().license + "/lockedby"));
  ASSERT_TRUE(claim.ok());
  EXPECT_EQ(claim->node, "a");
  EXPECT_EQ(claim->pod, "pod-a");
  EXPECT_EQ(claim->token, a->Snapshot().token);
}

TEST_F(AgentTest, BusyMutexDoesNotRescanThePoolEveryLongPoll) {
  client_.held = true;  // someone else holds the mutex for a while
  auto a = Make("a");
  a->Step();
  int lists = fs_.lists();
  for (int i = 0; i < 5; ++i) a->Step();  // each ends with a long poll answered 409
  EXPECT_EQ(fs_.lists(), lists);
  client_.held = false;
  a->Step();
  EXPECT_TRUE(a->Snapshot().ready);
}

TEST_F(AgentTest, HintIsWrittenWithoutFsyncAndTheClaimWith) {
  auto a = Make("a");
  a->Step();
  ASSERT_TRUE(a->Snapshot().ready);
  EXPECT_EQ(fs_.Content("/pool/.holders/a"), a->Snapshot().license + "\n");
  EXPECT_EQ(fs_.unsynced_writes(), 1);  // the hint only: a lost one costs a restart a scan
  auto claim = license::ParseClaim(*fs_.Content("/pool/" + a->Snapshot().license + "/lockedby"));
  ASSERT_TRUE(claim.ok());
  EXPECT_EQ(claim->node, "a");
  Run({a.get()}, 3);  // renewals are durable writes too
  EXPECT_EQ(fs_.unsynced_writes(), 1);
}

TEST_F(AgentTest, RenewsEveryHeartbeat) {
  auto a = Make("a");
  Run({a.get()}, 5);
  EXPECT_GE(a->Snapshot().renewals, 3u);
  auto claim = license::ParseClaim(*fs_.Content("/pool/" + a->Snapshot().license + "/lockedby"));
  EXPECT_GE(claim->renewals, 3u);
}

TEST_F(AgentTest, RenewalsKeepTheTimeTheClaimWasWritten) {
  auto a = Make("a");
  int64_t claimed = UnixMillis(clock_.WallNow());
  Run({a.get()}, 4);
  auto claim = license::ParseClaim(*fs_.Content("/pool/" + a->Snapshot().license + "/lockedby"));
  ASSERT_TRUE(claim.ok());
  EXPECT_GE(claim->renewals, 2u);
  // Written under the mutex, before the 100 ms settle; the renewals keep that time.
  EXPECT_EQ(claim->claimed_at_ms, claimed);
}

TEST_F(AgentTest, ExtraNodeStaysUpNotReadyAndGetsFreedLicense) {
  auto a = Make("a"), b = Make("b"), c = Make("c"), d = Make("d");
  Run({a.get(), b.get(), c.get(), d.get()}, 2);
  EXPECT_FALSE(d->Snapshot().ready);
  EXPECT_EQ(Installed("d"), "");
  EXPECT_NE(d->Snapshot().last_error.find("no license available"), std::string::npos);
  std::string freed = b->Snapshot().license;
  ASSERT_TRUE(ReleaseNode(Config("b"), fs_, client_, clock_).ok());
  Run({a.get(), b.get(), c.get(), d.get()}, 2);
  EXPECT_TRUE(d->Snapshot().ready);
  EXPECT_EQ(d->Snapshot().license, freed);
  EXPECT_EQ(Installed("b"), "");
  EXPECT_EQ(b->Snapshot().phase, Phase::kReleased);  // b does not grab it back
}

TEST_F(AgentTest, RestartAdoptsOwnClaimWithoutTouchingHostFiles) {
  auto a = Make("a");
  Run({a.get()}, 2);
  std::string lic = a->Snapshot().license;
  a.reset();  // SIGTERM: claim and files stay
  int writes_before = fs_.writes();
  auto again = Make("a");
  again->Step();
  EXPECT_EQ(again->Snapshot().license, lic);
  EXPECT_TRUE(again->Snapshot().ready);
  EXPECT_EQ(client_.calls, 1);  // no new mutex round: the claim was adopted
  EXPECT_LE(fs_.writes() - writes_before, 2);  // the claim renewal only, no reinstall
}

TEST_F(AgentTest, RestartAfterALongOutageReclaimsUnderTheMutex) {
  auto a = Make("a");
  a->Step();
  std::string lic = a->Snapshot().license;
  a.reset();
  clock_.Advance(seconds(30));  // down for longer than the claim could be trusted
  int calls = client_.calls;
  auto again = Make("a");
  EXPECT_EQ(Installed("a"), "");  // unconfirmed files do not stay while we re-claim
  again->Step();
  EXPECT_EQ(client_.calls, calls + 1);
  EXPECT_EQ(again->Snapshot().license, lic);  // its own claim comes first
  EXPECT_TRUE(again->Snapshot().ready);
}

TEST_F(AgentTest, DeadHoldersLicenseGoesToWaiterWithinTtlPlusHeartbeat) {
  ASSERT_TRUE(fs_.RemoveAll("/pool/license2").ok());
  ASSERT_TRUE(fs_.RemoveAll("/pool/license3").ok());
  auto a = Make("a"), b = Make("b");
  Run({a.get(), b.get()}, 2);
  ASSERT_TRUE(a->Snapshot().ready);
  ASSERT_FALSE(b->Snapshot().ready);
  // a dies (kill -9): no more steps. b must hold it within claim_ttl + one heartbeat.
  int beats = 0;
  while (!b->Snapshot().ready && beats < 20) {
    b->Step();
    clock_.Advance(seconds(1));
    ++beats;
  }
  EXPECT_TRUE(b->Snapshot().ready);
  EXPECT_LE(beats, 6 + 1 + 1);
  // a resumes (it was only paused): it must withdraw at once.
  a->Step();
  EXPECT_EQ(Installed("a"), "");
  EXPECT_FALSE(a->Snapshot().ready);
  EXPECT_EQ(Installed("b"), "ID1");
}

TEST_F(AgentTest, HigherTokenTakesOverAndOlderHolderWithdraws) {
  auto a = Make("a");
  Run({a.get()}, 1);
  std::string lic = a->Snapshot().license;
  license::ClaimRecord other{"z", "pod-z", a->Snapshot().token + 5, 0, 0, 0, false};
  ASSERT_TRUE(fs_.WriteAtomic("/pool/" + lic + "/lockedby", license::SerializeClaim(other), 0644).ok());
  a->Step();
  EXPECT_EQ(Installed("a"), "");
  EXPECT_EQ(a->Snapshot().withdrawals, 1u);
}

TEST_F(AgentTest, WithdrawalThatFailedIsRetriedUntilTheFilesAreGone) {
  ASSERT_TRUE(fs_.RemoveAll("/pool/license2").ok());
  ASSERT_TRUE(fs_.RemoveAll("/pool/license3").ok());
  auto a = Make("a");
  Run({a.get()}, 1);
  ASSERT_EQ(Installed("a"), "ID1");
  // Another node takes the license while this node's host dir cannot be written (read-only).
  license::ClaimRecord other{"z", "pod-z", a->Snapshot().token + 5, 0, 0, 0, false};
  ASSERT_TRUE(
      fs_.WriteAtomic("/pool/license1/lockedby", license::SerializeClaim(other), 0644).ok());
  fs_.FailWrites("/host/a", {StatusCode::kPermissionDenied, "Read-only file system"});
  a->Step();
  EXPECT_EQ(Installed("a"), "ID1");  // could not be removed yet
  EXPECT_FALSE(a->Snapshot().ready);
  EXPECT_NE(a->Snapshot().last_error.find("withdraw failed"), std::string::npos);
  fs_.ClearFaults();
  // z keeps its claim fresh, so this node gets no license back: the retry alone must clean up.
  for (int i = 0; i < 2; ++i) {
    clock_.Advance(seconds(1));
    other.renewals++;
    ASSERT_TRUE(
        fs_.WriteAtomic("/pool/license1/lockedby", license::SerializeClaim(other), 0644).ok());
    a->Step();
  }
  EXPECT_EQ(Installed("a"), "");
  EXPECT_FALSE(fs_.Exists("/host/a/.license-holder.json"));
  EXPECT_FALSE(a->Snapshot().ready);
}

TEST_F(AgentTest, LowerTokenOverwriteIsReasserted) {
  auto a = Make("a");
  Run({a.get()}, 1);
  std::string lic = a->Snapshot().license;
  license::ClaimRecord zombie{"z", "pod-z", a->Snapshot().token - 1, 9, 0, 0, false};
  ASSERT_TRUE(fs_.WriteAtomic("/pool/" + lic + "/lockedby", license::SerializeClaim(zombie), 0644).ok());
  a->Step();
  auto claim = license::ParseClaim(*fs_.Content("/pool/" + lic + "/lockedby"));
  EXPECT_EQ(claim->node, "a");
  EXPECT_TRUE(a->Snapshot().ready);
}

TEST_F(AgentTest, PoolOutageWithdrawsBeforeTtlAndRecovers) {
  auto a = Make("a");
  Run({a.get()}, 1);
  ASSERT_TRUE(a->Snapshot().ready);
  fs_.FailReads("/pool", Unavailable("Input/output error"));
  fs_.FailWrites("/pool", Unavailable("Input/output error"));
  int beats = 0;
  while (!Installed("a").empty() && beats < 20) {
    a->Step();
    clock_.Advance(seconds(1));
    ++beats;
  }
  EXPECT_EQ(Installed("a"), "");
  EXPECT_LT(beats, 6);  // well before another node could take it (claim_ttl = 6)
  EXPECT_TRUE(a->Snapshot().degraded);
  fs_.ClearFaults();
  Run({a.get()}, 2);
  EXPECT_TRUE(a->Snapshot().ready);
}

TEST_F(AgentTest, TokenmgrDownKeepsRetryingWithBackoff) {
  client_.down = true;
  auto a = Make("a");
  auto d1 = a->Step();
  auto d2 = a->Step();
  EXPECT_GT(d1.count(), 0);
  EXPECT_GT(d2.count(), 0);
  EXPECT_LE(d2, seconds(3));
  EXPECT_FALSE(a->Snapshot().ready);
  EXPECT_NE(a->Snapshot().last_error.find("tokenmgr"), std::string::npos);
  client_.down = false;
  a->Step();
  EXPECT_TRUE(a->Snapshot().ready);
}

TEST_F(AgentTest, GarbageAndSeedClaimsAreHeldUntilStale) {
  fs_.AddFile("/pool/license1/lockedby", "%%% garbage %%%");
  fs_.AddFile("/pool/license2/lockedby", "flexdirect-seedpod\n");
  fs_.AddFile("/pool/license3/lockedby", "");
  auto a = Make("a");
  Run({a.get()}, 3);
  EXPECT_FALSE(a->Snapshot().ready);
  Run({a.get()}, 6);  // unchanged for a full claim TTL as seen by a
  EXPECT_TRUE(a->Snapshot().ready);
}

TEST_F(AgentTest, SeedClaimThatKeepsBeingRefreshedIsNotStale) {
  ASSERT_TRUE(fs_.RemoveAll("/pool/license2").ok());
  ASSERT_TRUE(fs_.RemoveAll("/pool/license3").ok());
  fs_.AddFile("/pool/license1/lockedby", "flexdirect-seedpod\n");
  auto a = Make("a");
  for (int i = 0; i < 12; ++i) {
    a->Step();
    clock_.Advance(seconds(1));
    // The seed's heartbeat rewrites the same text; the file changes (new mtime).
    ASSERT_TRUE(fs_.WriteAtomic("/pool/license1/lockedby", "flexdirect-seedpod\n", 0644).ok());
  }
  EXPECT_FALSE(a->Snapshot().ready);
}

TEST_F(AgentTest, ReadOnlyHostDirIsReportedAndRetried) {
  fs_.FailWrites("/host/a", {StatusCode::kPermissionDenied, "Read-only file system"});
  auto a = Make("a");
  Run({a.get()}, 2);
  EXPECT_FALSE(a->Snapshot().ready);
  EXPECT_NE(a->Snapshot().last_error.find("install"), std::string::npos);
  fs_.ClearFaults();
  Run({a.get()}, 1);
  EXPECT_TRUE(a->Snapshot().ready);
}

TEST_F(AgentTest, MissingPoolIsReportedNotFatal) {
  ASSERT_TRUE(fs_.RemoveAll("/pool").ok());
  auto a = Make("a");
  Run({a.get()}, 2);
  EXPECT_FALSE(a->Snapshot().ready);
  EXPECT_NE(a->Snapshot().last_error.find("/pool"), std::string::npos);
}

TEST_F(AgentTest, ReleaseOnExitGivesTheLicenseBack) {
  AgentConfig c = Config("a");
  c.release_on_exit = true;
  Agent a(c, fs_, client_, clock_, sleeper_);
  a.Start();
  a.Step();
  std::string lic = a.Snapshot().license;
  a.OnExit();
  EXPECT_FALSE(fs_.Exists("/pool/" + lic + "/lockedby"));
  EXPECT_EQ(Installed("a"), "");
}

TEST_F(AgentTest, DefaultExitKeepsClaimAndFiles) {
  auto a = Make("a");
  a->Step();
  std::string lic = a->Snapshot().license;
  a->OnExit();
  EXPECT_TRUE(fs_.Exists("/pool/" + lic + "/lockedby"));
  EXPECT_EQ(Installed("a"), "ID" + lic.substr(7));
}

TEST_F(AgentTest, InstalledLicenseNotOursAtStartIsWithdrawn) {
  auto a = Make("a");
  a->Step();
  std::string lic = a->Snapshot().license;
  a.reset();
  license::ClaimRecord other{"z", "pod-z", 999, 0, 0, 0, false};
  ASSERT_TRUE(fs_.WriteAtomic("/pool/" + lic + "/lockedby", license::SerializeClaim(other), 0644).ok());
  auto again = Make("a");
  EXPECT_EQ(Installed("a"), "");
}

TEST_F(AgentTest, DriftOnTheNodeIsRepaired) {
  auto a = Make("a");
  a->Step();
  fs_.AddFile("/host/a/lic/host_id", "tampered");
  clock_.Advance(seconds(1));
  a->Step();
  EXPECT_EQ(Installed("a"), "ID" + a->Snapshot().license.substr(7));
}

TEST_F(AgentTest, MetricsNameEveryFamily) {
  auto a = Make("a");
  a->Step();
  std::string m = a->RenderMetrics();
  for (const char* name : {"license_holder_license_held 1", "license_holder_claim_age_seconds",
                           "license_holder_acquire_attempts_total", "license_holder_acquire_wait_seconds_bucket",
                           "license_holder_withdrawals_total", "license_holder_pool_licenses{state=\"free\"}"}) {
    EXPECT_NE(m.find(name), std::string::npos) << name;
  }
}

}  // namespace
}  // namespace lm::holder
