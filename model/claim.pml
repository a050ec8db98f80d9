/*
 * The license-holder claim protocol AS IMPLEMENTED in src/holder/agent.cc (Agent::Start, Step,
 * Acquire, ChooseCandidates/FullScan, ClaimUnderMutex, Settle, Keep, FenceIfUnconfirmed), for one
 * license and N nodes, with abstract time. model/README.md maps each block to the code.
 *
 * Time: one tick = heartbeat / 2. The Tick process advances time only when every running,
 * unpaused node is waiting (sleeping, long-polling); everything between two waits takes no time.
 * Every statement boundary inside a node is a point where it can be paused (a pause is a
 * `provided` clause: a paused node takes no steps while time passes) or crash (`unless`).
 *
 * Faults (bounded by budgets so the check is exhaustive): node crash (restart after a short or a
 * long downtime; host files survive the crash, the agent's memory does not), pause (short, or
 * past the claim TTL), tokenmgr restart (loses the mutex lease, never reuses a token), one node's
 * pool becoming unreachable for a while (reads and writes fail).
 *
 * Checked: the safety assertion in Tick (no two live nodes with the license installed for more
 * than W consecutive ticks) and, with -DLIVENESS, the LTL claim `live` (once faults are over, the
 * license ends up installed on exactly one live node and stays there).
 */

#ifndef N
#define N 3            /* nodes 1..N */
#endif
#ifndef H
#define H 2            /* heartbeat, ticks */
#endif
#define TTL (3*H)      /* claim TTL = 3 x heartbeat, the smallest the config accepts */
#ifndef FENCE
#define FENCE (TTL - 2*H)  /* AgentConfig::FenceAfter() */
#endif
#define SETTLE ((H+1)/2) /* settle interval (min(2 s, heartbeat/2)) */
/* -DSKIP_SETTLE_FREE: a claim on a license that was free under the mutex is installed without the
 * settle's wait. A self-test of why the settle stays: model/run.sh expects a counterexample. */
#ifdef SKIP_SETTLE_FREE
#define SKIP_SETTLE (kind == FREE)
#else
#define SKIP_SETTLE false
#endif
#define LOCKTTL H      /* mutex lease asked for (lock_ttl = heartbeat) */
#define W H            /* the withdrawal window the safety property allows */
#ifndef MAXTOK
#define MAXTOK 5       /* fencing tokens available to the model (then Lock only times out) */
#endif
#ifndef FAULTS
#define FAULTS 2       /* node crashes + pauses + pool outages, in total */
#endif
#ifndef TM_RESTARTS
#define TM_RESTARTS 1
#endif

#define ACQ 0
#define HOLD 1

/* ---- the pool: one license's claim file ---- */
byte c_node;                 /* 0 = no lockedby file (free), else the node named */
byte c_tok;                  /* its fencing token */
byte c_wage;                 /* ticks since it was written (the writer's renewed_at_ms) */
bool changed[N+1];           /* per observer: the claim was rewritten since its last read */
bool pool_down[N+1];         /* this node's pool mount fails reads and writes */

/* ---- tokenmgr's mutex ---- */
byte last_tok;               /* tokens are last_tok+1, ...; never reused, also across restarts */
byte m_tok;                  /* token of the current lease; 0 = free */
byte m_age;                  /* ticks since granted */
bool tm_down;                /* restarting: Lock fails (agent backs off) */

/* ---- nodes ---- */
bool running[N+1];           /* the agent process exists (false while crashed) */
bool paused[N+1];
bool installed[N+1];         /* license files in the node's host dir (survive a crash) */
byte wait[N+1];              /* ticks until a sleeping node wakes; 0 = not sleeping */
bool has_conf[N+1];          /* last_confirmed_ set */
byte conf_age[N+1];          /* now - last_confirmed_ */
bool has_obs[N+1];           /* StalenessObserver has an entry for the license */
byte obs_age[N+1];           /* now - that entry's `since` */
byte t0_age[N+1];            /* now - t0 of the running Keep, or - asked_at of the running Acquire */
bool t0_on[N+1];             /* t0_age is in use (else kept at 0 to keep the state space small) */
byte pz[N+1];                /* ticks of pause left */
bool crash_req[N+1];

/* ---- fault budget, checker state ---- */
byte faults;
byte tm_restarts;
byte overlap;                /* consecutive ticks with >1 live node holding the files */
bool faults_over;            /* set by Fault when it stops injecting (for the liveness claim) */

#define LIVE(i) (running[i] && !paused[i])
#define WAITING(i) (!LIVE(i) || wait[i] > 0)
#define HOLDS(i) (LIVE(i) && installed[i])
#if N == 2
#define ALL_WAITING (WAITING(1) && WAITING(2))
#define ANY_POOL_DOWN (pool_down[1] || pool_down[2])
#define LIVE_HOLDERS (HOLDS(1) + HOLDS(2))
#elif N == 3
#define ALL_WAITING (WAITING(1) && WAITING(2) && WAITING(3))
#define ANY_POOL_DOWN (pool_down[1] || pool_down[2] || pool_down[3])
#define LIVE_HOLDERS (HOLDS(1) + HOLDS(2) + HOLDS(3))
#else
#error "N must be 2 or 3"
#endif
#define INC(x, max) if :: x < max -> x++ :: else -> skip fi

inline live_installed_count(n) {
  n = 0;
  k = 1;
  do
  :: k <= N -> if :: LIVE(k) && installed[k] -> n++ :: else -> skip fi; k++
  :: else -> break
  od
}

active proctype Tick() {
  byte k, n;
  do
  :: atomic {
       /* time passes only when no live node has something to do now */
       ALL_WAITING ->
       live_installed_count(n);
       if
       :: n > 1 -> overlap++
       :: else -> overlap = 0
       fi;
       assert(overlap <= W);
       INC(c_wage, FENCE + 1);
       if :: m_tok != 0 -> m_age++; if :: m_age >= LOCKTTL -> m_tok = 0 :: else -> skip fi
          :: else -> skip fi;
       k = 1;
       do
       :: k <= N ->
          if :: wait[k] > 0 -> wait[k]-- :: else -> skip fi;
          if :: has_conf[k] -> INC(conf_age[k], FENCE + 1) :: else -> conf_age[k] = 0 fi;
          if :: has_obs[k] -> INC(obs_age[k], TTL) :: else -> obs_age[k] = 0 fi;
          if :: t0_on[k] -> INC(t0_age[k], FENCE + 1) :: else -> t0_age[k] = 0 fi;
          if :: pz[k] > 0 -> pz[k]--; if :: pz[k] == 0 -> paused[k] = false :: else -> skip fi
             :: else -> skip fi;
          k++
       :: else -> break
       od;
       k = 0; n = 0
     }
  od
}

/* Faults, while the budget lasts; then it stops for good (so liveness is about what follows). */
active proctype Fault() {
  byte i;
  do
  :: faults < FAULTS ->
     atomic {
       select(i : 1 .. N);
       if
       :: running[i] && !paused[i] -> crash_req[i] = true; faults++
       :: running[i] && !paused[i] -> paused[i] = true; pz[i] = 1; faults++          /* short */
       :: running[i] && !paused[i] -> paused[i] = true; pz[i] = TTL + H; faults++    /* past TTL */
       :: !pool_down[i] -> pool_down[i] = true; faults++
       fi
     }
  :: atomic { select(i : 1 .. N); pool_down[i] -> pool_down[i] = false }
  :: tm_restarts < TM_RESTARTS -> atomic { tm_restarts++; m_tok = 0; tm_down = true }
  :: tm_down -> tm_down = false
  :: atomic { !tm_down && !ANY_POOL_DOWN -> faults_over = true; break }
  od
}

/* sleep d ticks (d = 0: go on now) */
inline sleep(d) {
  atomic { wait[me] = d; rn = 0; rt = 0; kind = 0; gtok = 0; ok = false; renew = false; delay = 0;
           t0_on[me] = false; t0_age[me] = 0 }
  (wait[me] == 0)
}

inline withdraw() {
  installed[me] = false;
  phase = ACQ; tok = 0; has_conf = false
}

/* Keep's / FenceIfUnconfirmed's rule */
#define UNCONFIRMED (!has_conf[me] || conf_age[me] > FENCE)

proctype Node(byte me) provided (!paused[me]) {
  byte phase, tok, rn, rt, kind, gtok, delay;
  bool ok, renew;
  /* kind of candidate */
#define NONE 0
#define MINE 1
#define FREE 2
#define STALE 3

  running[me] = true;
  do
  :: {
       /* ---- Start(): adopt this node's fresh claim, else withdraw what is installed ---- */
       atomic {
         phase = ACQ; tok = 0; has_conf[me] = false; has_obs[me] = false;
         if
         :: !pool_down[me] && c_node == me && c_wage <= FENCE ->
            phase = HOLD; tok = c_tok        /* first Keep must confirm it */
         :: else -> installed[me] = false
         fi
       }
       do
       :: phase == HOLD ->
          /* ---- Keep() ---- */
          delay = H;
          if
          :: has_conf[me] && conf_age[me] > FENCE -> atomic { installed[me] = false; phase = ACQ; tok = 0; has_conf[me] = false }; delay = 0
          :: else ->
             atomic { t0_on[me] = true; t0_age[me] = 0 }                 /* t0 = Now() */
             renew = false;
             atomic {                                                  /* ReadClaim */
               if
               :: pool_down[me] -> rn = 255
               :: else -> rn = c_node; rt = c_tok
               fi
             }
             if
             :: rn == 255 -> skip                                      /* unreadable: SetError */
             :: rn == 0 -> renew = true                                /* vanished: re-assert */
             :: rn == me && rt == tok -> renew = true
             :: rn != 0 && rn != 255 && (rt > tok || (rn != me && rt == tok)) ->
                atomic { installed[me] = false; phase = ACQ; tok = 0; has_conf[me] = false }; delay = 0
             :: rn != 0 && rn != 255 && rt < tok -> renew = true       /* lower token: re-assert */
             fi;
             if
             :: phase == HOLD && renew ->
                atomic {                                               /* WriteOwnClaim */
                  if
                  :: pool_down[me] -> ok = false
                  :: else -> c_node = me; c_tok = tok; c_wage = 0; ok = true;
                     changed[1] = true;
#if N >= 2
                     changed[2] = true;
#endif
#if N >= 3
                     changed[3] = true;
#endif
                  fi
                }
                atomic {                                               /* Confirmed */
                  if
                  :: ok && !pool_down[me] && c_node == me && c_tok == tok && t0_age[me] < H ->
                     has_conf[me] = true; conf_age[me] = t0_age[me]
                  :: else -> skip
                  fi
                }
             :: else -> skip
             fi;
             if
             :: phase == HOLD && UNCONFIRMED ->
                atomic { installed[me] = false; phase = ACQ; tok = 0; has_conf[me] = false }; delay = 0
             :: phase == HOLD && !UNCONFIRMED && !installed[me] -> installed[me] = true  /* drift repair */
             :: else -> skip
             fi
          fi;
          sleep(delay)
       :: phase == ACQ ->
          /* ---- Acquire(): ChooseCandidates ---- */
          delay = 0;
          atomic {
            kind = NONE;
            if
            :: pool_down[me] -> skip                                   /* Names() fails */
            :: !pool_down[me] && c_node == me -> kind = MINE           /* hint names it, claim is this node's */
            :: !pool_down[me] && c_node == 0 -> kind = FREE; has_obs[me] = false
            :: !pool_down[me] && c_node != 0 && c_node != me ->        /* FullScan */
               if
               :: !has_obs[me] || changed[me] -> has_obs[me] = true; obs_age[me] = 0; changed[me] = false
               :: else -> skip
               fi;
               if :: obs_age[me] >= TTL -> kind = STALE :: else -> skip fi
            fi
          }
          if
          :: kind == NONE -> delay = H
          :: else ->
             atomic { t0_on[me] = true; t0_age[me] = 0 }                 /* asked_at */
             /* Lock(): long poll up to a heartbeat */
             wait[me] = H;
             if
             :: atomic { tm_down -> wait[me] = 0; gtok = 0; delay = H }       /* Backoff */
             :: atomic { !tm_down && m_tok == 0 && last_tok < MAXTOK ->
                  last_tok++; m_tok = last_tok; m_age = 0; gtok = last_tok; wait[me] = 0 }
             :: atomic { wait[me] == 0 && !tm_down && (m_tok != 0 || last_tok == MAXTOK) ->
                  gtok = 0 }                                           /* 409: held all along */
             fi;
             if
             :: gtok != 0 ->
                /* ---- ClaimUnderMutex ---- */
                ok = false;
                atomic {
                  if
                  :: t0_age[me] >= LOCKTTL -> skip                       /* budget spent */
                  :: t0_age[me] < LOCKTTL && !pool_down[me] ->
                     if
                     :: kind == MINE -> ok = c_node == me
                     :: kind == FREE -> ok = c_node == 0
                     :: kind == STALE ->
                        if
                        :: c_node == 0 -> ok = true
                        :: else ->
                           if
                           :: changed[me] -> obs_age[me] = 0; changed[me] = false   /* fingerprint differs */
                           :: else -> ok = obs_age[me] >= TTL
                           fi
                        fi
                     fi
                  :: else -> skip
                  fi
                }
                if
                :: ok ->
                   atomic {                                            /* WriteOwnClaim */
                     if
                     :: pool_down[me] -> ok = false
                     :: else -> c_node = me; c_tok = gtok; c_wage = 0;
                        changed[1] = true;
#if N >= 2
                        changed[2] = true;
#endif
#if N >= 3
                        changed[3] = true;
#endif
                     fi
                   }
                   atomic { ok = ok && !pool_down[me] && c_node == me && c_tok == gtok }  /* Confirmed */
                :: else -> skip
                fi;
                atomic { if :: m_tok == gtok -> m_tok = 0 :: else -> skip fi }  /* Release */
                if
                :: !ok -> delay = 1          /* 10 ms (a tick here; nothing was written) */
                :: ok ->
                   /* ---- Settle ---- */
                   if
                   :: SKIP_SETTLE -> skip
                   :: else -> wait[me] = SETTLE
                   fi;
                   (wait[me] == 0);
                   atomic {
                     if
                     :: pool_down[me] || c_node == 0 -> ok = false
                     :: !pool_down[me] && c_node == me && c_tok == gtok -> skip
                     :: !pool_down[me] && c_node != 0 && !(c_node == me && c_tok == gtok) && c_tok < gtok ->
                        c_node = me; c_tok = gtok; c_wage = 0;           /* re-assert (+ Confirmed) */
                        changed[1] = true;
#if N >= 2
                        changed[2] = true;
#endif
#if N >= 3
                        changed[3] = true;
#endif
                     :: !pool_down[me] && c_node != 0 && !(c_node == me && c_tok == gtok) && c_tok >= gtok ->
                        ok = false
                     fi
                   }
                   if
                   :: ok ->
                      atomic { phase = HOLD; tok = gtok; has_conf[me] = true; conf_age[me] = t0_age[me] };
                      installed[me] = true;                            /* InstallHeld */
                      if                                               /* FenceIfUnconfirmed */
                      :: UNCONFIRMED -> atomic { installed[me] = false; phase = ACQ; tok = 0; has_conf[me] = false }
                      :: else -> delay = H
                      fi
                   :: else -> skip                                     /* lost: 10 ms */
                   fi
                fi
             :: else -> skip
             fi
          fi;
          sleep(delay)
       od
     } unless { crash_req[me] };
     /* ---- crashed: the process is gone, its memory with it; host files and claim stay ---- */
     atomic {
       crash_req[me] = false; running[me] = false; has_conf[me] = false; has_obs[me] = false;
       t0_on[me] = false; rn = 0; rt = 0; kind = 0; gtok = 0; ok = false; renew = false; delay = 0; phase = ACQ; tok = 0;
       if
       :: wait[me] = 1              /* restarted quickly (kill -9, kubelet restarts it) */
       :: wait[me] = TTL + H        /* down for longer than the claim TTL */
       fi
     }
     (wait[me] == 0);
     running[me] = true
  od
}

init {
  atomic {
    byte i = 1;
    do
    :: i <= N -> run Node(i); i++
    :: else -> break
    od
  }
}

#ifdef LIVENESS
/* Once faults are over, eventually exactly one live node has the license, for good, unless the
 * model ran out of fencing tokens (a modelling bound: the real counter does not run out). */
ltl live { [] (faults_over -> <> ([] (LIVE_HOLDERS == 1) || last_tok == MAXTOK)) }
#endif
