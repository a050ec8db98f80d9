// The HTTP/1.1 codec: RequestDecoder turns bytes into Requests, SerializeResponse turns a Response
// into bytes. No sockets and no clocks: the connection (http/connection.h) feeds it what it read.
// Not thread-safe: one connection's event loop.
//
//   RequestDecoder decoder(limits);
//   Decoded d = decoder.Decode(bytes);     // consumes d.used bytes of them
//   if (d.result == Decoded::kRequest) Handle(decoder.request());
//   if (d.result == Decoded::kError) Reply(d.status, d.error);   // then close
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "http/block_pool.h"
#include "http/message.h"

namespace lm::http {

struct CodecLimits {
  size_t max_header_bytes = 8 * 1024;  // request line and all header fields
  size_t max_header_count = 64;        // header fields
  size_t max_body_bytes = 64 * 1024;
};

struct Decoded {
  enum Result {
    kNeedMore,  // every byte given was taken (or none could be): read more
    kRequest,   // a whole request: request() holds it; bytes after `used` are the next one's
    kError,     // the bytes are not a request within the limits: answer `status`, then close
  };
  Result result = kNeedMore;
  size_t used = 0;         // bytes taken from the front of the input
  int status = 0;          // kError: 400, 413 or 431
  std::string_view error;  // kError: what was wrong, for the response body
};

class RequestDecoder {
 public:
  explicit RequestDecoder(CodecLimits limits) : limits_(limits) {}
  RequestDecoder(const RequestDecoder&) = delete;
  RequestDecoder& operator=(const RequestDecoder&) = delete;

  // Parses `bytes` as (the continuation of) one request. A request's first bytes start a new
  // one. After kRequest, request() is valid until the next Decode or Trim.
  Decoded Decode(boost::asio::const_buffer bytes);
  // The client ended the stream. Inside a request: that request if it is complete without
  // more bytes, else kError (400). Between requests: kNeedMore (nothing to answer).
  Decoded Finish();

  // Whether a request's first bytes came and its end has not.
  bool in_request() const { return in_request_; }
  // The last decoded request, refilled in place (its strings keep their capacity).
  const Request& request() const { return request_; }
  Request& request() { return request_; }
  // Of the last decoded request: whether the client asked to keep the connection, and whether
  // it was a HEAD (its response carries no body).
  bool keep_alive() const { return keep_alive_; }
  bool head() const { return head_; }

  // Gives back the memory kept between requests (parser, header blocks, request strings).
  // Only between requests.
  void Trim();

 private:
  using Parser =
      boost::beast::http::request_parser<boost::beast::http::string_body, PoolAllocator<char>>;
  void Start();
  Decoded Complete(size_t used);
  Decoded Error(size_t used, int status, std::string_view message);

  const CodecLimits limits_;
  BlockPool fields_pool_;  // before parser_: outlives it
  std::optional<Parser> parser_;
  Request request_;
  std::string target_error_;  // the message of a target ParseTarget refused
  bool in_request_ = false;
  bool header_checked_ = false;
  bool keep_alive_ = false;
  bool head_ = false;
};

// The response's bytes on the wire into `out` (HTTP/1.1, Content-Length, "Connection: close"
// unless kept). A response to HEAD (`with_body` false) has the same header fields,
// Content-Length included. Reuses `out`'s capacity.
void SerializeResponse(const Response& r, std::string_view server_name, bool keep_alive,
                       bool with_body, std::string& out);

}  // namespace lm::http
