// QueryParams and their parsers: the one decoder of query strings and of HTML form bodies
// (application/x-www-form-urlencoded). Thread-compatible values and pure functions.
//
//   StatusOr<QueryParams> q = ParseQuery(request.query, {"ttl", "holder"});
//   if (!q.ok()) return responder->Send(ErrorResponse(400, q.status().message()));
//   if (auto it = q->find("ttl"); it != q->end()) { /* it->second is decoded */ }
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace lm::http {

// Decoded parameters in the order given; names are unique. A flat vector: a request has a
// handful.
class QueryParams {
 public:
  using Pair = std::pair<std::string, std::string>;
  using const_iterator = std::vector<Pair>::const_iterator;

  const_iterator begin() const { return pairs_.begin(); }
  const_iterator end() const { return pairs_.end(); }
  size_t size() const { return pairs_.size(); }
  const_iterator find(std::string_view name) const;    // end() when absent
  const std::string& at(std::string_view name) const;  // throws std::out_of_range when absent
  // Adds name=value unless `name` is there already; returns whether it was added.
  bool Add(std::string name, std::string value);

 private:
  std::vector<Pair> pairs_;
};

// Parses "a=1&b=x%20y". Keys and values are percent-decoded. Fails on malformed escapes, more
// than 32 parameters, or a repeated key.
StatusOr<QueryParams> ParseQuery(std::string_view query);
// ParseQuery for a route that takes only the `known` parameters (names compare exactly): any
// other is INVALID_ARGUMENT naming it and listing the known ones, so a typo ("TTL") is an error,
// never silently ignored.
StatusOr<QueryParams> ParseQuery(std::string_view query,
                                 std::initializer_list<std::string_view> known);
// An application/x-www-form-urlencoded body: ParseQuery's rules, and '+' means a space.
StatusOr<QueryParams> ParseForm(std::string_view body);

}  // namespace lm::http
