// ConnectionDeadlines: when one connection's current phase must end, and when it has been idle
// long enough to give its memory back. Pure: the caller passes the time (read through the
// server's TimeSystem) and acts on the answers. Not thread-safe: one connection's event loop.
//
//   ConnectionDeadlines d(options);
//   d.StartRead(now);                 // the request's first bytes came
//   if (d.Expired(time.Now())) Close();
#pragma once

#include <chrono>

#include "common/clock.h"

namespace lm::http {

struct Timeouts {
  std::chrono::milliseconds read;   // from a request's first byte to its last
  std::chrono::milliseconds idle;   // keep-alive, between requests
  std::chrono::milliseconds write;  // one response
  std::chrono::milliseconds trim;   // idle this long: give the buffers back
};

class ConnectionDeadlines {
 public:
  explicit ConnectionDeadlines(const Timeouts& t) : t_(t) {}

  // Between requests: the next request's first byte is due within the idle timeout, and the
  // idle time that leads to a trim starts.
  void StartIdle(SteadyTime now) {
    deadline_ = now + t_.idle;
    idle_since_ = now;
  }
  // A request's first bytes came: all of it is due within the read timeout.
  void StartRead(SteadyTime now) { deadline_ = now + t_.read; }
  // A response is being sent: it is due within the write timeout.
  void StartWrite(SteadyTime now) { deadline_ = now + t_.write; }
  // The handler has the request: a long poll may wait as long as the handler wants.
  void None() { deadline_ = SteadyTime::max(); }

  // Whether the current phase's deadline passed.
  bool Expired(SteadyTime now) const { return now >= deadline_; }
  // Whether a connection that has stayed idle since StartIdle should give its memory back.
  bool TrimDue(SteadyTime now) const { return now - idle_since_ >= t_.trim; }

 private:
  const Timeouts t_;
  SteadyTime deadline_ = SteadyTime::max();
  SteadyTime idle_since_{};
};

}  // namespace lm::http
