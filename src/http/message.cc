#include "http/message.h"

#include "common/strings.h"

namespace lm::http {

std::string_view Request::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return {};
}

Response JsonResponse(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

Response ErrorResponse(int status, std::string_view message) {
  return JsonResponse(status, "{\"Error\": \"" + JsonEscape(message) + "\"}");
}

void Responder::Send(Response response) {
  if (done_) return;
  done_ = true;
  on_cancel_ = nullptr;
  auto sink = std::move(sink_);
  sink_ = nullptr;
  if (sink) sink(std::move(response));
}

void Responder::Cancel() {
  if (done_) return;
  done_ = true;
  sink_ = nullptr;
  auto cb = std::move(on_cancel_);
  on_cancel_ = nullptr;
  if (cb) cb();
}

}  // namespace lm::http
