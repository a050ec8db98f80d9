// Agent: the license-holder's reconcile loop for one node. It takes the tokenmgr mutex, claims a
// license in the pool under it, installs the license into the host directory, renews the claim
// every heartbeat, withdraws the license the moment it is no longer provably ours, and gives it
// back on request. Each heartbeat, after the renewal or claim attempt, it reports the node's state
// and events to tokenmgr's console (holder/reporter.h) and obeys the directives of the answer:
// cordoned, it withdraws and gives the claim back at once and claims nothing; a disabled license
// it withdraws and gives back, and never claims. Depends only on interfaces (Filesystem,
// TokenmgrClient, Clock, Sleeper), so every rule is unit-tested with fakes. Step()/Run() run on
// one thread; Snapshot(), RenderMetrics() and Healthy() are thread-safe.
//
//   Agent agent(config, fs, client, RealTimeSystem::Get(), sleeper);
//   agent.Run();            // until sleeper.Stop()
//   agent.OnExit();         // gives the license back only with release_on_exit
//
// The protocol and its races are described in docs/architecture.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "client/tokenmgr_client.h"
#include "common/clock.h"
#include "common/histogram.h"
#include "common/sleeper.h"
#include "console/console.h"
#include "holder/feature_file.h"
#include "holder/fence_guard.h"
#include "holder/reporter.h"
#include "license/layout.h"
#include "license/fs.h"
#include "license/installer.h"
#include "license/pool.h"
#include "license/rules.h"

namespace lm::holder {

using std::chrono::milliseconds;
using std::chrono::seconds;

struct AgentConfig {
  std::string node;
  std::string pod;
  std::string pool_dir = "/mnt/bitfusionio";
  std::string host_dir = "/etc/bitfusionio";
  seconds heartbeat{10};
  seconds claim_ttl{60};
  seconds lock_ttl{10};          // the tokenmgr lease we ask for; the critical section is short
  milliseconds settle{2000};     // wait between writing a claim and trusting it
  std::string servers_conf;      // rendered; written after every install
  bool release_on_exit = false;
  // Node Feature Discovery feature file labelling this node while it holds a confirmed license
  // (see holder/feature_file.h); empty: no label.
  std::string nfd_feature_file;
  // Report the node's state and events to tokenmgr's console each heartbeat, and obey its
  // directives (cordon, disabled licenses). Off: neither.
  bool report = true;
  std::string version;  // the build's version, sent in the reports
  // An unconfirmed claim is withdrawn after this long: claim_ttl - 2 * heartbeat.
  std::chrono::nanoseconds FenceAfter() const { return claim_ttl - 2 * heartbeat; }
  // This node's claim written by another pod is taken over only after it stayed unchanged this
  // long (the other pod is gone: a DaemonSet rolling update); while it changes, another pod with
  // the same NODE_NAME keeps it alive and this agent refuses to serve.
  std::chrono::nanoseconds AdoptAfter() const { return 3 * heartbeat; }
  // Consecutive failed installs after which a claimed license is given back.
  static constexpr int kMaxInstallFailures = 3;
};

enum class Phase { kAcquiring, kHolding, kReleased };

struct AgentSnapshot {
  Phase phase = Phase::kAcquiring;
  std::string license;
  uint64_t token = 0;
  bool installed = false;
  bool ready = false;
  bool degraded = false;
  std::string last_error;
  std::optional<double> claim_age_s;  // since the last confirmed renewal; unset when not holding
  uint64_t acquire_attempts = 0;
  uint64_t acquisitions = 0;
  uint64_t withdrawals = 0;
  uint64_t renewals = 0;
  uint64_t renew_failures = 0;
  uint64_t token_regressions = 0;  // grants below a token already in the pool
  uint64_t install_giveups = 0;    // claims given back because installs kept failing
  // Counts at this agent's last full scan (it scans only while looking for a license).
  uint64_t pool_free = 0, pool_held = 0, pool_stale = 0, pool_unreadable = 0, pool_unusable = 0;
  bool pool_scanned = false;
  // The operator's console (issue 17).
  bool cordoned = false;  // by the last directives tokenmgr answered
  bool waiting = false;   // looked for a license and none could be had
  ReporterStats reporting;
};

class Agent {
 public:
  Agent(AgentConfig config, license::Filesystem& fs, client::TokenmgrClient& client,
        const Clock& clock, Sleeper& sleeper);

  // Start-up: cleans interrupted installs and adopts this node's existing claim, if any.
  void Start();
  // One reconcile step; returns how long to wait before the next one.
  std::chrono::nanoseconds Step();
  // Start(), then Step() and sleep until the sleeper is stopped.
  void Run();
  // Starts the fence guard's thread (fence_guard.h), which reads the clock from another thread:
  // for the real clock only (license-holder's main); tests drive CheckFenceGuard() instead.
  void StartFenceGuard() { guard_.StartThread(); }
  // What the guard's thread does, once, on the caller's thread; true if it withdrew.
  bool CheckFenceGuard() { return guard_.Check(); }
  // On shutdown: with release_on_exit, gives the claim back and withdraws the files; otherwise
  // marks the claim as left to this node's next pod (claim and files stay).
  void OnExit();

  AgentSnapshot Snapshot() const;
  std::string RenderMetrics() const;
  // False if the loop has not finished a step for 3 heartbeats (hung storage, deadlock).
  bool Healthy() const;

 private:
  struct Candidate {
    std::string name;
    enum Kind { kMine, kFree, kStale } kind;
    std::string fingerprint;  // for kStale: what must still be there under the mutex
  };

  std::chrono::nanoseconds Acquire();
  std::chrono::nanoseconds Keep();
  std::vector<Candidate> ChooseCandidates();
  std::vector<Candidate> FullScan();
  // This node's claim on `name` (read as `v`): a candidate to (re-)claim, or nullopt. A claim
  // written by another pod is one only once that pod stopped renewing it (AdoptAfter); while it
  // renews, *refuse is set and the agent serves nothing.
  std::optional<Candidate> NodeClaimCandidate(const std::string& name, const license::ClaimView& v,
                                              bool* refuse);
  bool OtherPod(const license::ClaimRecord& r) const;
  // Remembers (and logs once per change) that `name` cannot be installed.
  void NoteUnusable(const std::string& name, const std::string& fingerprint,
                    const std::string& problem);
  // True if `name` failed to install with exactly this content recently.
  bool RecentlyUnusable(const std::string& name, const std::string& fingerprint) const;
  // Withdraws the files and gives our claim back to the pool (if it is still ours), so that
  // the license is free at once. `reason`: the withdraw event's detail (one of
  // console::kWithdrawReasons, or empty for none). The claim is kept (it goes stale after the
  // claim TTL) if the files could not be removed, unless installing them had failed anyway.
  void GiveBack(std::string_view reason, const std::string& why);
  // Claims one candidate under the mutex; sets *token_regression (and claims nothing) if a
  // claim it reads carries a higher token than the grant. *claimed_at_ms: the claim record's
  // claimed_at_ms (when it was written, or the adopted claim's own). *former_holder: the node
  // whose stale claim was taken over (empty for a free license or this node's own claim).
  std::optional<std::string> ClaimUnderMutex(const std::vector<Candidate>& candidates,
                                             const client::LockGrant& grant, SteadyTime granted_at,
                                             license::LicenseFiles& files_out,
                                             int64_t* claimed_at_ms, std::string* former_holder,
                                             bool* token_regression);
  bool Settle(const std::string& name, uint64_t token);
  Status WriteOwnClaim(const std::string& name, uint64_t token, uint64_t renewals,
                       int64_t claimed_at_ms, bool exiting = false);
  bool Confirmed(const std::string& name, uint64_t token);
  // Takes the license off the host. `reason`: the withdraw event's detail (one of
  // console::kWithdrawReasons; empty: no withdraw event).
  void Withdraw(std::string_view reason, const std::string& why);
  // ReportAndObey, returning how long it took.
  std::chrono::nanoseconds TimedReport();
  // Reports to tokenmgr if due (now: at once, without events, see Reporter::Refresh) and obeys
  // the directives of its answer.
  void ReportAndObey(bool now = false);
  void Obey();
  console::NodeState ReportedState() const;
  // wait_start once when no license can be had; wait_end when one is claimed or looking stops.
  void StartWaiting();
  void StopWaiting(const std::string& license, const std::string& detail);
  // The NFD label follows the license: present (expiring a claim TTL after the last
  // confirmation) while the license is installed and confirmed, removed otherwise. Every step.
  void SyncLabel();
  void Unlabel();
  // Removes the installed files; on failure they are removed again at every step until done.
  bool RemoveInstalled();
  bool InstallHeld(const license::LicenseFiles& files);
  bool ReleaseRequested();
  bool FenceIfUnconfirmed();
  void WriteHint(const std::string& name);
  std::optional<std::string> ReadHint();
  std::chrono::nanoseconds Backoff();
  void SetError(const std::string& error);
  void Publish();

  AgentConfig config_;
  license::Filesystem& fs_;
  client::TokenmgrClient& client_;
  const Clock& clock_;
  Sleeper& sleeper_;
  license::Pool pool_;
  license::Installer installer_;
  license::StalenessObserver observer_;
  FeatureFile label_;
  int64_t started_unix_ms_ = 0;

  // Loop state (loop thread only).
  Phase phase_ = Phase::kAcquiring;
  std::string license_;
  uint64_t token_ = 0;
  uint64_t renewals_ = 0;
  int64_t claimed_at_ms_ = 0;
  bool installed_ = false;
  bool withdraw_pending_ = false;  // files of a withdrawn license may still be in the host dir
  std::string installed_hash_;
  std::optional<SteadyTime> last_confirmed_;
  std::optional<SteadyTime> acquiring_since_;
  int failures_ = 0;
  int install_failures_ = 0;  // consecutive, while holding
  struct Unusable {
    std::string fingerprint;  // license content (CheckLicense)
    std::string problem;
    SteadyTime since;
  };
  std::map<std::string, Unusable> unusable_;  // licenses that cannot be installed, logged once
  std::map<std::string, SteadyTime> other_pod_seen_;  // node claims by other pods: first seen
  std::vector<Candidate> queued_candidates_;  // reused after a long poll ended without the mutex
  std::optional<SteadyTime> candidates_at_;
  FileSpool spool_;  // HOST_DIR/.license-holder-events.json
  Reporter reporter_;
  bool waiting_ = false;            // wait_start recorded, wait_end not yet
  bool nothing_claimable_ = false;  // the last full scan found no license to claim
  bool step_error_ = false;         // SetError was called in this step (state "degraded")

  // Published state (any thread).
  mutable std::mutex mu_;
  AgentSnapshot snap_;                  // Guarded by mu_
  SteadyTime last_step_done_;           // Guarded by mu_
  Histogram acquire_wait_{{0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600}};  // Guarded by mu_

  // Takes the license off the host at the self-fence deadline when this agent's thread is stuck
  // (a pool that blocks): armed while a confirmed license is installed. Last: destroyed first.
  FenceGuard guard_;
};

std::string_view PhaseName(Phase p);

}  // namespace lm::holder
