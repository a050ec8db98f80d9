// The agent and tokenmgr's pool view apply one rule (license/rules.h): for every kind of pool
// entry, the view shows a license as free or stale exactly when an agent looking for a license
// asks for the mutex to claim it, and the agent's pool counts name the state the view shows.
// (The view knows no node, so "this node's own claim" is not among the cases: the agent
// re-claims it under the mutex while the view shows it held.)
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "holder/agent.h"
#include "holder/fake_client.h"
#include "license/fake_fs.h"
#include "license/pool_view.h"

namespace lm::holder {
namespace {

using license::FakeFilesystem;
using license::LicenseState;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr const char* kClaim = "/pool/license1/lockedby";
constexpr int kTtlBeats = 6;  // claim TTL in heartbeats

std::string ClaimBy(const std::string& node, uint64_t renewals) {
  return license::SerializeClaim({node, "pod-" + node, 5, renewals, 0, 0, false});
}

uint64_t AgentCount(const AgentSnapshot& s, LicenseState state) {
  switch (state) {
    case LicenseState::kFree:
      return s.pool_free;
    case LicenseState::kHeld:
      return s.pool_held;
    case LicenseState::kStale:
      return s.pool_stale;
    case LicenseState::kUnreadable:
      return s.pool_unreadable;
    case LicenseState::kUnusable:
      return s.pool_unusable;
  }
  return 0;
}

struct Case {
  const char* name;
  std::function<void(FakeFilesystem&)> setup;
  std::function<void(FakeFilesystem&, int beat)> every_beat;  // e.g. a live holder renewing
  int claimable_at;  // the heartbeat at which the license becomes claimable; -1: never
};

const Case kCases[] = {
    {"free", [](FakeFilesystem&) {}, nullptr, 0},
    {"held, renewed by its holder", nullptr,
     [](FakeFilesystem& fs, int beat) { fs.AddFile(kClaim, ClaimBy("b", beat)); }, -1},
    {"held, not renewed", [](FakeFilesystem& fs) { fs.AddFile(kClaim, ClaimBy("b", 0)); }, nullptr,
     kTtlBeats},
    {"seed-format claim, not rewritten",
     [](FakeFilesystem& fs) { fs.AddFile(kClaim, "flexdirect-x2k9\n"); }, nullptr, kTtlBeats},
    {"garbage claim, unchanged", [](FakeFilesystem& fs) { fs.AddFile(kClaim, "{garbage"); },
     nullptr, kTtlBeats},
    {"garbage claim, rewritten every heartbeat", nullptr,
     [](FakeFilesystem& fs, int beat) { fs.AddFile(kClaim, "{garbage " + std::to_string(beat)); },
     -1},
    {"claim whose content cannot be read (EIO), unchanged",
     [](FakeFilesystem& fs) {
       fs.AddFile(kClaim, ClaimBy("b", 0));
       fs.FailContentReads(kClaim, Unavailable("read: Input/output error"));
     },
     nullptr, kTtlBeats},
    {"claim that cannot even be stat'ed",
     [](FakeFilesystem& fs) {
       fs.AddFile(kClaim, ClaimBy("b", 0));
       fs.FailReads(kClaim, Unavailable("stat: Input/output error"));
     },
     nullptr, -1},
    {"not a license (no lic/host_id)",
     [](FakeFilesystem& fs) { (void)fs.RemoveAll("/pool/license1/lic"); }, nullptr, -1},
    {"not a license, with a claim nobody renews",
     [](FakeFilesystem& fs) {
       (void)fs.RemoveAll("/pool/license1/lic");
       fs.AddFile(kClaim, ClaimBy("b", 0));
     },
     nullptr, -1},
};

TEST(AgentAndPoolView, ClassifyEveryKindOfEntryTheSameWay) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    FakeFilesystem fs;
    FakeClient client;
    FakeClock clock;
    FakeSleeper sleeper(clock);
    fs.AddFile("/pool/license1/lic/host_id", "ID1");
    fs.AddDir("/host/a");
    if (c.setup) c.setup(fs);
    AgentConfig config;
    config.node = "a";
    config.pod = "pod-a";
    config.pool_dir = "/pool";
    config.host_dir = "/host/a";
    config.heartbeat = seconds(1);
    config.claim_ttl = seconds(kTtlBeats);
    config.settle = milliseconds(100);
    Agent agent(config, fs, client, clock, sleeper);
    license::PoolView view(fs, clock, {.dir = "/pool", .claim_ttl = config.claim_ttl});
    agent.Start();

    int claimable_at = -1;
    for (int beat = 0; beat <= kTtlBeats + 3; ++beat) {
      if (c.every_beat) c.every_beat(fs, beat);
      const license::PoolSnapshot& s = view.Refresh();
      ASSERT_EQ(s.rows.size(), 1u);
      LicenseState shown = s.rows[0].state;
      bool view_claimable = shown == LicenseState::kFree || shown == LicenseState::kStale;
      int calls = client.calls;
      agent.Step();
      bool agent_claims = client.calls > calls;  // it asks for the mutex only to claim
      EXPECT_EQ(agent_claims, view_claimable)
          << "heartbeat " << beat << ": the view shows " << LicenseStateName(shown);
      if (agent_claims || view_claimable) {
        claimable_at = beat;
        break;  // the agent changed the pool
      }
      AgentSnapshot snap = agent.Snapshot();
      ASSERT_TRUE(snap.pool_scanned) << "heartbeat " << beat;
      // An agent checks the shape only of entries it could claim (ShapeCheck::kClaimable), so a
      // claim it has not yet seen stale on an entry that is not a license is held to it and
      // unusable to the view; nobody claims it either way.
      LicenseState agent_sees = shown;
      if (shown == LicenseState::kUnusable && snap.pool_held == 1) {
        agent_sees = LicenseState::kHeld;
      }
      EXPECT_EQ(AgentCount(snap, agent_sees), 1u)
          << "heartbeat " << beat << ": the view shows " << LicenseStateName(shown);
      clock.Advance(config.heartbeat);
    }
    EXPECT_EQ(claimable_at, c.claimable_at);
  }
}

}  // namespace
}  // namespace lm::holder
