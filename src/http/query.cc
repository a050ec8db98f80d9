#include "http/query.h"

#include <algorithm>
#include <stdexcept>

#include "common/strings.h"

namespace lm::http {

QueryParams::const_iterator QueryParams::find(std::string_view name) const {
  return std::find_if(pairs_.begin(), pairs_.end(), [&](const Pair& p) { return p.first == name; });
}

const std::string& QueryParams::at(std::string_view name) const {
  auto it = find(name);
  if (it == end()) throw std::out_of_range("no query parameter " + std::string(name));
  return it->second;
}

bool QueryParams::Add(std::string name, std::string value) {
  if (find(name) != end()) return false;
  pairs_.emplace_back(std::move(name), std::move(value));
  return true;
}

StatusOr<QueryParams> ParseQuery(std::string_view query) {
  QueryParams out;
  if (query.empty()) return out;
  int count = 0;
  while (true) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    if (!pair.empty()) {
      if (++count > 32) return InvalidArgument("too many query parameters");
      auto eq = pair.find('=');
      auto key = PercentDecode(pair.substr(0, eq));
      auto value = PercentDecode(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
      if (!key.ok() || !value.ok()) return InvalidArgument("malformed query string");
      if (!out.Add(std::move(*key), std::move(*value))) {
        return InvalidArgument("repeated query parameter");
      }
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

StatusOr<QueryParams> ParseQuery(std::string_view query,
                                 std::initializer_list<std::string_view> known) {
  auto params = ParseQuery(query);
  if (!params.ok()) return params;
  for (const auto& [name, value] : *params) {
    if (std::find(known.begin(), known.end(), name) != known.end()) continue;
    std::string list;
    for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
    return InvalidArgument("unknown query parameter '" + JsonEscape(name.substr(0, 64)) + "'" +
                           (list.empty() ? "; this route takes none"
                                         : "; this route takes: " + list + " (lower case)"));
  }
  return params;
}

StatusOr<QueryParams> ParseForm(std::string_view body) {
  std::string s;
  s.reserve(body.size());
  for (char c : body) {
    if (c == '+') {
      s += "%20";
    } else {
      s += c;
    }
  }
  return ParseQuery(s);
}

}  // namespace lm::http
