// Request, Response and Responder: the plain types handlers see (Beast stays in the codec and
// the connection).
// Not thread-safe: all used on the server's event-loop thread.
//
//   void Handle(const Request& req, std::shared_ptr<Responder> r) override {
//     r->OnCancel([] { /* client went away before we answered */ });
//     r->Send(JsonResponse(200, R"({"ok":true})"));  // now, or later from a callback
//   }
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace lm::http {

struct Request {
  std::string method;  // "GET", "POST", ... ("HEAD" is answered like "GET" without the body)
  std::string target;  // raw, e.g. "/api/token/lock/5?ttl=10"
  std::string path;    // target before '?', each segment percent-decoded (see ParseTarget)
  std::string query;   // target after '?', not decoded
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;
  std::string remote_address;
  // The first header with this lower-case name, or "".
  std::string_view Header(std::string_view lower_name) const;
};

struct Response {
  int status = 200;
  // A literal (static storage): every response type is one, and the hot path copies nothing.
  std::string_view content_type = "application/json; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Splits a request target into `path` (each '/'-separated segment percent-decoded) and `query`
// (after the first '?', raw). Origin-form "/a/b?q" and absolute-form "http://host/a/b?q" are
// accepted; the latter is taken as origin-form, its authority ignored (RFC 9112 3.2.2).
// INVALID_ARGUMENT for any other form, a malformed escape, or an escape that decodes to '/' or
// NUL (it would change which route is meant). Reuses the strings' capacity.
Status ParseTarget(std::string_view target, std::string& path, std::string& query);

// {"Error": message} with the status.
Response ErrorResponse(int status, std::string_view message);
Response JsonResponse(int status, std::string body);

// Told the status of every response a Responder sends (e.g. to count requests by route and
// code without wrapping the Responder).
class ResponseObserver {
 public:
  virtual ~ResponseObserver() = default;
  virtual void OnResponse(int tag, int status) = 0;
};

// Where a Responder delivers its response: the server's connection. Held until the response is
// sent or the client went away. A client that goes away is told by the connection calling
// Responder::Cancel (the one way a handler learns of it: see OnCancel).
class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  virtual void Deliver(Response response) = 0;
};

class Responder {
 public:
  explicit Responder(std::function<void(Response)> sink) : sink_(std::move(sink)) {}
  // The server's form: no std::function to allocate per request.
  explicit Responder(std::shared_ptr<ResponseSink> sink) : sink_object_(std::move(sink)) {}
  // Sends the response. Only the first call counts; later calls and calls after the client
  // went away are ignored.
  void Send(Response response);
  // Runs if the client disconnects before Send (the connection noticed its end of stream or
  // reset while the response was pending). Replaces any earlier callback.
  void OnCancel(std::function<void()> on_cancel) { on_cancel_ = std::move(on_cancel); }
  bool done() const { return done_; }

  // For the server: the client went away.
  void Cancel();

  // `observer` (which must outlive this Responder) hears the status when Send runs, with `tag`.
  void Observe(ResponseObserver* observer, int tag) {
    observer_ = observer;
    tag_ = tag;
  }

 private:
  std::function<void(Response)> sink_;
  std::shared_ptr<ResponseSink> sink_object_;  // dropped on Send or Cancel
  std::function<void()> on_cancel_;
  ResponseObserver* observer_ = nullptr;
  int tag_ = 0;
  bool done_ = false;
};

class Handler {
 public:
  virtual ~Handler() = default;
  virtual void Handle(const Request& request, std::shared_ptr<Responder> responder) = 0;
};

}  // namespace lm::http
