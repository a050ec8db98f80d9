#include "http/router.h"

#include <algorithm>

namespace lm::http {

namespace {
constexpr int kUnmatched = 0;
}  // namespace

Router::Router() {
  Route unmatched;
  unmatched.pattern = "(unmatched)";
  routes_.push_back(std::move(unmatched));
}

void Router::Add(std::string_view method, std::string pattern, RouteFn fn, Head head) {
  auto it = by_pattern_.find(pattern);
  if (it == by_pattern_.end()) {
    int index = static_cast<int>(routes_.size());
    Route route;
    route.pattern = pattern;
    routes_.push_back(std::move(route));
    if (auto colon = pattern.find("/:"); colon != std::string::npos) {
      auto end = pattern.find('/', colon + 1);
      prefixed_.push_back({pattern.substr(0, colon + 1),
                           end == std::string::npos ? "" : pattern.substr(end), index});
    } else {
      exact_.emplace(pattern, index);
    }
    it = by_pattern_.emplace(std::move(pattern), index).first;
  }
  Route& r = routes_[static_cast<size_t>(it->second)];
  auto m = std::find_if(r.methods.begin(), r.methods.end(),
                        [&](const auto& p) { return p.first == method; });
  if (m != r.methods.end()) {
    m->second = std::move(fn);
  } else {
    r.methods.emplace_back(std::string(method), std::move(fn));
    std::sort(r.methods.begin(), r.methods.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
  }
  if (method == "GET") r.head_as_get = head == Head::kAnswer;
  r.allow.clear();
  for (const auto& [name, f] : r.methods) {
    r.allow += (r.allow.empty() ? "" : ", ") + name;
    if (name == "GET" && r.head_as_get) r.allow += ", HEAD";
  }
}

void Router::Get(std::string path, std::function<Response()> fn) {
  Add("GET", std::move(path),
      [fn = std::move(fn)](const Request&, std::string_view, std::shared_ptr<Responder> r) {
        r->Send(fn());
      });
}

int Router::Match(std::string_view path, std::string_view& param) const {
  if (auto it = exact_.find(path); it != exact_.end()) return it->second;
  for (const auto& [prefix, suffix, index] : prefixed_) {
    if (path.size() <= prefix.size() + suffix.size() || !path.starts_with(prefix) ||
        !path.ends_with(suffix)) {
      continue;
    }
    std::string_view rest = path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
    if (rest.find('/') != std::string_view::npos) continue;
    param = rest;
    return index;
  }
  return kUnmatched;
}

void Router::Handle(const Request& request, std::shared_ptr<Responder> responder) {
  // Find the route first, so counts are keyed by route, never by raw URI.
  std::string_view param;
  int index = Match(request.path, param);
  responder->Observe(this, index);
  if (index == kUnmatched) return responder->Send(ErrorResponse(404, "Resource not found"));
  const Route& route = routes_[static_cast<size_t>(index)];
  std::string_view method = request.method;
  if (method == "HEAD" && route.head_as_get) method = "GET";
  for (const auto& [name, fn] : route.methods) {
    if (name == method) return fn(request, param, std::move(responder));
  }
  Response r = ErrorResponse(405, "Method not allowed");
  r.headers.emplace_back("Allow", route.allow);
  responder->Send(std::move(r));
}

void Router::OnResponse(int route, int status) {
  Route& r = routes_[static_cast<size_t>(route)];
  ++r.hits;
  for (auto& [code, n] : r.by_status) {
    if (code == status) {
      ++n;
      return;
    }
  }
  r.by_status.emplace_back(status, 1);
}

void Router::Record(std::string_view pattern, int status) {
  if (auto it = by_pattern_.find(pattern); it != by_pattern_.end()) OnResponse(it->second, status);
}

std::map<std::string, uint64_t> Router::stats() const {
  std::map<std::string, uint64_t> out;
  for (const Route& r : routes_) {
    if (r.hits > 0) out[r.pattern] = r.hits;
  }
  return out;
}

std::vector<Router::Count> Router::counts() const {
  std::vector<Count> out;
  for (const Route& r : routes_) {
    for (const auto& [status, n] : r.by_status) out.push_back({r.pattern, status, n});
  }
  std::sort(out.begin(), out.end(), [](const Count& a, const Count& b) {
    return a.route != b.route ? a.route < b.route : a.status < b.status;
  });
  return out;
}

}  // namespace lm::http
