#include "common/real_time.h"
#include "app/state_command.h"

#include <string_view>

#include "common/atomic_file.h"
#include "common/clock.h"
#include "store/state_file.h"
#include "store/state_show.h"

namespace lm::app {

namespace {

constexpr std::string_view kUsage =
    "usage: tokenmgr state show FILE   print the state file (STATE_FILE) as JSON";

}  // namespace

bool IsStateCommand(int argc, const char* const* argv) {
  return argc >= 2 && std::string_view(argv[1]) == "state";
}

StatusOr<StateCommand> ParseStateCommand(int argc, const char* const* argv) {
  StateCommand c;
  if (argc == 3 && (std::string_view(argv[2]) == "--help" || std::string_view(argv[2]) == "-h")) {
    c.help = true;
    return c;
  }
  if (argc < 3 || std::string_view(argv[2]) != "show") {
    return InvalidArgument(std::string(argc < 3
                                           ? "missing subcommand"
                                           : "unknown subcommand '" + std::string(argv[2]) + "'") +
                           "\n" + std::string(kUsage));
  }
  if (argc != 4 || std::string_view(argv[3]).empty()) {
    return InvalidArgument("state show takes exactly one FILE\n" + std::string(kUsage));
  }
  c.file = argv[3];
  return c;
}

int RunStateCommand(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  StatusOr<StateCommand> c = ParseStateCommand(argc, argv);
  if (!c.ok()) {
    err << "tokenmgr: " << c.status().message() << "\n";
    return 2;
  }
  if (c->help) {
    out << kUsage << "\n";
    return 0;
  }
  StatusOr<std::string> text = ReadSmallFile(c->file, store::kMaxStateFileBytes);
  if (!text.ok()) {
    err << "tokenmgr: state file " << c->file << ": " << text.status().ToString() << "\n";
    return 1;
  }
  StatusOr<std::string> shown =
      store::DescribeStateFile(*text, c->file, RealTimeSystem::Get().WallNow());
  if (!shown.ok()) {
    err << "tokenmgr: " << shown.status().ToString() << "\n"
        << "tokenmgr refuses to start on this file. " << store::kStateRecoveryHint << "\n";
    return 1;
  }
  out << *shown;
  return 0;
}

}  // namespace lm::app
