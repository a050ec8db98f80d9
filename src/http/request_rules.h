// Rules every service on this transport applies: which HTTP status answers a Status code, and
// whether a browser request comes from another site. Pure functions.
//
//   if (CrossSite(request)) return responder->Send(ErrorResponse(403, "cross-site request
//   refused")); responder->Send(StatusResponse(status));
#pragma once

#include "common/status.h"
#include "http/message.h"

namespace lm::http {

// The HTTP status for a Status code.
int HttpStatusFor(StatusCode code);

// The JSON error answer for a failed Status: HttpStatusFor(code) and the message.
Response StatusResponse(const Status& s);

// True for a browser request from another site (Sec-Fetch-Site or an Origin not matching Host).
// Non-browser clients send neither header and pass.
bool CrossSite(const Request& request);

}  // namespace lm::http
