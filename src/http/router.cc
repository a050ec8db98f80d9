#include "http/router.h"

namespace lm::http {

void Router::Handle(const Request& request, std::shared_ptr<Responder> responder) {
  auto it = routes_.find(request.path);
  if (it == routes_.end()) return responder->Send(ErrorResponse(404, "Resource not found"));
  // HEAD gets the GET response; the server leaves out the body.
  if (request.method != "GET" && request.method != "HEAD") {
    Response r = ErrorResponse(405, "Method not allowed");
    r.headers.emplace_back("Allow", "GET, HEAD");
    return responder->Send(std::move(r));
  }
  responder->Send(it->second());
}

}  // namespace lm::http
