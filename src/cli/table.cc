#include "cli/table.h"

#include <algorithm>

namespace lm::cli {

std::string TerminalSafe(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

std::string ShortDuration(long long ms) {
  if (ms < 0) ms = 0;
  long long s = ms / 1000;
  if (s < 60) return std::to_string(s) + "s";
  long long m = s / 60;
  if (m < 60) return std::to_string(m) + "m" + (s % 60 ? std::to_string(s % 60) + "s" : "");
  long long h = m / 60;
  if (h < 24) return std::to_string(h) + "h" + (m % 60 ? std::to_string(m % 60) + "m" : "");
  long long d = h / 24;
  return std::to_string(d) + "d" + (h % 24 ? std::to_string(h % 24) + "h" : "");
}

Table::Table(std::vector<std::string> headers) { rows_.push_back(std::move(headers)); }

void Table::Row(std::vector<std::string> cells) {
  cells.resize(rows_.front().size());
  for (std::string& c : cells) c = TerminalSafe(c);
  rows_.push_back(std::move(cells));
}

std::string Table::Render() const {
  std::vector<size_t> width(rows_.front().size(), 0);
  for (const auto& r : rows_) {
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  std::string out;
  for (const auto& r : rows_) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 3, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

}  // namespace lm::cli
