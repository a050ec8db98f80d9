// Router: the one request dispatcher of both programs. A route is an exact path ("/healthz") or
// a prefix with one parameter segment ("/api/token/lock/:timeout": the rest of the path,
// non-empty, without '/'), optionally followed by a fixed suffix ("/api/nodes/:node/cordon");
// its pattern is its stats key. Every response is counted by route and
// status when it is sent, however late; a path no route takes gets 404 and counts as
// "(unmatched)", a known path with another method 405 naming the allowed ones. A GET route also
// answers HEAD (the server leaves out the body) unless added with Head::kRefuse.
// Not thread-safe: add routes before serving; Handle runs on the server's event-loop thread, so
// a handler must be quick and safe with respect to any state other threads change.
//
//   Router r;
//   r.Get("/healthz", [] { return JsonResponse(200, R"({"status": "ok"})"); });
//   r.Add("POST", "/api/token/release/:id", [&](const Request& req, std::string_view id,
//                                              std::shared_ptr<Responder> out) { ... });
//   HttpServer server(io, options, r);
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/message.h"

namespace lm::http {

class Router final : public Handler, private ResponseObserver {
 public:
  // Answers a request through `responder`, now or later. `param` is the parameter segment of a
  // "/prefix/:name" pattern (percent-decoded with the path), empty for an exact path.
  using RouteFn =
      std::function<void(const Request&, std::string_view param, std::shared_ptr<Responder>)>;
  enum class Head { kAnswer, kRefuse };

  Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Adds `method` on `pattern`, replacing an earlier handler for the same pair. `head` applies
  // to a GET: kRefuse for a GET that changes state (a HEAD's answer is never seen).
  void Add(std::string_view method, std::string pattern, RouteFn fn, Head head = Head::kAnswer);
  // A GET (and HEAD) route answered at once with fn().
  void Get(std::string path, std::function<Response()> fn);

  void Handle(const Request& request, std::shared_ptr<Responder> responder) override;

  // Counts a response sent for `pattern` by other code (e.g. a form that does what that route
  // does, so its requests count there too). Unknown patterns are ignored.
  void Record(std::string_view pattern, int status);

  // Responses sent, by route; routes with at least one.
  std::map<std::string, uint64_t> stats() const;
  struct Count {
    std::string_view route;
    int status = 0;
    uint64_t responses = 0;
  };
  // Responses by route and status, sorted by route then status.
  std::vector<Count> counts() const;

 private:
  struct Route {
    std::string pattern;
    std::vector<std::pair<std::string, RouteFn>> methods;  // sorted by method
    bool head_as_get = false;
    std::string allow;  // "GET, HEAD, POST": what a 405 names
    uint64_t hits = 0;
    std::vector<std::pair<int, uint64_t>> by_status;  // few distinct statuses
  };
  void OnResponse(int route, int status) override;
  // The route index for `path` (0: unmatched), with the parameter segment if any.
  int Match(std::string_view path, std::string_view& param) const;

  std::vector<Route> routes_;  // [0] is "(unmatched)"; indices are stable
  std::map<std::string, int, std::less<>> by_pattern_;
  std::map<std::string, int, std::less<>> exact_;
  struct Prefixed {
    std::string prefix;  // "/api/nodes/"
    std::string suffix;  // "/cordon", or "" when the parameter ends the path
    int route = 0;
  };
  std::vector<Prefixed> prefixed_;
};

}  // namespace lm::http
