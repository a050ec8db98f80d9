#include "http/router.h"

namespace lm::http {

void Router::Handle(const Request& request, std::shared_ptr<Responder> responder) {
  auto it = routes_.find(request.path);
  if (it == routes_.end()) return responder->Send(ErrorResponse(404, "Resource not found"));
  if (request.method != "GET") {
    Response r = ErrorResponse(405, "Method not allowed");
    r.headers.emplace_back("Allow", "GET");
    return responder->Send(std::move(r));
  }
  responder->Send(it->second());
}

}  // namespace lm::http
