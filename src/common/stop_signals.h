// The signals that stop a program gracefully, taken synchronously (never by a signal handler).
//
// SIGTERM (Kubernetes' stop), SIGINT (Ctrl-C) and SIGHUP (a closed terminal, `kill -HUP`: its
// default action would end the process at once and leave its files behind). BlockStopSignals()
// runs first in main, before any thread starts, so every thread inherits the block and none is
// ever interrupted; the program then takes them from the kernel's queue: license-holder waits
// with sigtimedwait, tokenmgr reads a signalfd on its io_context (StopSignalReader). A signal sent
// at any moment after the block is kept by the kernel until it is taken, so a SIGTERM sent as soon
// as the port file appears still means a clean stop. (tokenmgr once used an Asio signal_set, whose
// handler runs on whichever thread the kernel picks; under TSan such a signal was sometimes never
// handled, 1 start in 20 under load.)
#pragma once

#include <signal.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <functional>
#include <memory>

#include "common/status.h"

namespace lm {

// {SIGTERM, SIGINT, SIGHUP}.
sigset_t StopSignals();

// Blocks StopSignals() in the calling thread (and so in every thread it starts afterwards).
void BlockStopSignals();

// Reads the blocked stop signals from a signalfd on `io`; calls `on_signal(signo)` on the io
// thread for the first one, then stops reading. Requires BlockStopSignals() before.
class StopSignalReader {
 public:
  static StatusOr<std::unique_ptr<StopSignalReader>> Open(boost::asio::io_context& io,
                                                          std::function<void(int)> on_signal);
  // Stops reading (the callback is not called after this returns); idempotent.
  void Cancel();

 private:
  StopSignalReader(boost::asio::io_context& io, int fd, std::function<void(int)> on_signal);
  void Read();

  boost::asio::posix::stream_descriptor fd_;
  std::function<void(int)> on_signal_;
  alignas(8) unsigned char info_[128];  // one signalfd_siginfo
};

}  // namespace lm
