#include "common/stop_signals.h"

#include <pthread.h>
#include <sys/signalfd.h>

#include <boost/asio/read.hpp>
#include <cerrno>
#include <cstring>

namespace lm {

static_assert(sizeof(signalfd_siginfo) == 128);

sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

void BlockStopSignals() {
  sigset_t set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

StatusOr<std::unique_ptr<StopSignalReader>> StopSignalReader::Open(
    boost::asio::io_context& io, std::function<void(int)> on_signal) {
  sigset_t set = StopSignals();
  int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) return Internal(std::string("signalfd: ") + std::strerror(errno));
  std::unique_ptr<StopSignalReader> reader(new StopSignalReader(io, fd, std::move(on_signal)));
  reader->Read();
  return reader;
}

StopSignalReader::StopSignalReader(boost::asio::io_context& io, int fd,
                                   std::function<void(int)> on_signal)
    : fd_(io, fd), on_signal_(std::move(on_signal)) {}

void StopSignalReader::Read() {
  boost::asio::async_read(
      fd_, boost::asio::buffer(info_, sizeof(info_)),
      [this](const boost::system::error_code& ec, size_t) {
        if (ec || !on_signal_) return;  // cancelled, or the descriptor failed
        signalfd_siginfo info;
        std::memcpy(&info, info_, sizeof(info));
        auto callback = std::move(on_signal_);
        on_signal_ = nullptr;
        callback(static_cast<int>(info.ssi_signo));
      });
}

void StopSignalReader::Cancel() {
  on_signal_ = nullptr;
  boost::system::error_code ignored;
  fd_.cancel(ignored);
}

}  // namespace lm
