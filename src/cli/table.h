// Table: aligned columns for a terminal, as kubectl prints them (upper-case headers, columns
// separated by three spaces, no borders). Cells are made safe for a terminal: control bytes
// (escape sequences included) are shown as '?'; node names, pod names and event details are
// text an attacker may choose. Thread-compatible.
//
//   Table t({"NODE", "STATE"});
//   t.Row({"gpu-7", "held"});
//   std::cout << t.Render();
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lm::cli {

class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void Row(std::vector<std::string> cells);  // missing cells are empty, extra ones dropped
  std::string Render() const;

 private:
  std::vector<std::vector<std::string>> rows_;  // headers first
};

// `s` with every byte below 0x20 and 0x7f replaced by '?'.
std::string TerminalSafe(std::string_view s);
// "45s", "3m12s", "2h5m", "3d4h": how long ago (or for how long), coarse like kubectl's AGE.
std::string ShortDuration(long long ms);

}  // namespace lm::cli
