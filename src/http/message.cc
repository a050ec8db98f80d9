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
  if (observer_) observer_->OnResponse(tag_, response.status);
  if (auto object = std::move(sink_object_)) return object->Deliver(std::move(response));
  auto sink = std::move(sink_);
  sink_ = nullptr;
  if (sink) sink(std::move(response));
}

bool Responder::ClientConnected() const {
  if (probe_) return probe_();
  if (!has_sink_object_) return true;
  auto sink = weak_sink_.lock();
  return sink && sink->Connected();
}

void Responder::Cancel() {
  if (done_) return;
  done_ = true;
  sink_ = nullptr;
  sink_object_.reset();
  auto cb = std::move(on_cancel_);
  on_cancel_ = nullptr;
  if (cb) cb();
}

}  // namespace lm::http
