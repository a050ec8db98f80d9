#include "http/codec.h"

#include <boost/beast/http/error.hpp>
#include <boost/beast/http/status.hpp>
#include <tuple>

namespace lm::http {

namespace bhttp = boost::beast::http;

void RequestDecoder::Start() {
  in_request_ = true;
  header_checked_ = false;
  head_ = false;
  // The header fields' blocks are recycled from the previous request on this connection.
  parser_.emplace(std::piecewise_construct, std::make_tuple(),
                  std::make_tuple(PoolAllocator<char>(&fields_pool_)));
  parser_->header_limit(static_cast<uint32_t>(limits_.max_header_bytes));
  parser_->body_limit(limits_.max_body_bytes);
  parser_->eager(true);
}

Decoded RequestDecoder::Decode(boost::asio::const_buffer bytes) {
  if (bytes.size() == 0) return {};
  if (!in_request_) Start();
  const char* data = static_cast<const char*>(bytes.data());
  size_t used = 0;
  while (true) {
    boost::beast::error_code ec;
    size_t n = parser_->put(boost::asio::buffer(data + used, bytes.size() - used), ec);
    used += n;
    if (!ec && parser_->is_header_done() && !header_checked_) {
      header_checked_ = true;
      size_t fields = 0;
      for (auto it = parser_->get().begin(); it != parser_->get().end(); ++it) ++fields;
      if (fields > limits_.max_header_count) {
        return Error(used, 431, "too many request header fields");
      }
    }
    if (!ec && parser_->is_done()) return Complete(used);
    if (ec == bhttp::error::header_limit) return Error(used, 431, "request headers too large");
    if (ec == bhttp::error::body_limit) return Error(used, 413, "request body too large");
    if (ec && ec != bhttp::error::need_more) return Error(used, 400, "malformed HTTP request");
    // need_more, or the parser took something and may take more of what is left.
    if (ec || n == 0 || used == bytes.size()) return {Decoded::kNeedMore, used, 0, {}};
  }
}

Decoded RequestDecoder::Finish() {
  if (!in_request_) return {};
  boost::beast::error_code ec;
  parser_->put_eof(ec);
  if (ec == bhttp::error::header_limit) return Error(0, 431, "request headers too large");
  if (ec == bhttp::error::body_limit) return Error(0, 413, "request body too large");
  if (ec) return Error(0, 400, "malformed HTTP request");
  return Complete(0);
}

Decoded RequestDecoder::Complete(size_t used) {
  in_request_ = false;
  auto& msg = parser_->get();
  // The request object is refilled in place: its strings keep their capacity, so a request on
  // a kept-alive connection copies without allocating.
  Request& req = request_;
  req.method.assign(msg.method_string());
  req.target.assign(msg.target());
  if (Status s = ParseTarget(req.target, req.path, req.query); !s.ok()) {
    target_error_ = s.message();
    return Error(used, 400, target_error_);
  }
  head_ = msg.method() == bhttp::verb::head;
  size_t n = 0;
  for (const auto& field : msg) {
    if (n == req.headers.size()) req.headers.emplace_back();
    auto& [name, value] = req.headers[n++];
    name.assign(field.name_string());
    for (auto& c : name) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    value.assign(field.value());
  }
  req.headers.resize(n);
  req.body = std::move(msg.body());
  keep_alive_ = msg.keep_alive();
  return {Decoded::kRequest, used, 0, {}};
}

Decoded RequestDecoder::Error(size_t used, int status, std::string_view message) {
  in_request_ = false;
  keep_alive_ = false;
  head_ = false;
  return {Decoded::kError, used, status, message};
}

void RequestDecoder::Trim() {
  parser_.reset();
  fields_pool_.Clear();
  request_ = Request{};
  std::string().swap(target_error_);
}

void SerializeResponse(const Response& r, std::string_view server_name, bool keep_alive,
                       bool with_body, std::string& out) {
  out.clear();
  out.reserve(160 + r.body.size());
  out += "HTTP/1.1 ";
  out += std::to_string(r.status);
  out += ' ';
  out += bhttp::obsolete_reason(static_cast<bhttp::status>(r.status));
  out += "\r\nServer: ";
  out += server_name;
  out += "\r\nContent-Type: ";
  out += r.content_type;
  for (const auto& [name, value] : r.headers) {
    out += "\r\n";
    out += name;
    out += ": ";
    out += value;
  }
  if (!keep_alive) out += "\r\nConnection: close";
  out += "\r\nContent-Length: ";
  out += std::to_string(r.body.size());
  out += "\r\n\r\n";
  if (with_body) out += r.body;
}

}  // namespace lm::http
