#include "http/message.h"

#include "common/strings.h"

namespace lm::http {

std::string_view Request::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return {};
}

Status ParseTarget(std::string_view target, std::string& path, std::string& query) {
  // A raw control byte is never valid in a request target (RFC 9112); a NUL would cut paths.
  for (char c : target) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return InvalidArgument("request target holds a control character");
    }
  }
  // Absolute-form: skip "scheme://authority"; the path starts at the next '/', or is "/".
  auto colon = target.find("://");
  if (colon != std::string_view::npos && colon > 0 && target.front() != '/') {
    std::string_view scheme = target.substr(0, colon);
    bool http = scheme.size() >= 4 && scheme.size() <= 5;
    constexpr std::string_view kHttps = "https";
    for (size_t i = 0; http && i < scheme.size(); ++i) {
      http = (scheme[i] | 0x20) == kHttps[i];
    }
    if (!http) return InvalidArgument("request target must be a path or an http(s) URL");
    std::string_view rest = target.substr(colon + 3);
    auto start = rest.find_first_of("/?");
    if (start == std::string_view::npos) {
      target = "/";
    } else if (rest[start] == '?') {
      path = "/";
      query.assign(rest.substr(start + 1));
      return Status::Ok();
    } else {
      target = rest.substr(start);
    }
  }
  if (target.empty() || target.front() != '/') {
    return InvalidArgument("request target must be a path or an http(s) URL");
  }
  auto q = target.find('?');
  std::string_view raw_path = target.substr(0, q);
  if (q != std::string_view::npos) {
    query.assign(target.substr(q + 1));
  } else {
    query.clear();
  }
  if (raw_path.find('%') == std::string_view::npos) {  // the usual case: nothing to decode
    path.assign(raw_path);
    return Status::Ok();
  }
  path.clear();
  while (true) {
    auto slash = raw_path.find('/', 1);
    std::string_view segment =
        raw_path.substr(1, slash == std::string_view::npos ? std::string_view::npos : slash - 1);
    auto decoded = PercentDecode(segment);
    if (!decoded.ok()) return InvalidArgument("request path: " + decoded.status().message());
    if (decoded->find('/') != std::string::npos) {
      return InvalidArgument("request path: an encoded '/' (%2F) is not allowed in a segment");
    }
    path += '/';
    path += *decoded;
    if (slash == std::string_view::npos) break;
    raw_path.remove_prefix(slash);
  }
  return Status::Ok();
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
