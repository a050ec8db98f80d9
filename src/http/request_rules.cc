#include "http/request_rules.h"

namespace lm::http {

Response StatusResponse(const Status& s) {
  return ErrorResponse(HttpStatusFor(s.code()), s.message());
}

int HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kFailedPrecondition:
      return 409;
    case StatusCode::kDeadlineExceeded:
      return 409;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kPermissionDenied:
      return 403;
    case StatusCode::kUnauthenticated:
      return 401;
    case StatusCode::kResourceExhausted:
      return 503;
    case StatusCode::kDataLoss:
      return 500;
    case StatusCode::kInternal:
      return 500;
  }
  return 500;
}

// A cross-site browser request must not change state (CSRF). Non-browser clients send neither
// header.
bool CrossSite(const Request& req) {
  if (req.Header("sec-fetch-site") == "cross-site") return true;
  std::string_view origin = req.Header("origin");
  if (origin.empty() || origin == "null") return !origin.empty();
  auto scheme = origin.find("://");
  std::string_view host = scheme == std::string_view::npos ? origin : origin.substr(scheme + 3);
  return host != req.Header("host");
}

}  // namespace lm::http
