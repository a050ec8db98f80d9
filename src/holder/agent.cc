#include "holder/agent.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/metrics_text.h"
#include "common/random.h"
#include "common/strings.h"

namespace lm::holder {

using console::EventKind;
using console::NodeState;
using license::ClaimState;
using license::ClaimView;
using std::chrono::duration;
using std::chrono::duration_cast;

namespace {
constexpr size_t kMaxCandidates = 16;

double Seconds(std::chrono::nanoseconds d) { return duration<double>(d).count(); }

}  // namespace

std::string_view PhaseName(Phase p) {
  switch (p) {
    case Phase::kAcquiring: return "acquiring";
    case Phase::kHolding: return "holding";
    case Phase::kReleased: return "released";
  }
  return "unknown";
}

Agent::Agent(AgentConfig config, license::Filesystem& fs, client::TokenmgrClient& client,
             const Clock& clock, Sleeper& sleeper)
    : config_(std::move(config)),
      fs_(fs),
      client_(client),
      clock_(clock),
      sleeper_(sleeper),
      pool_(fs, config_.pool_dir),
      installer_(fs, config_.host_dir),
      label_(fs, config_.nfd_feature_file, config_.heartbeat),
      spool_(fs, license::JoinPath(config_.host_dir, license::kEventSpool)),
      reporter_({.enabled = config_.report,
                 .node = config_.node,
                 .pod = config_.pod,
                 .version = config_.version,
                 .heartbeat = config_.heartbeat},
                client, clock, &spool_),
      guard_(clock, [this](const std::string& name) {
        // On the guard's thread, while this agent's thread may be stuck on the pool: host dir
        // only. The agent's next step records the withdrawal (its state says fenced).
        spdlog::warn("withdrawing license '{}' from {}: its claim was not confirmed for {} s and "
                     "this agent is still waiting for the pool (it does not answer?); the fence "
                     "guard takes it off now",
                     name, config_.host_dir,
                     duration_cast<std::chrono::seconds>(config_.FenceAfter()).count());
        {
          std::lock_guard<std::mutex> l(mu_);
          snap_.ready = false;
        }
        // The node label first, then the files, as Withdraw() does.
        if (Status s = label_.Unlabel(); !s.ok()) {
          spdlog::error("fence guard: cannot remove the node label {}: {}", label_.path(),
                        s.message());
        }
        if (Status s = installer_.Withdraw(); !s.ok()) {
          spdlog::error("fence guard: cannot remove the license files from {}: {}",
                        config_.host_dir, s.message());
        }
      }) {
  started_unix_ms_ = UnixMillis(clock_.WallNow());
  last_step_done_ = clock_.Now();
}

void Agent::SetError(const std::string& error) {
  if (error != snap_.last_error) spdlog::warn("{}", error);
  step_error_ = true;
  std::lock_guard<std::mutex> l(mu_);
  snap_.last_error = error;
  snap_.degraded = true;
}

void Agent::Start() {
  if (spool_.HeldElsewhere()) {
    // Another agent works in this host dir (two pods with one NODE_NAME): its staging files and
    // the release request it serves are its own. Install() cleans leftovers when it is our turn.
    spdlog::warn("host dir {} is in use by another license-holder: its files are left alone",
                 config_.host_dir);
  } else {
    if (Status s = installer_.CleanLeftovers(); !s.ok()) SetError("host dir: " + s.message());
    // A release request from before this process started is history: a new agent serves anew.
    (void)fs_.RemoveAll(license::ReleaseMarkerPath(config_.host_dir));
  }

  auto manifest = installer_.ReadManifest();
  std::optional<std::string> installed_license;
  if (manifest.ok() && *manifest) installed_license = (*manifest)->license;
  std::vector<std::string> names;
  if (installed_license) names.push_back(*installed_license);
  if (auto hint = ReadHint(); hint && hint != installed_license) names.push_back(*hint);
  for (const std::string& name : names) {
    ClaimView v = pool_.ReadClaim(name);
    if (license::ClaimsNode(v, config_.node) && OtherPod(*v.record)) {
      // Another pod with our NODE_NAME: alive (a duplicate) or gone (a rolling update)? Acquire
      // watches the claim before deciding; the files stay meanwhile (the host dir may be that
      // pod's too).
      spdlog::info(
          "this node's claim on '{}' was written by pod '{}' (this pod is '{}'); "
          "watching whether that pod still renews it",
          name, v.record->pod, config_.pod);
      Publish();
      return;
    }
    if (license::ClaimsNode(v, config_.node)) {
      // Our node's claim, written by an earlier process of this agent on this node (so by this
      // node's clock). Continue it without the mutex only while nobody can have judged it stale
      // yet; an older claim is re-claimed under the mutex by Acquire() like any other.
      int64_t age_ms = UnixMillis(clock_.WallNow()) - v.record->renewed_at_ms;
      auto fresh = duration_cast<std::chrono::milliseconds>(config_.FenceAfter()).count();
      if (age_ms < -1000 || age_ms > fresh) {
        spdlog::info("this node's claim on '{}' was last renewed {} ms ago; re-claiming it under "
                     "the mutex", name, age_ms);
        break;
      }
      // The first Keep() must confirm it before anything else, or the files go.
      phase_ = Phase::kHolding;
      license_ = name;
      token_ = v.record->token;
      renewals_ = v.record->renewals;
      claimed_at_ms_ = v.record->claimed_at_ms;
      installed_ = installed_license == name;
      last_confirmed_.reset();
      // The files go when the claim was last confirmed a fence bound ago, also if the pool
      // stops answering before the first Keep() (fence_guard.h).
      guard_.Arm(clock_.Now() + std::chrono::milliseconds(fresh - std::max<int64_t>(0, age_ms)),
                 name);
      spdlog::info("adopting this node's existing claim on '{}' (token {})", name, token_);
      Publish();
      return;
    }
  }
  if (installed_license) {
    reporter_.Record(EventKind::kWithdraw, *installed_license, 0, "drift");
    Withdraw("", "installed license '" + *installed_license +
             "' is not claimed by this node any more (or the pool is unreadable)");
  }
  Publish();
}

std::chrono::nanoseconds Agent::Step() {
  std::chrono::nanoseconds next = config_.heartbeat;
  std::chrono::nanoseconds spent{0};
  step_error_ = false;
  // A license given up while the host dir could not be written must not stay installed: another
  // node may hold it now. Finish that first, whatever else happens (a new install also would).
  if (withdraw_pending_ && phase_ != Phase::kHolding) RemoveInstalled();
  if (ReleaseRequested()) {
    if (phase_ != Phase::kReleased) {
      if (phase_ == Phase::kHolding) {
        std::string name = license_;
        uint64_t token = token_;
        Withdraw("", "release requested");
        reporter_.Record(EventKind::kRelease, name, token, "license-holder release");
      }
      StopWaiting("", "released");
      spdlog::info("release requested on this node: not claiming a license again until restarted");
      phase_ = Phase::kReleased;
      std::lock_guard<std::mutex> l(mu_);
      snap_.last_error =
          "released by `license-holder release`: this agent claims no license until its pod "
          "restarts";
      snap_.degraded = false;
    }
  } else if (phase_ == Phase::kHolding) {
    // A fixed rate while holding: the step's own time (the renewal's I/O) comes off the wait,
    // so renewals and reports (which carry an operator's cordon) come every heartbeat, not
    // every heartbeat plus the time a slow pool takes.
    const SteadyTime keep_start = clock_.Now();
    next = Keep();
    spent += clock_.Now() - keep_start;
  } else {
    // Before a claim attempt the agent asks for tokenmgr's directives (it needs tokenmgr for
    // the mutex anyway), so it never claims a license an operator disabled since its last
    // report, nor claims while cordoned.
    spent += TimedReport();
    next = Acquire();
  }
  // After the renewal or claim attempt, never before a renewal; the time reports take comes off
  // the wait, so that they never delay the next renewal.
  spent += TimedReport();
  next = std::max<std::chrono::nanoseconds>(std::chrono::nanoseconds(0), next - spent);
  {
    std::lock_guard<std::mutex> l(mu_);
    last_step_done_ = clock_.Now();
  }
  Publish();
  SyncLabel();
  return next;
}

void Agent::Run() {
  Start();
  while (!sleeper_.stopped()) {
    auto d = Step();
    if (d.count() > 0 && !sleeper_.SleepFor(d)) break;
  }
}

std::chrono::nanoseconds Agent::Backoff() {
  ++failures_;
  // At most a heartbeat: a waiting node must see a freed license within a heartbeat.
  auto cap = std::min<std::chrono::nanoseconds>(std::chrono::seconds(30), config_.heartbeat);
  auto base = std::chrono::milliseconds(250) * (1LL << std::min(failures_, 8));
  auto limit = std::min<std::chrono::nanoseconds>(cap, base);
  auto ms = duration_cast<std::chrono::milliseconds>(limit).count();
  return std::min<std::chrono::nanoseconds>(
      config_.heartbeat,
      std::chrono::milliseconds(100 + static_cast<int64_t>(RandomU64() % (ms + 1))));
}

bool Agent::ReleaseRequested() {
  auto info = fs_.Stat(license::ReleaseMarkerPath(config_.host_dir));
  return info.ok() && info->type == license::FileType::kFile;
}

std::optional<std::string> Agent::ReadHint() {
  auto text = fs_.Read(license::HintPath(config_.pool_dir, config_.node), 512);
  if (!text.ok()) return std::nullopt;
  std::string name(Trim(*text));
  if (name.empty() || license::IsHiddenName(name) || name.find('/') != std::string::npos)
    return std::nullopt;
  return name;
}

void Agent::WriteHint(const std::string& name) {
  if (fs_.MakeDir(license::HintDir(config_.pool_dir), 0755).ok()) {
    // Not fsync'd: a lost hint only costs a restarted node a scan, and every fsync on the
    // pool's volume delays the claims other nodes write under the mutex.
    (void)fs_.WriteAtomicNoSync(license::HintPath(config_.pool_dir, config_.node), name + "\n",
                                0644);
  }
}

bool Agent::OtherPod(const license::ClaimRecord& r) const {
  // A pod that left its claim to the node as it stopped (a rolling update) is no other pod.
  return !r.exiting && !r.pod.empty() && !config_.pod.empty() && r.pod != config_.pod;
}

std::optional<Agent::Candidate> Agent::NodeClaimCandidate(const std::string& name,
                                                          const ClaimView& v, bool* refuse) {
  if (!license::ClaimsNode(v, config_.node)) return std::nullopt;
  if (!OtherPod(*v.record)) {
    other_pod_seen_.erase(name);
    return Candidate{name, Candidate::kMine, v.fingerprint};
  }
  SteadyTime now = clock_.Now();
  observer_.Observe(name, v.fingerprint, now);
  auto [it, first] = other_pod_seen_.try_emplace(name, now);
  auto unchanged = observer_.UnchangedFor(name, now).value_or(std::chrono::nanoseconds(0));
  if (unchanged >= config_.AdoptAfter()) {
    spdlog::info(
        "this node's claim on '{}' by pod '{}' has not changed for {:.0f}s: that pod is "
        "gone; taking the claim over",
        name, v.record->pod, Seconds(unchanged));
    other_pod_seen_.erase(it);
    return Candidate{name, Candidate::kMine, v.fingerprint};
  }
  *refuse = true;
  if (now - unchanged > it->second) {  // changed since we first saw it: the other pod renews it
    SetError("NODE_NAME '" + config_.node + "' is served by another pod: '" + v.record->pod +
             "' keeps renewing this node's claim on '" + name + "', so this pod ('" + config_.pod +
             "') claims and installs nothing. Two license-holders run with the same NODE_NAME; "
             "give each node its own name");
  } else {
    SetError("this node's claim on '" + name + "' was written by pod '" + v.record->pod +
             "' (this pod is '" + config_.pod + "'); waiting " +
             std::to_string(static_cast<int64_t>(Seconds(config_.AdoptAfter()))) +
             "s to see whether that pod still renews it");
  }
  return std::nullopt;
}

void Agent::NoteUnusable(const std::string& name, const std::string& fingerprint,
                         const std::string& problem) {
  auto it = unusable_.find(name);
  if (it != unusable_.end() && it->second.fingerprint == fingerprint &&
      it->second.problem == problem) {
    return;
  }
  spdlog::warn("license '{}' in {} is unusable, not claiming it until it changes: {}", name,
               config_.pool_dir, problem);
  unusable_[name] = Unusable{fingerprint, problem, clock_.Now()};
}

bool Agent::RecentlyUnusable(const std::string& name, const std::string& fingerprint) const {
  auto it = unusable_.find(name);
  // A failure that the metadata check did not predict (an I/O error, content changed under
  // us) is retried once per claim TTL even if nothing seems to change.
  return it != unusable_.end() && it->second.fingerprint == fingerprint &&
         clock_.Now() - it->second.since < config_.claim_ttl;
}

std::vector<Agent::Candidate> Agent::ChooseCandidates() {
  auto names = pool_.Entries();
  if (!names.ok()) {
    SetError("pool " + config_.pool_dir + ": " + names.status().message());
    return {};
  }
  std::vector<Candidate> out;
  bool refuse = false;
  // 1. This node's own claim (restart keeps its license), found in O(1) via hint or manifest.
  std::vector<std::string> mine;
  if (auto hint = ReadHint()) mine.push_back(*hint);
  if (auto m = installer_.ReadManifest(); m.ok() && *m) mine.push_back((*m)->license);
  for (const std::string& name : mine) {
    if (!std::binary_search(names->begin(), names->end(), name)) continue;
    if (reporter_.Disabled(name) ||
        std::any_of(out.begin(), out.end(), [&](const Candidate& c) { return c.name == name; })) {
      continue;
    }
    if (auto c = NodeClaimCandidate(name, pool_.ReadClaim(name), &refuse)) out.push_back(*c);
  }
  if (refuse) return {};  // another pod serves this node (or may): claim nothing else either
  // 2. Free licenses, in this node's rendezvous order, stopping at the first few. Several, so
  // that nodes started together and chasing the same license rarely come away empty: each
  // extra candidate costs one claim read under the mutex, and only when the earlier are taken.
  size_t free_found = 0;
  SteadyTime now = clock_.Now();
  for (const std::string& name : license::RendezvousOrder(*names, config_.node)) {
    license::LicenseStatus st = license::Classify(pool_, observer_, name, now, config_.claim_ttl,
                                                  license::ShapeCheck::kClaimable);
    if (st.state == license::LicenseState::kUnusable) {
      NoteUnusable(name, st.content_fingerprint, st.problem);
      continue;
    }
    if (st.state == license::LicenseState::kFree && !reporter_.Disabled(name) &&
        !RecentlyUnusable(name, st.content_fingerprint)) {
      out.push_back({name, Candidate::kFree, ""});
      if (++free_found >= kMaxCandidates) break;
    }
  }
  // 3. Nothing free: scan everything, which also keeps the staleness history warm.
  if (out.empty()) out = FullScan();
  if (out.size() > kMaxCandidates) out.resize(kMaxCandidates);
  return out;
}

std::vector<Agent::Candidate> Agent::FullScan() {
  auto names = pool_.Entries();
  if (!names.ok()) return {};
  SteadyTime now = clock_.Now();
  std::vector<Candidate> mine, free, stale;
  uint64_t n[5] = {0, 0, 0, 0, 0};  // by license::LicenseState
  uint64_t n_disabled = 0;          // by an operator (among the above)
  bool refuse = false;
  std::map<std::string, Unusable> still_unusable;
  for (const std::string& name : license::RendezvousOrder(*names, config_.node)) {
    license::LicenseStatus st = license::Classify(pool_, observer_, name, now, config_.claim_ttl,
                                                  license::ShapeCheck::kClaimable);
    ++n[static_cast<int>(st.state)];
    if (st.state == license::LicenseState::kUnusable) {
      NoteUnusable(name, st.content_fingerprint, st.problem);
      still_unusable[name] = unusable_[name];
      continue;
    }
    if (auto it = unusable_.find(name); it != unusable_.end()) still_unusable.insert(*it);
    if (RecentlyUnusable(name, st.content_fingerprint)) continue;
    if (reporter_.Disabled(name)) {
      ++n_disabled;
      continue;
    }
    if (st.state == license::LicenseState::kFree) {
      free.push_back({name, Candidate::kFree, ""});
    } else if (st.state == license::LicenseState::kStale) {
      stale.push_back({name, Candidate::kStale, st.claim.fingerprint});
    } else if (auto c = NodeClaimCandidate(name, st.claim, &refuse)) {
      mine.push_back(*c);
    }
  }
  unusable_ = std::move(still_unusable);  // forget licenses that left the pool or were fixed
  using license::LicenseState;
  uint64_t n_free = n[static_cast<int>(LicenseState::kFree)];
  uint64_t n_held = n[static_cast<int>(LicenseState::kHeld)];
  uint64_t n_stale = n[static_cast<int>(LicenseState::kStale)];
  uint64_t n_unreadable = n[static_cast<int>(LicenseState::kUnreadable)];
  uint64_t n_unusable = n[static_cast<int>(LicenseState::kUnusable)];
  {
    std::lock_guard<std::mutex> l(mu_);
    snap_.pool_free = n_free;
    snap_.pool_held = n_held;
    snap_.pool_stale = n_stale;
    snap_.pool_unreadable = n_unreadable;
    snap_.pool_unusable = n_unusable;
    snap_.pool_scanned = true;
  }
  if (refuse) return {};
  std::vector<Candidate> out = std::move(mine);
  out.insert(out.end(), free.begin(), free.end());
  out.insert(out.end(), stale.begin(), stale.end());
  if (!out.empty()) return out;
  nothing_claimable_ = true;
  if (n_free + n_held + n_stale + n_unreadable == 0) {
    std::string msg = "POOL_DIR " + config_.pool_dir + " holds no license (" +
                      std::to_string(n_unusable) + " entries that are not licenses)";
    if (auto likely = pool_.LikelyPoolDir()) {
      msg +=
          ", but " + *likely + " does: is POOL_DIR one level too high? (POOL_DIR=" + *likely + ")";
    } else {
      msg +=
          std::string("; a license is a directory holding a non-empty ") + license::kLicenseKeyPath;
    }
    SetError(msg);
  } else {
    SetError("no license available: " + std::to_string(n_held) + " held, " +
             std::to_string(n_unreadable) + " unreadable, " + std::to_string(n_unusable) +
             " unusable, " + std::to_string(n_disabled) +
             " disabled by an operator; waiting for one to be freed or go stale");
  }
  return out;
}

Status Agent::WriteOwnClaim(const std::string& name, uint64_t token, uint64_t renewals,
                            int64_t claimed_at_ms, bool exiting) {
  license::ClaimRecord c;
  c.exiting = exiting;
  c.node = config_.node;
  c.pod = config_.pod;
  c.token = token;
  c.renewals = renewals;
  c.claimed_at_ms = claimed_at_ms;
  c.renewed_at_ms = UnixMillis(clock_.WallNow());
  return fs_.WriteAtomic(pool_.ClaimPath(name), license::SerializeClaim(c), 0644);
}

bool Agent::Confirmed(const std::string& name, uint64_t token) {
  return license::IsOwn(pool_.ReadClaim(name), config_.node, token);
}

std::optional<std::string> Agent::ClaimUnderMutex(const std::vector<Candidate>& candidates,
                                                  const client::LockGrant& grant,
                                                  SteadyTime granted_at,
                                                  license::LicenseFiles& files_out,
                                                  int64_t* claimed_at_ms,
                                                  std::string* former_holder,
                                                  bool* token_regression) {
  // Stop a second before the mutex lease ends: past it another agent may be in here too.
  auto lease = std::chrono::seconds(std::max<int64_t>(grant.ttl_s, 1));
  auto budget = lease - std::min<std::chrono::nanoseconds>(std::chrono::seconds(1), lease / 2);
  for (const Candidate& c : candidates) {
    SteadyTime now = clock_.Now();
    if (now - granted_at > budget) {
      SetError("mutex lease nearly over before a claim was made; retrying");
      return std::nullopt;
    }
    if (ReleaseRequested() || reporter_.cordoned()) return std::nullopt;
    if (reporter_.Disabled(c.name)) continue;
    ClaimView v = pool_.ReadClaim(c.name);
    if (license::CompareClaim(v, config_.node, grant.token) == license::ClaimRank::kHigher) {
      // Tokens only grow, so tokenmgr's store was reset or replaced: a claim written with our
      // lower token would lose to the older one's late renewal. Never write with it.
      {
        std::lock_guard<std::mutex> l(mu_);
        ++snap_.token_regressions;
      }
      spdlog::error(
          "tokenmgr granted fencing token {}, but the claim on '{}' (node '{}') already carries "
          "token {}: tokenmgr's tokens went backwards (its store was reset or replaced). Not "
          "claiming with it. To recover, restart tokenmgr so that it hands out tokens above {} "
          "(see docs/operations.md, \"Fencing tokens went backwards\")",
          grant.token, c.name, v.record->node, v.record->token, v.record->token);
      SetError("token regression: granted " + std::to_string(grant.token) + " < " +
               std::to_string(v.record->token) + " on '" + c.name + "'");
      *token_regression = true;
      return std::nullopt;
    }
    bool ok = false;
    int64_t claimed_at = UnixMillis(clock_.WallNow());
    switch (c.kind) {
      case Candidate::kMine:
        // Another pod's claim on this node only as it was when judged abandoned.
        ok = license::ClaimsNode(v, config_.node) &&
             (!OtherPod(*v.record) || v.fingerprint == c.fingerprint);
        if (ok) claimed_at = v.record->claimed_at_ms;
        break;
      case Candidate::kFree:
        ok = v.state == ClaimState::kFree;
        break;
      case Candidate::kStale:
        // Still the very claim judged stale, and still stale by the same rule.
        ok = v.state == ClaimState::kFree ||
             (v.fingerprint == c.fingerprint &&
              license::ObserveStale(observer_, c.name, v, now, config_.claim_ttl));
        break;
    }
    if (!ok) continue;
    auto files = pool_.ReadLicense(c.name);
    if (!files.ok()) {
      NoteUnusable(c.name, pool_.CheckLicense(c.name).fingerprint, files.status().message());
      continue;
    }
    Status w = WriteOwnClaim(c.name, grant.token, 0, claimed_at);
    if (!w.ok()) {
      SetError("cannot write claim for '" + c.name + "': " + w.message());
      return std::nullopt;
    }
    if (!Confirmed(c.name, grant.token)) continue;
    if (c.kind == Candidate::kStale && v.state != ClaimState::kFree) {
      *former_holder = v.record ? v.record->node : "(unreadable claim)";
      if (former_holder->empty()) *former_holder = "(unknown)";
    }
    if (c.kind == Candidate::kStale) {
      spdlog::warn("took over stale license '{}' (claim unchanged for {}s as seen from here)",
                   c.name, config_.claim_ttl.count());
    }
    files_out = std::move(*files);
    *claimed_at_ms = claimed_at;
    return c.name;
  }
  return std::nullopt;
}

bool Agent::Settle(const std::string& name, uint64_t token) {
  if (!sleeper_.SleepFor(config_.settle)) return false;
  ClaimView v = pool_.ReadClaim(name);
  license::ClaimRank rank = license::CompareClaim(v, config_.node, token);
  if (rank == license::ClaimRank::kNone) return false;
  if (rank == license::ClaimRank::kOurs) return true;
  if (rank == license::ClaimRank::kLower) {
    // A late write under an older grant (a paused agent): the higher token wins; say so.
    spdlog::warn("claim on '{}' overwritten by older token {} from '{}'; re-asserting token {}",
                 name, v.record->token, v.record->node, token);
    return WriteOwnClaim(name, token, 0, UnixMillis(clock_.WallNow())).ok() &&
           Confirmed(name, token);
  }
  spdlog::info("lost '{}' during settle to '{}' (token {})", name, v.record->node, v.record->token);
  return false;
}

std::chrono::nanoseconds Agent::Acquire() {
  if (reporter_.cordoned()) {
    // Not looking while cordoned: no scan, no mutex, and the time does not count as waiting.
    queued_candidates_.clear();
    acquiring_since_.reset();
    StopWaiting("", "cordoned");
    std::lock_guard<std::mutex> l(mu_);
    snap_.last_error = "cordoned by an operator: this node claims no license until uncordoned";
    snap_.degraded = false;
    return config_.heartbeat;
  }
  if (!acquiring_since_) acquiring_since_ = clock_.Now();
  {
    std::lock_guard<std::mutex> l(mu_);
    ++snap_.acquire_attempts;
  }
  // After a long poll that ended without the mutex, queue again with the same candidates
  // instead of rescanning the pool: everything is re-checked under the mutex anyway, and at
  // thousands of waiting nodes the rescans would dominate the file server's load.
  // A license is claimed only where it can be installed: a host dir that cannot be written would
  // keep it out of the pool for nothing.
  if (Status h = installer_.PrepareHostDir(); !h.ok()) {
    SetError(h.message() + "; not claiming a license until it can be written");
    queued_candidates_.clear();
    return config_.heartbeat;
  }
  std::vector<Candidate> candidates = std::move(queued_candidates_);
  queued_candidates_.clear();
  SteadyTime now = clock_.Now();
  if (candidates.empty() || !candidates_at_ || now - *candidates_at_ >= config_.claim_ttl / 2) {
    nothing_claimable_ = false;
    candidates = ChooseCandidates();
    candidates_at_ = now;
    if (candidates.empty() && nothing_claimable_) StartWaiting();
  }
  if (candidates.empty()) return config_.heartbeat;

  SteadyTime asked_at = clock_.Now();
  auto wait = std::clamp<std::chrono::seconds>(std::chrono::duration_cast<std::chrono::seconds>(config_.claim_ttl / 2),
                                               config_.heartbeat, std::chrono::seconds(30));
  auto grant = client_.Lock(wait, config_.lock_ttl, config_.node);
  if (!grant.ok()) {
    if (grant.status().code() == StatusCode::kFailedPrecondition) {
      failures_ = 0;
      queued_candidates_ = std::move(candidates);
      return std::chrono::milliseconds(10);  // the long poll already waited
    }
    if (grant.status().code() == StatusCode::kUnauthenticated) {
      SetError("tokenmgr refused this agent's credentials (HTTP 401: " + grant.status().message() +
               "): check that this agent's TOKENMGR_AUTH_TOKEN_FILE holds the same token as "
               "tokenmgr's AUTH_TOKEN_FILE");
    } else {
      SetError("tokenmgr: " + grant.status().message());
    }
    return Backoff();
  }
  failures_ = 0;
  // The directives are from before the wait for the mutex (up to claim TTL / 2), during which an
  // operator may have cordoned this node or disabled a license: ask again before claiming. The
  // report carries no events, so tokenmgr answers without storing anything.
  ReportAndObey(/*now=*/true);
  license::LicenseFiles files;
  int64_t claimed_at = 0;
  bool token_regression = false;
  std::string former_holder;
  std::optional<std::string> chosen = ClaimUnderMutex(candidates, *grant, asked_at, files,
                                                      &claimed_at, &former_holder,
                                                      &token_regression);
  if (Status s = client_.Release(grant->id); !s.ok()) {
    spdlog::info("mutex release: {} (the lease expires by itself)", s.message());
  }
  if (token_regression) return std::max<std::chrono::nanoseconds>(config_.heartbeat, Backoff());
  // Nothing claimable among the candidates (others were faster): choose afresh and queue again
  // at once; a short pause only keeps a node with bad luck from spinning.
  if (!chosen) return std::chrono::milliseconds(10);
  if (!Settle(*chosen, grant->token)) return std::chrono::milliseconds(10);

  phase_ = Phase::kHolding;
  license_ = *chosen;
  token_ = grant->token;
  renewals_ = 0;
  // Renewals keep the claim's first time: when it was written under the mutex (what the page
  // shows as "claimed at"), not when the settle ended.
  claimed_at_ms_ = claimed_at;
  last_confirmed_ = asked_at;
  // Withdraw() disarms it.
  guard_.Arm(asked_at + config_.FenceAfter(), license_);
  WriteHint(license_);
  spdlog::info("claimed license '{}' with token {}", license_, token_);
  StopWaiting(license_, "claimed");
  if (former_holder.empty()) {
    reporter_.Record(EventKind::kClaim, license_, token_, "");
  } else {
    reporter_.Record(EventKind::kTakeover, license_, token_, former_holder);
  }
  InstallHeld(files);
  {
    std::lock_guard<std::mutex> l(mu_);
    ++snap_.acquisitions;
    acquire_wait_.Observe(Seconds(clock_.Now() - *acquiring_since_));
    snap_.pool_scanned = false;  // counts from a scan made while looking; old from now on
  }
  acquiring_since_.reset();
  if (FenceIfUnconfirmed()) return std::chrono::nanoseconds(0);
  return config_.heartbeat;
}

bool Agent::InstallHeld(const license::LicenseFiles& files) {
  Status s;
  if (!guard_.UnlessFired([&] {
        s = installer_.Install(license_, files);
        if (s.ok()) s = installer_.WriteServersConf(config_.servers_conf);
      })) {
    return false;  // past the fence deadline: the next step withdraws (Keep)
  }
  if (!s.ok()) {
    ++install_failures_;
    SetError("install of '" + license_ + "' into HOST_DIR " + config_.host_dir + " failed (" +
             std::to_string(install_failures_) + " in a row): " + s.message());
    installed_ = false;
    return false;
  }
  install_failures_ = 0;
  if (!installed_ || installed_hash_ != files.hash) {
    spdlog::info("installed license '{}' into {}", license_, config_.host_dir);
  }
  installed_ = true;
  installed_hash_ = files.hash;
  withdraw_pending_ = false;  // the install replaced whatever the old manifest listed
  return true;
}

bool Agent::RemoveInstalled() {
  if (Status s = guard_.Locked([&] { return installer_.Withdraw(); }); !s.ok()) {
    withdraw_pending_ = true;
    SetError("withdraw failed (files may remain in " + config_.host_dir +
             "; retrying every heartbeat): " + s.message());
    return false;
  }
  if (withdraw_pending_)
    spdlog::info("withdrawal finished: license files removed from {}", config_.host_dir);
  withdraw_pending_ = false;
  return true;
}

void Agent::Withdraw(std::string_view reason, const std::string& why) {
  spdlog::warn("withdrawing license '{}' from {}: {}", license_, config_.host_dir, why);
  if (!reason.empty() && !license_.empty()) {
    reporter_.Record(EventKind::kWithdraw, license_, token_, std::string(reason));
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    snap_.ready = false;  // stop advertising the license before its files go, not after
  }
  Unlabel();  // the node label goes in the same step, before the files
  RemoveInstalled();
  guard_.Disarm();
  {
    std::lock_guard<std::mutex> l(mu_);
    ++snap_.withdrawals;
  }
  phase_ = Phase::kAcquiring;
  license_.clear();
  install_failures_ = 0;
  token_ = 0;
  installed_ = false;
  installed_hash_.clear();
  last_confirmed_.reset();
}

void Agent::SyncLabel() {
  if (!label_.enabled()) return;
  SteadyTime now = clock_.Now();
  if (phase_ != Phase::kHolding || !installed_ || !last_confirmed_ ||
      now - *last_confirmed_ >= config_.claim_ttl) {
    Unlabel();
    return;
  }
  // Past the claim TTL after the last confirmation another node may hold the license: a holder
  // that stops (killed, paused) stops labelling its node by then even without removing the file.
  WallTime expiry = clock_.WallNow() +
                    duration_cast<WallTime::duration>(config_.claim_ttl - (now - *last_confirmed_));
  Status s;
  // Not once the fence guard took the license off: the label goes with it (the guard's lock).
  if (!guard_.UnlessFired([&] { s = label_.Label(expiry); })) return;
  if (!s.ok()) {
    SetError("NFD_FEATURE_FILE " + label_.path() + ": cannot label the node: " + s.message());
  }
}

void Agent::Unlabel() {
  if (Status s = guard_.Locked([&] { return label_.Unlabel(); }); !s.ok()) {
    SetError("NFD_FEATURE_FILE " + label_.path() +
             ": cannot remove the node label (retrying every heartbeat): " + s.message());
  }
}

bool Agent::FenceIfUnconfirmed() {
  if (phase_ != Phase::kHolding) return false;
  SteadyTime now = clock_.Now();
  if (last_confirmed_ && now - *last_confirmed_ <= config_.FenceAfter()) return false;
  Withdraw("self-fenced",
           last_confirmed_
               ? "claim not confirmed for " +
                     std::to_string(static_cast<int64_t>(Seconds(now - *last_confirmed_))) +
                     "s (pool unreachable, writes failing, or this process was paused); after " +
                     std::to_string(config_.claim_ttl.count()) + "s another node may take it"
               : "could not confirm the adopted claim");
  return true;
}

std::chrono::nanoseconds Agent::Keep() {
  if (guard_.Fired()) {
    Withdraw("self-fenced",
             "the fence guard took the license off the host: this agent's thread was stuck "
             "past the self-fence deadline (the pool did not answer?)");
    return std::chrono::nanoseconds(0);
  }
  if (last_confirmed_ && FenceIfUnconfirmed()) return std::chrono::nanoseconds(0);
  SteadyTime t0 = clock_.Now();
  ClaimView v = pool_.ReadClaim(license_);
  bool renew = false;
  switch (license::CompareClaim(v, config_.node, token_)) {
    case license::ClaimRank::kOurs:
      renew = true;
      break;
    case license::ClaimRank::kHigher:
    case license::ClaimRank::kSameToken:
      Withdraw("taken over", "taken over by node '" + v.record->node + "' with token " +
               std::to_string(v.record->token) + " (ours " + std::to_string(token_) + ")");
      return std::chrono::nanoseconds(0);
    case license::ClaimRank::kLower:
      spdlog::warn("claim on '{}' overwritten by older token {} from '{}'; re-asserting token {}",
                   license_, v.record->token, v.record->node, token_);
      renew = true;
      break;
    case license::ClaimRank::kSeed:
      Withdraw("taken over", "a seed-format claim replaced ours (" + v.record->node + ")");
      return std::chrono::nanoseconds(0);
    case license::ClaimRank::kNone:
      if (v.state == ClaimState::kFree) {
        auto dir = fs_.Stat(pool_.LicenseDir(license_));
        if (dir.ok() && dir->type == license::FileType::kMissing) {
          Withdraw("unusable", "license directory was removed from the pool");
          return std::chrono::nanoseconds(0);
        }
        spdlog::warn("claim file of '{}' vanished; re-asserting", license_);
        renew = true;
      } else {
        {
          std::lock_guard<std::mutex> l(mu_);
          ++snap_.renew_failures;
        }
        SetError("cannot read claim of '" + license_ + "': " + v.error);
      }
      break;
  }
  if (renew) {
    Status w = WriteOwnClaim(license_, token_, renewals_ + 1, claimed_at_ms_);
    if (w.ok() && Confirmed(license_, token_)) {
      ++renewals_;
      // A renewal that took longer than a heartbeat (we were paused) proves nothing about t0.
      if (clock_.Now() - t0 < config_.heartbeat) last_confirmed_ = t0;
      if (last_confirmed_ && !guard_.Arm(*last_confirmed_ + config_.FenceAfter(), license_)) {
        Withdraw("self-fenced",
                 "the fence guard took the license off the host while the renewal was in "
                 "progress (it took past the self-fence deadline)");
        return std::chrono::nanoseconds(0);
      }
      std::lock_guard<std::mutex> l(mu_);
      ++snap_.renewals;
      snap_.degraded = false;
      snap_.last_error.clear();
    } else {
      {
        std::lock_guard<std::mutex> l(mu_);
        ++snap_.renew_failures;
      }
      SetError("cannot renew claim of '" + license_ + "': " +
               (w.ok() ? std::string("read-back did not match") : w.message()));
    }
  }
  if (!last_confirmed_ || FenceIfUnconfirmed()) {
    if (phase_ == Phase::kHolding) Withdraw("self-fenced", "could not confirm the adopted claim");
    return std::chrono::nanoseconds(0);
  }
  // Keep the installed copy complete and current (drift repair, license replaced in the pool).
  auto files = pool_.ReadLicense(license_);
  if (files.ok()) {
    auto same = installer_.Matches(*files);
    if (!installed_ || !same.ok() || !*same) InstallHeld(*files);
  }
  if (install_failures_ >= AgentConfig::kMaxInstallFailures) {
    GiveBack("unusable", "installing into HOST_DIR " + config_.host_dir + " failed " +
             std::to_string(install_failures_) +
             " times in a row; giving the license back so "
             "another node can use it");
    return config_.heartbeat;
  }
  return config_.heartbeat;
}

void Agent::GiveBack(std::string_view reason, const std::string& why) {
  const std::string name = license_;
  const uint64_t token = token_;
  bool install_failed = install_failures_ > 0;
  install_failures_ = 0;
  // The files first: the claim must not be free while the license is still on this node.
  Withdraw(reason, why);
  if (install_failed) {
    std::lock_guard<std::mutex> l(mu_);
    ++snap_.install_giveups;
  }
  (void)fs_.RemoveAll(license::HintPath(config_.pool_dir, config_.node));
  if (withdraw_pending_ && !install_failed) {
    spdlog::error("not giving '{}' back while its files remain in {}: the claim goes stale after "
                  "{}s instead", name, config_.host_dir, config_.claim_ttl.count());
    return;
  }
  if (!license::IsOwn(pool_.ReadClaim(name), config_.node, token)) return;
  if (Status s = fs_.RemoveAll(pool_.ClaimPath(name)); !s.ok()) {
    spdlog::error("cannot give '{}' back: cannot remove claim: {}", name, s.message());
    return;
  }
  spdlog::info("gave license '{}' back to the pool", name);
  reporter_.Record(EventKind::kRelease, name, token, std::string(reason));
}

NodeState Agent::ReportedState() const {
  if (phase_ == Phase::kReleased) return NodeState::kReleased;
  if (phase_ == Phase::kHolding) return step_error_ ? NodeState::kDegraded : NodeState::kHeld;
  if (reporter_.cordoned()) return NodeState::kCordoned;
  // Looking for a license: waiting, unless this step failed for another reason than none
  // being free (pool unreadable, host dir, tokenmgr refusing).
  return waiting_ || !step_error_ ? NodeState::kWaiting : NodeState::kDegraded;
}

std::chrono::nanoseconds Agent::TimedReport() {
  const SteadyTime start = clock_.Now();
  ReportAndObey();
  return clock_.Now() - start;
}

void Agent::ReportAndObey(bool now) {
  bool was_cordoned = reporter_.cordoned();
  const std::string& license = phase_ == Phase::kHolding ? license_ : "";
  if (!(now ? reporter_.Refresh(ReportedState(), license)
            : reporter_.MaybeSend(ReportedState(), license))) {
    return;
  }
  if (reporter_.cordoned() != was_cordoned) {
    spdlog::info(reporter_.cordoned()
                     ? "this node was cordoned by an operator: giving back its license and "
                       "claiming none until uncordoned"
                     : "this node was uncordoned: looking for a license again");
  }
  Obey();
}

void Agent::Obey() {
  if (phase_ == Phase::kHolding && reporter_.cordoned()) {
    GiveBack("cordoned", "this node was cordoned by an operator");
  } else if (phase_ == Phase::kHolding && reporter_.Disabled(license_)) {
    GiveBack("disabled", "license '" + license_ + "' was disabled by an operator");
  }
  if (reporter_.cordoned()) {
    StopWaiting("", "cordoned");
    queued_candidates_.clear();
  }
}

void Agent::StartWaiting() {
  if (waiting_) return;
  waiting_ = true;
  reporter_.Record(EventKind::kWaitStart, "", 0, "");
}

void Agent::StopWaiting(const std::string& license, const std::string& detail) {
  if (!waiting_) return;
  waiting_ = false;
  reporter_.Record(EventKind::kWaitEnd, license, 0, detail);
}

void Agent::OnExit() {
  if (phase_ != Phase::kHolding) return;
  if (config_.release_on_exit) {
    GiveBack("", "release on exit");
    Publish();
    return;
  }
  // Keep the claim and files for this node's next pod, and say so in the claim, so that a new
  // pod (a rolling update) adopts it at once instead of watching whether this one still renews.
  if (!last_confirmed_ || clock_.Now() - *last_confirmed_ > config_.FenceAfter()) return;
  if (license::IsOwn(pool_.ReadClaim(license_), config_.node, token_)) {
    Status w = WriteOwnClaim(license_, token_, renewals_ + 1, claimed_at_ms_, /*exiting=*/true);
    if (!w.ok())
      spdlog::warn("cannot mark the claim on '{}' as left to this node: {}", license_, w.message());
  }
}

void Agent::Publish() {
  std::lock_guard<std::mutex> l(mu_);
  snap_.phase = phase_;
  snap_.license = license_;
  snap_.token = token_;
  snap_.installed = installed_;
  SteadyTime now = clock_.Now();
  snap_.claim_age_s.reset();
  if (phase_ == Phase::kHolding && last_confirmed_)
    snap_.claim_age_s = Seconds(now - *last_confirmed_);
  snap_.ready = phase_ == Phase::kHolding && installed_ && last_confirmed_ &&
                now - *last_confirmed_ < config_.claim_ttl;
  snap_.cordoned = reporter_.cordoned();
  snap_.waiting = waiting_;
  snap_.reporting = reporter_.stats();
}

AgentSnapshot Agent::Snapshot() const {
  std::lock_guard<std::mutex> l(mu_);
  return snap_;
}

bool Agent::Healthy() const {
  std::lock_guard<std::mutex> l(mu_);
  auto limit = 3 * config_.heartbeat + config_.settle + std::chrono::seconds(30);
  return clock_.Now() - last_step_done_ < limit;
}

std::string Agent::RenderMetrics() const {
  AgentSnapshot s;
  std::string wait;
  {
    std::lock_guard<std::mutex> l(mu_);
    s = snap_;
    wait = acquire_wait_.Render("license_holder_acquire_wait_seconds",
                                "Time from starting to look for a license to holding one.");
  }
  MetricsText m;
  m.Gauge("license_holder_license_held", "1 if a license is claimed and installed on this node.",
          s.phase == Phase::kHolding && s.installed ? 1 : 0);
  m.Gauge("license_holder_ready",
          "1 if the license is installed and its claim verified within the TTL.", s.ready ? 1 : 0);
  m.Gauge("license_holder_degraded", "1 if the last operation failed (see logs).",
          s.degraded ? 1 : 0);
  m.Gauge("license_holder_waiting",
          "1 while this node looks for a license (not holding, not released).",
          s.phase == Phase::kAcquiring ? 1 : 0);
  m.Gauge("license_holder_fence_after_seconds",
          "Claim age at which this holder withdraws an unconfirmed license (claim TTL - 2 "
          "heartbeats).",
          Seconds(config_.FenceAfter()));
  if (s.claim_age_s) {  // no series when not holding: a sentinel would poison aggregations
    m.Gauge("license_holder_claim_age_seconds", "Seconds since the claim was last confirmed.",
            *s.claim_age_s);
  }
  if (s.phase == Phase::kHolding) {
    m.Family("license_holder_license_info", "gauge",
             "The license this node holds (always 1; for joins on node and license).");
    m.Sample("license_holder_license_info", {{"node", config_.node}, {"license", s.license}}, 1);
  }
  m.Counter("license_holder_acquire_attempts_total", "Attempts to acquire a license.",
            s.acquire_attempts);
  m.Counter("license_holder_acquisitions_total", "Licenses acquired.", s.acquisitions);
  m.Counter("license_holder_withdrawals_total", "Licenses withdrawn from the host directory.",
            s.withdrawals);
  m.Counter("license_holder_renewals_total", "Claim renewals.", s.renewals);
  m.Counter("license_holder_renew_failures_total", "Failed claim renewals.", s.renew_failures);
  m.Counter("license_holder_token_regressions_total",
            "Grants refused because the pool already held a higher fencing token.",
            s.token_regressions);
  m.Counter("license_holder_install_giveups_total",
            "Claims given back because installing into HOST_DIR kept failing.", s.install_giveups);
  m.Gauge("license_holder_cordoned",
          "1 while an operator has cordoned this node (it holds and claims no license).",
          s.cordoned ? 1 : 0);
  m.Gauge("license_holder_report_events_buffered",
          "Events waiting to be sent to tokenmgr's history.",
          static_cast<double>(s.reporting.buffered));
  m.Counter("license_holder_report_events_dropped_total",
            "Events dropped before tokenmgr stored them (buffer full, or the report refused).",
            s.reporting.dropped + s.reporting.refused);
  m.Counter("license_holder_reports_total", "Node reports tokenmgr answered.",
            s.reporting.reports);
  m.Counter("license_holder_report_failures_total",
            "Node reports that failed (tokenmgr unreachable, refusing, or without the console).",
            s.reporting.failures);
  m.Append(wait);
  if (s.pool_scanned) {  // only what this agent saw; tokenmgr_pool_licenses is the pool's view
    m.Family("license_holder_pool_licenses", "gauge",
             "Pool licenses by state at this agent's last full scan (made only while it looks "
             "for a license; absent before the first).");
    const std::pair<license::LicenseState, uint64_t> counts[] = {
        {license::LicenseState::kFree, s.pool_free},
        {license::LicenseState::kHeld, s.pool_held},
        {license::LicenseState::kStale, s.pool_stale},
        {license::LicenseState::kUnreadable, s.pool_unreadable},
        {license::LicenseState::kUnusable, s.pool_unusable}};
    for (const auto& [state, n] : counts) {
      m.Sample("license_holder_pool_licenses", {{"state", license::LicenseStateName(state)}},
               static_cast<double>(n));
    }
  }
  return m.Take();
}

}  // namespace lm::holder
