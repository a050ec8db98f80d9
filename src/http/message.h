// Request, Response and Responder: the plain types handlers see. Beast stays inside server.cc.
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

namespace lm::http {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // raw, e.g. "/api/token/lock/5?ttl=10"
  std::string path;    // target before '?', not decoded
  std::string query;   // target after '?', not decoded
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  std::string body;
  std::string remote_address;
  // The first header with this lower-case name, or "".
  std::string_view Header(std::string_view lower_name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// {"Error": message} with the status.
Response ErrorResponse(int status, std::string_view message);
Response JsonResponse(int status, std::string body);

class Responder {
 public:
  explicit Responder(std::function<void(Response)> sink) : sink_(std::move(sink)) {}
  // Sends the response. Only the first call counts; later calls and calls after the client
  // went away are ignored.
  void Send(Response response);
  // Runs if the client disconnects before Send. Replaces any earlier callback.
  void OnCancel(std::function<void()> on_cancel) { on_cancel_ = std::move(on_cancel); }
  bool done() const { return done_; }

  // For the server: the client went away.
  void Cancel();

  // Whether the client is still connected, as far as can be told without blocking. True when
  // the server installed no probe.
  bool ClientConnected() const { return !probe_ || probe_(); }
  void SetConnectionProbe(std::function<bool()> probe) { probe_ = std::move(probe); }

 private:
  std::function<void(Response)> sink_;
  std::function<void()> on_cancel_;
  std::function<bool()> probe_;
  bool done_ = false;
};

class Handler {
 public:
  virtual ~Handler() = default;
  virtual void Handle(const Request& request, std::shared_ptr<Responder> responder) = 0;
};

}  // namespace lm::http
