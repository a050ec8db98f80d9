// Router: a tiny Handler for exact-path GET (and HEAD) endpoints (the license-holder's /healthz,
// /readyz, /metrics). Handlers run on the server's thread and must be quick and thread-safe with
// respect to whatever state they read.
//
//   Router r;
//   r.Get("/healthz", [&] { return JsonResponse(200, R"({"status":"ok"})"); });
//   HttpServer server(io, options, r);
#pragma once

#include <functional>
#include <map>
#include <string>

#include "http/message.h"

namespace lm::http {

class Router final : public Handler {
 public:
  void Get(std::string path, std::function<Response()> fn) { routes_[std::move(path)] = std::move(fn); }
  void Handle(const Request& request, std::shared_ptr<Responder> responder) override;

 private:
  std::map<std::string, std::function<Response()>> routes_;
};

}  // namespace lm::http
