#include "holder/agent.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>

#include "holder/fake_client.h"
#include "holder/release.h"
#include "license/fake_fs.h"

namespace lm::holder {
namespace {

using license::FakeFilesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

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
  // The hint (a lost one costs a restart a scan) and the host dir's write probe only.
  EXPECT_EQ(fs_.unsynced_writes(), 2);
  auto claim = license::ParseClaim(*fs_.Content("/pool/" + a->Snapshot().license + "/lockedby"));
  ASSERT_TRUE(claim.ok());
  EXPECT_EQ(claim->node, "a");
  Run({a.get()}, 3);  // renewals are durable writes too
  EXPECT_EQ(fs_.unsynced_writes(), 2);
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

TEST_F(AgentTest, TheFenceGuardTakesTheLicenseOffWhileTheAgentIsStuck) {
  auto a = Make("a");
  Run({a.get()}, 2);  // last confirmed at 1 s: fence deadline 1 + (6 - 2 x 1) = 5 s
  const std::string lic = a->Snapshot().license;
  ASSERT_NE(Installed("a"), "");
  // The agent's thread is stuck in a pool call (an NFS hard mount): no Step() from here.
  clock_.Advance(seconds(2));
  EXPECT_FALSE(a->CheckFenceGuard());
  EXPECT_NE(Installed("a"), "");
  clock_.Advance(seconds(1));
  EXPECT_TRUE(a->CheckFenceGuard());  // what the guard's thread does at the deadline
  EXPECT_EQ(Installed("a"), "");
  EXPECT_FALSE(a->Snapshot().ready);
  // The pool answers again: the agent records the withdrawal, then claims anew.
  a->Step();
  EXPECT_EQ(a->Snapshot().withdrawals, 1u);
  EXPECT_EQ(a->Snapshot().phase, Phase::kAcquiring);
  Run({a.get()}, 2);
  EXPECT_TRUE(a->Snapshot().ready);
  EXPECT_EQ(Installed("a"), "ID" + lic.substr(std::string("license").size()));
}

TEST_F(AgentTest, AnAdoptedClaimIsGuardedBeforeItsFirstRenewal) {
  auto a = Make("a");
  Run({a.get()}, 2);  // claim renewed at 1 s (wall clock), now 2 s
  a.reset();
  auto again = Make("a");  // adopts; its first Keep() would confirm, but the pool hangs
  ASSERT_NE(Installed("a"), "");
  clock_.Advance(milliseconds(2900));
  EXPECT_FALSE(again->CheckFenceGuard());
  clock_.Advance(milliseconds(100));  // 4 s after the claim's last renewal
  EXPECT_TRUE(again->CheckFenceGuard());
  EXPECT_EQ(Installed("a"), "");
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
  EXPECT_NE(a->Snapshot().last_error.find("HOST_DIR /host/a cannot be written"), std::string::npos);
  EXPECT_EQ(client_.calls, 0);  // nothing claimed for a node that cannot install it
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
  for (const char* name :
       {"license_holder_license_held 1", "license_holder_claim_age_seconds",
        "license_holder_acquire_attempts_total", "license_holder_acquire_wait_seconds_bucket",
        "license_holder_withdrawals_total", "license_holder_token_regressions_total 0"}) {
    EXPECT_NE(m.find(name), std::string::npos) << name;
  }
}

// ---- issue 15 -------------------------------------------------------------------------------

// Steps `a` for `seconds_total` of fake time, advancing by what Step() asks for, and each of
// `others` once per heartbeat (1 s); returns the number of steps of `a`.
int StepFor(Agent& a, FakeClock& clock, seconds seconds_total, std::vector<Agent*> others = {}) {
  SteadyTime start = clock.Now();
  SteadyTime end = start + seconds_total;
  int steps = 0;
  int64_t beats = 0;
  while (clock.Now() < end) {
    auto d = a.Step();
    clock.Advance(std::max<std::chrono::nanoseconds>(d, milliseconds(1)));
    ++steps;
    while (beats < std::chrono::duration_cast<seconds>(clock.Now() - start).count()) {
      for (Agent* o : others) o->Step();
      ++beats;
    }
  }
  return steps;
}

TEST_F(AgentTest, UnusableLicensesAreNeverClaimedAndTheAgentBacksOff) {
  ASSERT_TRUE(fs_.RemoveAll("/pool/license2").ok());
  ASSERT_TRUE(fs_.RemoveAll("/pool/license3").ok());
  fs_.AddDir("/pool/broken/lic");  // no host_id
  fs_.AddFile("/pool/huge/lic/host_id", std::string(license::kMaxLicenseFileBytes + 1, 'x'));
  fs_.AddFile("/pool/linked/lic/host_id", "id");
  fs_.AddSymlink("/pool/linked/lic/passwd");
  auto a = Make("a");
  a->Step();
  ASSERT_TRUE(a->Snapshot().ready);
  auto b = Make("b");
  int calls = client_.calls;
  int steps = StepFor(*b, clock_, seconds(20), {a.get()});
  EXPECT_LE(client_.calls - calls, 20 + 1);  // at most one mutex request per heartbeat
  EXPECT_LE(steps, 20 + 1);
  EXPECT_FALSE(b->Snapshot().ready);
  EXPECT_EQ(Installed("b"), "");
  for (const char* name : {"broken", "huge", "linked"}) {
    EXPECT_FALSE(fs_.Exists(std::string("/pool/") + name + "/lockedby")) << name;
  }
  EXPECT_EQ(b->Snapshot().pool_unusable, 3u);
  EXPECT_NE(b->RenderMetrics().find("license_holder_pool_licenses{state=\"unusable\"} 3"),
            std::string::npos);
  // Fixed content makes it a candidate again.
  fs_.AddFile("/pool/broken/lic/host_id", "FIXED");
  StepFor(*b, clock_, seconds(2), {a.get()});
  EXPECT_TRUE(b->Snapshot().ready);
  EXPECT_EQ(Installed("b"), "FIXED");
  // Holding a license, it scans no more: the counts it had are not exported as current.
  EXPECT_EQ(b->RenderMetrics().find("license_holder_pool_licenses"), std::string::npos);
}

TEST_F(AgentTest, LicenseFailingToReadUnderTheMutexIsNotRetriedInALoop) {
  ASSERT_TRUE(fs_.RemoveAll("/pool/license2").ok());
  ASSERT_TRUE(fs_.RemoveAll("/pool/license3").ok());
  fs_.FailReads("/pool/license1/lic/host_id", Unavailable("Input/output error"));
  auto a = Make("a");
  int steps = StepFor(*a, clock_, seconds(5));
  EXPECT_LE(client_.calls, 5 + 1);
  EXPECT_LE(steps, 5 + 2);
  EXPECT_FALSE(a->Snapshot().ready);
  EXPECT_FALSE(fs_.Exists("/pool/license1/lockedby"));
}

TEST_F(AgentTest, PoolDirOneLevelTooHighClaimsNothingAndNamesTheLikelyPoolDir) {
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(fs_.RemoveAll("/pool/license" + std::to_string(i)).ok());
  fs_.AddFile("/pool/bitfusionio/license1/lic/host_id", "ID1");
  fs_.AddFile("/pool/bitfusionio/license2/lic/host_id", "ID2");
  fs_.AddFile("/pool/readme-only/README", "x");
  auto a = Make("a");
  StepFor(*a, clock_, seconds(3));
  EXPECT_FALSE(a->Snapshot().ready);
  EXPECT_FALSE(fs_.Exists("/pool/bitfusionio/lockedby"));
  EXPECT_FALSE(fs_.Exists("/pool/readme-only/lockedby"));
  EXPECT_EQ(client_.calls, 0);
  EXPECT_FALSE(fs_.Exists("/host/a/license1"));
  EXPECT_NE(a->Snapshot().last_error.find("POOL_DIR=/pool/bitfusionio"), std::string::npos)
      << a->Snapshot().last_error;
}

TEST_F(AgentTest, GrantBelowATokenInThePoolIsNeverWrittenWith) {
  ASSERT_TRUE(fs_.RemoveAll("/pool/license2").ok());
  ASSERT_TRUE(fs_.RemoveAll("/pool/license3").ok());
  // A claim from before tokenmgr's store was reset: token far above what tokenmgr hands out now.
  license::ClaimRecord old{"z", "pod-z", 5000, 0, 0, 0, false};
  fs_.AddFile("/pool/license1/lockedby", license::SerializeClaim(old));
  auto a = Make("a");
  StepFor(*a, clock_, seconds(20));  // the claim goes stale (ttl 6 s): a tries to take it over
  EXPECT_FALSE(a->Snapshot().ready);
  EXPECT_EQ(license::ParseClaim(*fs_.Content("/pool/license1/lockedby"))->token, 5000u);
  EXPECT_GE(a->Snapshot().token_regressions, 1u);
  EXPECT_LE(client_.calls, 20);  // backs off
  EXPECT_NE(a->RenderMetrics().find("license_holder_token_regressions_total"), std::string::npos);
  EXPECT_NE(a->Snapshot().last_error.find("5000"), std::string::npos);
}

TEST_F(AgentTest, SecondPodWithTheSameNodeNameRefusesWhileTheFirstRenews) {
  auto first = Make("a");
  first->Step();
  ASSERT_TRUE(first->Snapshot().ready);
  std::string lic = first->Snapshot().license;
  AgentConfig c = Config("a");
  c.pod = "pod-a-duplicate";
  c.host_dir = "/host/a2";
  fs_.AddDir(c.host_dir);
  Agent second(c, fs_, client_, clock_, sleeper_);
  second.Start();
  for (int i = 0; i < 30; ++i) {
    first->Step();
    second.Step();
    clock_.Advance(seconds(1));
    ASSERT_FALSE(second.Snapshot().ready) << i;
  }
  EXPECT_FALSE(fs_.Exists("/host/a2/lic/host_id"));
  EXPECT_TRUE(first->Snapshot().ready);
  EXPECT_EQ(license::ParseClaim(*fs_.Content("/pool/" + lic + "/lockedby"))->pod, "pod-a");
  std::string err = second.Snapshot().last_error;
  EXPECT_NE(err.find("pod-a'"), std::string::npos) << err;
  EXPECT_NE(err.find("pod-a-duplicate"), std::string::npos) << err;
  EXPECT_NE(err.find("same NODE_NAME"), std::string::npos) << err;
}

TEST_F(AgentTest, NewPodOfARollingUpdateAdoptsTheGonePodsClaim) {
  auto old_pod = Make("a");
  Run({old_pod.get()}, 2);
  std::string lic = old_pod->Snapshot().license;
  old_pod.reset();  // terminated by the rolling update: claim and files stay
  AgentConfig c = Config("a");
  c.pod = "pod-a-new";
  Agent fresh(c, fs_, client_, clock_, sleeper_);
  fresh.Start();
  EXPECT_EQ(Installed("a"), "ID" + lic.substr(7));  // files stay while it watches
  int beats = 0;
  while (!fresh.Snapshot().ready && beats < 20) {
    fresh.Step();
    clock_.Advance(seconds(1));
    ++beats;
  }
  EXPECT_TRUE(fresh.Snapshot().ready);
  EXPECT_EQ(fresh.Snapshot().license, lic);
  EXPECT_LE(beats, 3 + 2);  // AdoptAfter (3 heartbeats) and one claim round
  EXPECT_EQ(license::ParseClaim(*fs_.Content("/pool/" + lic + "/lockedby"))->pod, "pod-a-new");
}

TEST_F(AgentTest, NewPodAdoptsAtOnceTheClaimAStoppedPodLeftToTheNode) {
  auto old_pod = Make("a");
  Run({old_pod.get()}, 2);
  std::string lic = old_pod->Snapshot().license;
  old_pod->OnExit();  // SIGTERM: the claim says it was left to the node
  EXPECT_TRUE(license::ParseClaim(*fs_.Content("/pool/" + lic + "/lockedby"))->exiting);
  old_pod.reset();
  AgentConfig c = Config("a");
  c.pod = "pod-a-new";
  Agent fresh(c, fs_, client_, clock_, sleeper_);
  int calls = client_.calls;
  int writes = fs_.writes();
  fresh.Start();
  fresh.Step();
  EXPECT_TRUE(fresh.Snapshot().ready);
  EXPECT_EQ(fresh.Snapshot().license, lic);
  EXPECT_EQ(client_.calls, calls);      // adopted without the mutex, like a restart
  EXPECT_LE(fs_.writes() - writes, 2);  // the renewal only: host files untouched
  auto claim = license::ParseClaim(*fs_.Content("/pool/" + lic + "/lockedby"));
  EXPECT_EQ(claim->pod, "pod-a-new");
  EXPECT_FALSE(claim->exiting);
}

TEST_F(AgentTest, MissingHostDirIsCreatedBeforeClaiming) {
  AgentConfig c = Config("a");
  c.host_dir = "/host/new";  // its parent exists
  Agent a(c, fs_, client_, clock_, sleeper_);
  a.Start();
  a.Step();
  EXPECT_TRUE(a.Snapshot().ready);
  EXPECT_TRUE(fs_.Exists("/host/new/lic/host_id"));
}

TEST_F(AgentTest, HostDirWithoutParentIsReportedAndNothingIsClaimed) {
  AgentConfig c = Config("a");
  c.host_dir = "/nowhere/at/all";
  Agent a(c, fs_, client_, clock_, sleeper_);
  a.Start();
  StepFor(a, clock_, seconds(3));
  EXPECT_FALSE(a.Snapshot().ready);
  EXPECT_EQ(client_.calls, 0);
  std::string err = a.Snapshot().last_error;
  EXPECT_NE(err.find("HOST_DIR /nowhere/at/all"), std::string::npos) << err;
  EXPECT_EQ(err.find("symlinks are refused"), std::string::npos) << err;
}

TEST_F(AgentTest, InstallsFailingAfterTheClaimGiveTheLicenseBackWithinAFewHeartbeats) {
  ASSERT_TRUE(fs_.RemoveAll("/pool/license2").ok());
  ASSERT_TRUE(fs_.RemoveAll("/pool/license3").ok());
  auto a = Make("a");
  a->Step();
  ASSERT_TRUE(a->Snapshot().ready);
  fs_.FailWrites("/host/a", {StatusCode::kPermissionDenied, "Read-only file system"});
  fs_.AddFile("/pool/license1/lic/host_id", "NEW");  // the license changes: must reinstall
  Run({a.get()}, 5);
  EXPECT_FALSE(fs_.Exists("/pool/license1/lockedby"));  // given back to the pool
  EXPECT_EQ(a->Snapshot().phase, Phase::kAcquiring);
  EXPECT_NE(a->RenderMetrics().find("license_holder_install_giveups_total 1"), std::string::npos);
  auto b = Make("b");
  b->Step();
  EXPECT_TRUE(b->Snapshot().ready);
}

TEST_F(AgentTest, ReleasedAgentSaysWhyItIsNotReady) {
  auto a = Make("a");
  a->Step();
  ASSERT_TRUE(ReleaseNode(Config("a"), fs_, client_, clock_).ok());
  a->Step();
  EXPECT_EQ(a->Snapshot().phase, Phase::kReleased);
  EXPECT_NE(a->Snapshot().last_error.find("license-holder release"), std::string::npos);
}

TEST_F(AgentTest, ReleaseRemovesServersConfAndSaysWhenNothingNamesTheNode) {
  auto a = Make("a");
  a->Step();
  auto r = ReleaseNode(Config("a"), fs_, client_, clock_);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->released.size(), 1u);
  EXPECT_EQ(DescribeRelease(r, Config("a")).exit_code, kReleaseOk);
  EXPECT_FALSE(fs_.Exists("/host/a/servers.conf"));
  EXPECT_FALSE(fs_.Exists("/host/a/lic"));
  auto again = ReleaseNode(Config("a"), fs_, client_, clock_);
  ASSERT_TRUE(again.ok());
  ReleaseOutcome o = DescribeRelease(again, Config("a"));
  EXPECT_EQ(o.exit_code, kReleaseNothing);
  EXPECT_NE(o.message.find("no claim"), std::string::npos);
  AgentConfig missing = Config("a");
  missing.host_dir = "/host/none";
  ASSERT_TRUE(fs_.RemoveAll("/host/none").ok());
  EXPECT_EQ(DescribeRelease(ReleaseNode(missing, fs_, client_, clock_), missing).exit_code,
            kReleaseFailed);
}

TEST_F(AgentTest, MetricsLeaveOutWhatTheAgentDoesNotKnow) {
  auto a = Make("a");
  std::string before = a->RenderMetrics();
  EXPECT_EQ(before.find("license_holder_claim_age_seconds"), std::string::npos);
  EXPECT_EQ(before.find("license_holder_pool_licenses"), std::string::npos);  // never scanned
  EXPECT_EQ(before.find("license_holder_license_info"), std::string::npos);
  a->Step();  // free licenses found without a full scan
  std::string m = a->RenderMetrics();
  EXPECT_EQ(m.find("license_holder_pool_licenses"), std::string::npos);
  EXPECT_NE(m.find("license_holder_claim_age_seconds 0"), std::string::npos);
  EXPECT_NE(m.find("license_holder_license_info{node=\"a\",license=\"" + a->Snapshot().license +
                   "\"} 1\n"),
            std::string::npos)
      << m;
}

TEST_F(AgentTest, MetricsSayWhetherTheNodeWaitsAndWhenItWouldSelfFence) {
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(fs_.RemoveAll("/pool/license" + std::to_string(i)).ok());
  auto a = Make("a");
  a->Step();  // an empty pool: looking for a license
  std::string waiting = a->RenderMetrics();
  EXPECT_NE(waiting.find("license_holder_waiting 1\n"), std::string::npos) << waiting;
  EXPECT_NE(waiting.find("license_holder_fence_after_seconds 4\n"), std::string::npos) << waiting;
  fs_.AddFile("/pool/license9/lic/host_id", "ID");
  Run({a.get()}, 2);
  ASSERT_TRUE(a->Snapshot().ready);
  EXPECT_NE(a->RenderMetrics().find("license_holder_waiting 0\n"), std::string::npos);
}

TEST_F(AgentTest, LicenseInfoEscapesLabelValues) {
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(fs_.RemoveAll("/pool/license" + std::to_string(i)).ok());
  fs_.AddFile("/pool/we\"ird\\lic/lic/host_id", "ID");
  auto a = Make("a");
  a->Step();
  ASSERT_TRUE(a->Snapshot().ready);
  EXPECT_NE(a->RenderMetrics().find("license=\"we\\\"ird\\\\lic\"} 1\n"), std::string::npos);
}

TEST_F(AgentTest, TokenmgrRefusingCredentialsSaysHttp401AndAuthTokenFile) {
  client_.refuse =
      client::ParseLockResponse(401, R"({"Error":"missing or invalid bearer token"})").status();
  auto a = Make("a");
  a->Step();
  std::string err = a->Snapshot().last_error;
  EXPECT_NE(err.find("401"), std::string::npos) << "[" << err << "]";
  EXPECT_NE(err.find("AUTH_TOKEN_FILE"), std::string::npos) << err;
}

// The NFD node label follows the license: it is there exactly while the license is installed
// and confirmed, and goes in the same step as the license.
class LabelTest : public AgentTest {
 protected:
  AgentConfig Labelled(const std::string& node) {
    AgentConfig c = Config(node);
    fs_.AddDir("/nfd/" + node);
    c.nfd_feature_file = "/nfd/" + node + "/bitfusion-license";
    return c;
  }
  std::unique_ptr<Agent> MakeLabelled(const std::string& node) {
    auto a = std::make_unique<Agent>(Labelled(node), fs_, client_, clock_, sleeper_);
    a->Start();
    return a;
  }
  bool HasLabel(const std::string& node) { return fs_.Exists("/nfd/" + node + "/bitfusion-license"); }
  // Steps `a` until `done` or 30 heartbeats; after every step the label must say what the
  // snapshot says, and no license files may remain without it... nor it without them.
  int StepChecking(Agent& a, const std::string& node, const std::function<bool()>& done) {
    int beats = 0;
    while (!done() && beats < 30) {
      a.Step();
      EXPECT_EQ(HasLabel(node), a.Snapshot().ready) << "beat " << beats;
      EXPECT_EQ(HasLabel(node), !Installed(node).empty()) << "beat " << beats;
      clock_.Advance(seconds(1));
      ++beats;
    }
    return beats;
  }
  // The wall time the label expires at.
  std::optional<WallTime> LabelExpiry(const std::string& node) {
    auto text = fs_.Content("/nfd/" + node + "/bitfusion-license");
    if (!text) return std::nullopt;
    size_t at = text->find("+expiry-time=");
    if (at == std::string::npos) return std::nullopt;
    std::string stamp = text->substr(at + 13, 20);
    for (int s = -120; s <= 120; ++s) {
      WallTime t = std::chrono::floor<seconds>(clock_.WallNow()) + seconds(s);
      if (FormatRfc3339(t) == stamp) return t;
    }
    return std::nullopt;
  }
};

TEST_F(LabelTest, TheFenceGuardRemovesTheLabelWithTheLicense) {
  auto a = MakeLabelled("a");
  StepChecking(*a, "a", [&] { return a->Snapshot().ready; });
  ASSERT_TRUE(HasLabel("a"));
  clock_.Advance(seconds(4));  // the agent's thread is stuck: no step, the deadline passes
  ASSERT_TRUE(a->CheckFenceGuard());
  EXPECT_FALSE(HasLabel("a"));
  EXPECT_EQ(Installed("a"), "");
  a->Step();  // back: records the withdrawal; neither label nor license comes back with it
  EXPECT_FALSE(HasLabel("a"));
  EXPECT_EQ(Installed("a"), "");
  StepChecking(*a, "a", [&] { return a->Snapshot().ready; });  // claimed anew, labelled anew
  EXPECT_TRUE(HasLabel("a"));
}

TEST_F(LabelTest, AppearsWithTheConfirmedLicenseAndNeverClaimsMoreThanAClaimTtl) {
  auto a = MakeLabelled("a");
  EXPECT_FALSE(HasLabel("a"));
  int writes = fs_.unsynced_writes();
  StepChecking(*a, "a", [&] { return a->Snapshot().ready; });
  ASSERT_TRUE(HasLabel("a"));
  for (int i = 0; i < 12; ++i) {
    a->Step();
    auto expiry = LabelExpiry("a");
    ASSERT_TRUE(expiry) << i;
    EXPECT_LE(*expiry, clock_.WallNow() + seconds(6)) << i;  // claim_ttl
    EXPECT_GT(*expiry, clock_.WallNow() + seconds(2)) << i;  // refreshed with the renewals
    clock_.Advance(seconds(1));
  }
  // Rewritten when the expiry moved by more than a heartbeat: every other renewal, not each.
  int label_writes = fs_.unsynced_writes() - writes - 2;  // hint and host-dir probe
  EXPECT_GE(label_writes, 5);
  EXPECT_LE(label_writes, 8);
}

TEST_F(LabelTest, GoesInTheStepAHigherTokenTakesTheLicenseOver) {
  auto a = MakeLabelled("a");
  StepChecking(*a, "a", [&] { return a->Snapshot().ready; });
  std::string lic = a->Snapshot().license;
  license::ClaimRecord other{"z", "pod-z", a->Snapshot().token + 5, 0, 0, 0, false};
  ASSERT_TRUE(fs_.WriteAtomic("/pool/" + lic + "/lockedby", license::SerializeClaim(other), 0644).ok());
  a->Step();
  EXPECT_EQ(a->Snapshot().withdrawals, 1u);
  EXPECT_FALSE(HasLabel("a"));
}

TEST_F(LabelTest, GoesInTheStepTheHolderSelfFences) {
  auto a = MakeLabelled("a");
  StepChecking(*a, "a", [&] { return a->Snapshot().ready; });
  fs_.FailReads("/pool", Unavailable("Input/output error"));
  fs_.FailWrites("/pool", Unavailable("Input/output error"));
  int beats = StepChecking(*a, "a", [&] { return a->Snapshot().withdrawals > 0; });
  EXPECT_LT(beats, 6);
  EXPECT_FALSE(HasLabel("a"));
  fs_.ClearFaults();
  StepChecking(*a, "a", [&] { return a->Snapshot().ready; });
  EXPECT_TRUE(HasLabel("a"));
}

TEST_F(LabelTest, GoesWhenInstallsFailAndTheLicenseIsGivenBack) {
  auto a = MakeLabelled("a");
  StepChecking(*a, "a", [&] { return a->Snapshot().ready; });
  fs_.FailWrites("/host/a", {StatusCode::kPermissionDenied, "Read-only file system"});
  fs_.AddFile("/pool/" + a->Snapshot().license + "/lic/host_id", "NEW");
  a->Step();  // the reinstall fails: the license is not usable here any more
  EXPECT_FALSE(HasLabel("a"));
  Run({a.get()}, 4);
  EXPECT_EQ(a->Snapshot().install_giveups, 1u);
  EXPECT_FALSE(HasLabel("a"));
}

TEST_F(LabelTest, GoesWhenTheLicenseLeavesThePool) {
  auto a = MakeLabelled("a");
  StepChecking(*a, "a", [&] { return a->Snapshot().ready; });
  ASSERT_TRUE(fs_.RemoveAll("/pool/" + a->Snapshot().license).ok());
  a->Step();
  EXPECT_EQ(a->Snapshot().withdrawals, 1u);
  EXPECT_FALSE(HasLabel("a"));
}

TEST_F(LabelTest, GoesWithLicenseHolderReleaseWhetherOrNotTheAgentRuns) {
  auto a = MakeLabelled("a");
  StepChecking(*a, "a", [&] { return a->Snapshot().ready; });
  ASSERT_TRUE(ReleaseNode(Labelled("a"), fs_, client_, clock_).ok());
  EXPECT_FALSE(HasLabel("a"));  // removed by the release command itself
  a->Step();
  EXPECT_EQ(a->Snapshot().phase, Phase::kReleased);
  EXPECT_FALSE(HasLabel("a"));
}

TEST_F(LabelTest, AgentSeeingTheReleaseMarkerRemovesTheLabel) {
  auto a = MakeLabelled("a");
  StepChecking(*a, "a", [&] { return a->Snapshot().ready; });
  fs_.AddFile("/host/a/.release-requested", "1\n");
  a->Step();
  EXPECT_EQ(a->Snapshot().phase, Phase::kReleased);
  EXPECT_FALSE(HasLabel("a"));
}

TEST_F(LabelTest, ReleaseOnExitRemovesItDefaultExitLeavesItToExpire) {
  AgentConfig c = Labelled("a");
  c.release_on_exit = true;
  Agent leaving(c, fs_, client_, clock_, sleeper_);
  leaving.Start();
  StepChecking(leaving, "a", [&] { return leaving.Snapshot().ready; });
  leaving.OnExit();
  EXPECT_FALSE(HasLabel("a"));

  auto b = MakeLabelled("b");
  StepChecking(*b, "b", [&] { return b->Snapshot().ready; });
  b->OnExit();  // claim and files stay for this node's next pod, and so does the label...
  ASSERT_TRUE(HasLabel("b"));
  auto expiry = LabelExpiry("b");  // ...until a claim TTL at most, if no pod renews it
  ASSERT_TRUE(expiry);
  EXPECT_LE(*expiry, clock_.WallNow() + seconds(6));
}

TEST_F(LabelTest, DuplicatePodWithTheSameNodeNameDoesNotLabelItsHost) {
  auto first = MakeLabelled("a");
  StepChecking(*first, "a", [&] { return first->Snapshot().ready; });
  AgentConfig c = Labelled("a2");
  c.node = "a";
  c.pod = "pod-a-duplicate";
  fs_.AddDir(c.host_dir);
  fs_.AddFile(c.nfd_feature_file, "feature.node.kubernetes.io/bitfusion-license=true\n");  // stale
  Agent second(c, fs_, client_, clock_, sleeper_);
  second.Start();
  Run({first.get(), &second}, 5);
  EXPECT_TRUE(first->Snapshot().ready);
  EXPECT_TRUE(HasLabel("a"));
  EXPECT_FALSE(HasLabel("a2"));
}

TEST_F(LabelTest, LabelThatCannotBeRemovedIsReportedAndRetried) {
  auto a = MakeLabelled("a");
  StepChecking(*a, "a", [&] { return a->Snapshot().ready; });
  fs_.FailWrites("/nfd/a", {StatusCode::kPermissionDenied, "Read-only file system"});
  fs_.AddFile("/host/a/.release-requested", "1\n");
  a->Step();
  EXPECT_TRUE(HasLabel("a"));
  EXPECT_NE(a->Snapshot().last_error.find("NFD_FEATURE_FILE /nfd/a/bitfusion-license"),
            std::string::npos)
      << a->Snapshot().last_error;
  fs_.ClearFaults();
  a->Step();
  EXPECT_FALSE(HasLabel("a"));
}


// ---- issue 17: the operator's console --------------------------------------------------------

class ConsoleTest : public AgentTest {
 protected:
  // The last report `node` sent.
  const console::AgentReport* LastReport(const std::string& node) {
    for (auto it = client_.reports.rbegin(); it != client_.reports.rend(); ++it) {
      if (it->report.node == node) return &*it;
    }
    return nullptr;
  }
  console::NodeState LastState(const std::string& node) {
    const console::AgentReport* r = LastReport(node);
    return r ? r->report.state : console::NodeState::kGone;
  }
  void OneLicense() {
    ASSERT_TRUE(fs_.RemoveAll("/pool/license2").ok());
    ASSERT_TRUE(fs_.RemoveAll("/pool/license3").ok());
  }
  using Strings = std::vector<std::string>;
};

TEST_F(ConsoleTest, ReportAfterTheClaimCarriesPodStateLicenseVersionAndTheClaimEvent) {
  AgentConfig c = Config("a");
  c.version = "9.8.7";
  Agent a(c, fs_, client_, clock_, sleeper_);
  a.Start();
  a.Step();
  // Twice for the directives, with no event: before the claim attempt, and once it has the
  // mutex (directives may have changed while it waited). Then at once after the claim, though
  // half a heartbeat has not passed: the state changed.
  ASSERT_EQ(client_.reports.size(), 3u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(client_.reports[i].report.state, console::NodeState::kWaiting);
    EXPECT_TRUE(client_.reports[i].events.empty());
  }
  const console::AgentReport& r = client_.reports[2];
  EXPECT_EQ(r.report.node, "a");
  EXPECT_EQ(r.report.pod, "pod-a");
  EXPECT_EQ(r.report.state, console::NodeState::kHeld);
  EXPECT_EQ(r.report.license, a.Snapshot().license);
  EXPECT_EQ(r.report.version, "9.8.7");
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].kind, console::EventKind::kClaim);
  EXPECT_EQ(r.events[0].license, a.Snapshot().license);
  EXPECT_EQ(r.events[0].token, a.Snapshot().token);
  // Written under the mutex before the settle: the event keeps the agent's time of the claim.
  EXPECT_LE(r.events[0].time, clock_.WallNow());
  EXPECT_EQ(a.Snapshot().reporting.buffered, 0u);
}

TEST_F(ConsoleTest, ReportComesAfterTheRenewalAndItsTimeNeverDelaysTheNext) {
  auto a = Make("a");
  a->Step();
  std::string lic = a->Snapshot().license;
  // A tokenmgr that takes the whole report timeout (a quarter heartbeat) and then fails.
  int64_t renewed_seen = 0;
  client_.on_report = [&] {
    renewed_seen = license::ParseClaim(*fs_.Content("/pool/" + lic + "/lockedby"))->renewed_at_ms;
    EXPECT_EQ(renewed_seen, UnixMillis(clock_.WallNow()));  // renewed just before the report
    clock_.Advance(client_.report_timeout);
  };
  client_.report_status = Unavailable("timed out");
  uint64_t renewals = a->Snapshot().renewals;
  SteadyTime start = clock_.Now();
  for (int i = 0; i < 10; ++i) clock_.Advance(a->Step());
  EXPECT_EQ(client_.report_timeout, milliseconds(250));
  EXPECT_EQ(a->Snapshot().renewals, renewals + 10);
  EXPECT_EQ(clock_.Now() - start, seconds(10));  // one renewal per heartbeat, report included
  EXPECT_TRUE(a->Snapshot().ready);
  EXPECT_EQ(Installed("a"), "ID" + lic.substr(7));
}

TEST_F(ConsoleTest, WaitingNodeReportsWaitingWithWaitStartOnceThenWaitEndAndClaim) {
  OneLicense();
  auto a = Make("a"), b = Make("b");
  Run({a.get(), b.get()}, 4);
  EXPECT_EQ(LastState("b"), console::NodeState::kWaiting);
  EXPECT_EQ(LastReport("b")->report.license, "");
  EXPECT_TRUE(b->Snapshot().waiting);
  EXPECT_EQ(client_.StoredKinds("b"), Strings{"wait_start"});
  ASSERT_TRUE(ReleaseNode(Config("a"), fs_, client_, clock_).ok());
  Run({a.get(), b.get()}, 2);
  EXPECT_EQ(client_.StoredKinds("b"), (Strings{"wait_start", "wait_end:claimed", "claim"}));
  EXPECT_EQ(LastState("b"), console::NodeState::kHeld);
  EXPECT_EQ(client_.StoredKinds("a"), (Strings{"claim", "release:license-holder release"}));
  EXPECT_EQ(LastState("a"), console::NodeState::kReleased);
}

TEST_F(ConsoleTest, StaleTakeoverNamesTheFormerHolderWhoWithdrawsAsTakenOver) {
  OneLicense();
  auto a = Make("a"), b = Make("b");
  Run({a.get(), b.get()}, 2);
  for (int i = 0; i < 10 && !b->Snapshot().ready; ++i) {  // a is paused
    b->Step();
    clock_.Advance(seconds(1));
  }
  ASSERT_TRUE(b->Snapshot().ready);
  EXPECT_EQ(client_.StoredKinds("b"), (Strings{"wait_start", "wait_end:claimed", "takeover:a"}));
  a->Step();  // resumes long past its fence time: it withdraws before anything else
  for (int i = 0; i < 2; ++i) {  // then it reports, and starts waiting (reported a step later)
    clock_.Advance(seconds(1));
    a->Step();
  }
  EXPECT_EQ(client_.StoredKinds("a"), (Strings{"claim", "withdraw:self-fenced", "wait_start"}));
}

TEST_F(ConsoleTest, HolderOverwrittenByAHigherTokenWithdrawsAsTakenOver) {
  auto a = Make("a");
  a->Step();
  std::string lic = a->Snapshot().license;
  license::ClaimRecord other{"z", "pod-z", a->Snapshot().token + 5, 0, 0, 0, false};
  ASSERT_TRUE(
      fs_.WriteAtomic("/pool/" + lic + "/lockedby", license::SerializeClaim(other), 0644).ok());
  clock_.Advance(seconds(1));
  a->Step();
  EXPECT_EQ(client_.StoredKinds("a").at(1), "withdraw:taken over");
}

TEST_F(ConsoleTest, WithdrawalsSayWhy) {
  auto a = Make("a");
  a->Step();
  std::string lic = a->Snapshot().license;
  fs_.FailReads("/pool", Unavailable("Input/output error"));
  fs_.FailWrites("/pool", Unavailable("Input/output error"));
  for (int i = 0; i < 6 && !Installed("a").empty(); ++i) {
    clock_.Advance(seconds(1));
    a->Step();
  }
  fs_.ClearFaults();
  Run({a.get()}, 3);  // reports the self-fencing, claims again
  ASSERT_TRUE(a->Snapshot().ready);
  lic = a->Snapshot().license;
  ASSERT_TRUE(fs_.RemoveAll("/pool/" + lic).ok());
  Run({a.get()}, 2);
  Strings kinds = client_.StoredKinds("a");
  ASSERT_GE(kinds.size(), 4u);
  EXPECT_EQ(Strings(kinds.begin(), kinds.begin() + 4),
            (Strings{"claim", "withdraw:self-fenced", "claim", "withdraw:unusable"}));
  // At start, a license installed here but not claimed by this node: drift.
  auto b = Make("b");
  b->Step();
  std::string blic = b->Snapshot().license;
  b.reset();
  license::ClaimRecord other{"z", "pod-z", 999, 0, 0, 0, false};
  ASSERT_TRUE(
      fs_.WriteAtomic("/pool/" + blic + "/lockedby", license::SerializeClaim(other), 0644).ok());
  client_.stored.clear();
  auto again = Make("b");
  again->Step();
  EXPECT_EQ(client_.StoredKinds("b").at(0), "withdraw:drift");
}

TEST_F(ConsoleTest, EventsOfAKilledAgentAreSentByItsNextPodFromTheHostDir) {
  client_.report_status = Unavailable("console history: events not stored");
  auto a = Make("a");
  a->Step();  // claims; the claim event is not stored
  ASSERT_TRUE(fs_.Exists("/host/a/.license-holder-events.json"));
  const std::string lic = a->Snapshot().license;
  a.reset();  // kill -9: no exit path runs
  ASSERT_TRUE(client_.StoredKinds("a").empty());
  client_.report_status = Status::Ok();
  auto again = Make("a");
  clock_.Advance(seconds(1));
  again->Step();
  EXPECT_EQ(client_.StoredKinds("a"), Strings{"claim"});
  EXPECT_EQ(client_.stored[0].license, lic);
}

TEST_F(ConsoleTest, CordonWithdrawsAndFreesTheClaimInTheSameStepThenClaimsNothing) {
  OneLicense();
  auto a = Make("a"), b = Make("b");
  Run({a.get(), b.get()}, 2);
  ASSERT_EQ(Installed("a"), "ID1");
  client_.cordoned.insert("a");
  a->Step();  // renews, reports, learns of the cordon: withdraws and gives back at once
  EXPECT_EQ(Installed("a"), "");
  EXPECT_FALSE(fs_.Exists("/pool/license1/lockedby"));  // free now, not after a claim TTL
  EXPECT_TRUE(a->Snapshot().cordoned);
  b->Step();  // the waiting node gets it at its next step
  EXPECT_EQ(Installed("b"), "ID1");
  ASSERT_TRUE(ReleaseNode(Config("b"), fs_, client_, clock_).ok());  // license1 free again
  int calls = client_.calls;
  Run({a.get()}, 5);
  EXPECT_EQ(Installed("a"), "");
  EXPECT_FALSE(fs_.Exists("/pool/license1/lockedby"));
  EXPECT_EQ(client_.calls, calls);  // not even the mutex
  EXPECT_EQ(client_.StoredKinds("a"),
            (Strings{"claim", "withdraw:cordoned", "release:cordoned"}));
  EXPECT_EQ(LastState("a"), console::NodeState::kCordoned);
  EXPECT_FALSE(a->Snapshot().ready);
  EXPECT_FALSE(a->Snapshot().degraded);
  EXPECT_NE(a->Snapshot().last_error.find("cordoned"), std::string::npos);
  EXPECT_NE(a->RenderMetrics().find("license_holder_cordoned 1"), std::string::npos);
  // Uncordoned: claims as usual from the next step on.
  client_.cordoned.clear();
  Run({a.get()}, 2);
  EXPECT_EQ(Installed("a"), "ID1");
  EXPECT_FALSE(a->Snapshot().cordoned);
  EXPECT_NE(a->RenderMetrics().find("license_holder_cordoned 0"), std::string::npos);
}

TEST_F(ConsoleTest, CordonWhileWaitingEndsTheWait) {
  OneLicense();
  auto a = Make("a"), b = Make("b");
  Run({a.get(), b.get()}, 2);
  client_.cordoned.insert("b");
  Run({a.get(), b.get()}, 2);
  EXPECT_EQ(client_.StoredKinds("b"), (Strings{"wait_start", "wait_end:cordoned"}));
  EXPECT_EQ(LastState("b"), console::NodeState::kCordoned);
  EXPECT_FALSE(b->Snapshot().waiting);
}

TEST_F(ConsoleTest, DisabledLicenseIsWithdrawnGivenBackAndNeverChosen) {
  auto a = Make("a");
  a->Step();
  std::string lic = a->Snapshot().license;
  client_.disabled.insert(lic);
  clock_.Advance(seconds(1));
  a->Step();
  EXPECT_NE(Installed("a"), "ID" + lic.substr(7));
  EXPECT_FALSE(fs_.Exists("/pool/" + lic + "/lockedby"));
  Run({a.get()}, 2);  // takes another one
  Strings kinds = client_.StoredKinds("a");
  ASSERT_GE(kinds.size(), 3u);
  EXPECT_EQ(Strings(kinds.begin(), kinds.begin() + 3),
            (Strings{"claim", "withdraw:disabled", "release:disabled"}));
  EXPECT_TRUE(a->Snapshot().ready);
  EXPECT_NE(a->Snapshot().license, lic);
  // With only the disabled one free, nobody takes it, not even past a claim TTL.
  auto b = Make("b"), c = Make("c");
  Run({a.get(), b.get(), c.get()}, 10);
  EXPECT_FALSE(fs_.Exists("/pool/" + lic + "/lockedby"));
  EXPECT_FALSE(b->Snapshot().ready && c->Snapshot().ready);
  EXPECT_NE(b->Snapshot().license, lic);
  EXPECT_NE(c->Snapshot().license, lic);
  client_.disabled.clear();
  Run({a.get(), b.get(), c.get()}, 2);
  EXPECT_TRUE(b->Snapshot().ready && c->Snapshot().ready);
}

TEST_F(ConsoleTest, ALicenseDisabledBeforeTheFirstReportIsNeverClaimed) {
  OneLicense();
  client_.disabled.insert("license1");  // disabled while this agent was not running
  auto a = Make("a");
  Run({a.get()}, 3);
  EXPECT_FALSE(fs_.Exists("/pool/license1/lockedby"));
  EXPECT_EQ(a->Snapshot().license, "");
  EXPECT_EQ(client_.StoredKinds("a"), Strings{"wait_start"});
}

// An operator acts while agents wait for the mutex (long polls of up to claim TTL / 2): the
// directives they fetched before queueing are stale by the time they get it.
TEST_F(ConsoleTest, ACordonWhileWaitingForTheMutexIsObeyedBeforeClaiming) {
  OneLicense();
  auto a = Make("a");
  client_.on_lock = [&] { client_.cordoned.insert("a"); };
  a->Step();
  EXPECT_FALSE(fs_.Exists("/pool/license1/lockedby"));
  EXPECT_EQ(a->Snapshot().license, "");
  EXPECT_TRUE(a->Snapshot().cordoned);
  EXPECT_FALSE(client_.held);  // the mutex was given back
}

TEST_F(ConsoleTest, ALicenseDisabledWhileWaitingForTheMutexIsNotClaimed) {
  OneLicense();
  auto a = Make("a");
  client_.on_lock = [&] { client_.disabled.insert("license1"); };
  a->Step();
  EXPECT_FALSE(fs_.Exists("/pool/license1/lockedby"));
  EXPECT_EQ(a->Snapshot().license, "");
}

TEST_F(ConsoleTest, ACordonedNodeStartingUpClaimsNothing) {
  client_.cordoned.insert("a");
  auto a = Make("a");
  Run({a.get()}, 3);
  EXPECT_EQ(a->Snapshot().license, "");
  EXPECT_EQ(LastState("a"), console::NodeState::kCordoned);
}

TEST_F(ConsoleTest, RestartedNodeGivesBackTheDisabledLicenseItAdoptedAtItsFirstReport) {
  auto a = Make("a");
  a->Step();
  std::string lic = a->Snapshot().license;
  a.reset();
  client_.disabled.insert(lic);
  auto again = Make("a");  // adopts its claim (no directives known yet)
  clock_.Advance(seconds(1));
  again->Step();
  EXPECT_FALSE(fs_.Exists("/pool/" + lic + "/lockedby"));
  EXPECT_NE(again->Snapshot().license, lic);
}

TEST_F(ConsoleTest, UnreachableTokenmgrKeepsTheLicenseRenewingAndTheLastDirectives) {
  auto a = Make("a"), b = Make("b");
  Run({a.get(), b.get()}, 1);
  client_.cordoned.insert("b");
  Run({a.get(), b.get()}, 1);
  ASSERT_TRUE(b->Snapshot().cordoned);
  client_.down = true;
  client_.cordoned.clear();  // not heard: tokenmgr is unreachable
  uint64_t renewals = a->Snapshot().renewals;
  Run({a.get(), b.get()}, 20);  // far past a claim TTL
  EXPECT_TRUE(a->Snapshot().ready);
  EXPECT_EQ(a->Snapshot().renewals, renewals + 20);
  EXPECT_TRUE(b->Snapshot().cordoned);
  EXPECT_EQ(Installed("b"), "");
  EXPECT_GE(a->Snapshot().reporting.failures, 20u);
  client_.down = false;
  Run({a.get(), b.get()}, 2);
  EXPECT_TRUE(b->Snapshot().ready);
}

TEST_F(ConsoleTest, TokenmgrWithoutTheConsoleIsAskedOnlyOnceInFiveMinutes) {
  client_.report_status = NotFound("tokenmgr answered the node report with HTTP 404");
  auto a = Make("a");
  Run({a.get()}, 60);
  EXPECT_EQ(client_.reports.size(), 1u);
  EXPECT_TRUE(a->Snapshot().ready);
  EXPECT_TRUE(a->Snapshot().reporting.paused);
}

TEST_F(ConsoleTest, ReportingOffSendsNothing) {
  AgentConfig c = Config("a");
  c.report = false;
  Agent a(c, fs_, client_, clock_, sleeper_);
  a.Start();
  client_.cordoned.insert("a");
  for (int i = 0; i < 3; ++i) {
    a.Step();
    clock_.Advance(seconds(1));
  }
  EXPECT_TRUE(client_.reports.empty());
  EXPECT_TRUE(a.Snapshot().ready);
}

TEST_F(ConsoleTest, MetricsCountBufferedAndDroppedEvents) {
  client_.report_status = Unavailable("down");
  auto a = Make("a");
  a->Step();
  std::string m = a->RenderMetrics();
  EXPECT_NE(m.find("license_holder_report_events_buffered 1"), std::string::npos) << m;
  EXPECT_NE(m.find("license_holder_report_events_dropped_total 0"), std::string::npos);
  // The three reports of the claim step failed: before the attempt, with the mutex, and after it
  // with the claim.
  EXPECT_NE(m.find("license_holder_report_failures_total 3"), std::string::npos);
  EXPECT_NE(m.find("license_holder_reports_total 0"), std::string::npos);
}

TEST_F(ConsoleTest, WaitingBackoffNeverExceedsAHeartbeat) {
  client_.down = true;
  auto a = Make("a");
  for (int i = 0; i < 30; ++i) {
    auto d = a->Step();
    EXPECT_LE(d, seconds(1)) << "step " << i;
    clock_.Advance(d);
  }
}

// Two pods with one NODE_NAME share the node's host dir: the one that starts second leaves the
// first one's install in progress and the release request it serves alone.
TEST_F(AgentTest, ASecondAgentOnTheHostDirLeavesTheFirstOnesFilesAlone) {
  AgentConfig c = Config("n1");
  fs_.AddDir(c.host_dir + "/.staging-0123456789abcdef");
  fs_.AddFile(license::ReleaseMarkerPath(c.host_dir), "requested\n");
  {
    auto first_lock = fs_.TryLockDir(c.host_dir);  // the first agent's, in another process
    ASSERT_TRUE(first_lock.ok());
    Agent second(c, fs_, client_, clock_, sleeper_);
    second.Start();
    EXPECT_TRUE(fs_.Exists(c.host_dir + "/.staging-0123456789abcdef"));
    EXPECT_TRUE(fs_.Exists(license::ReleaseMarkerPath(c.host_dir)));
  }
  Agent alone(c, fs_, client_, clock_, sleeper_);  // the first one has gone: the dir is its own
  alone.Start();
  EXPECT_FALSE(fs_.Exists(c.host_dir + "/.staging-0123456789abcdef"));
  EXPECT_FALSE(fs_.Exists(license::ReleaseMarkerPath(c.host_dir)));
}

}  // namespace
}  // namespace lm::holder
