// Status and StatusOr<T>: how our code reports errors (no exceptions across module edges).
// Thread-compatible value types.
//
//   StatusOr<int> r = ParseSeconds("12", "LOCKDURATION", 3600);
//   if (!r.ok()) return r.status();
//   use(*r);
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace lm {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // caller's input is malformed; do not retry as is
  kNotFound,            // the thing named does not exist (or no longer holds the lock)
  kFailedPrecondition,  // state does not allow the call now (e.g. lock busy)
  kDeadlineExceeded,    // the wait ran out
  kUnavailable,         // transient: retry later (server down, store unreachable)
  kPermissionDenied,
  kUnauthenticated,
  kResourceExhausted,  // a configured bound was hit (queue full, disk full)
  kDataLoss,           // persisted data is corrupt or truncated
  kInternal,           // a broken invariant
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "NOT_FOUND: lock id does not hold the lock"
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status FailedPrecondition(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status DeadlineExceeded(std::string m) {
  return {StatusCode::kDeadlineExceeded, std::move(m)};
}
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status Unauthenticated(std::string m) { return {StatusCode::kUnauthenticated, std::move(m)}; }
inline Status ResourceExhausted(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}
inline Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT
    if (status_.ok()) status_ = Internal("StatusOr constructed from OK status without a value");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace lm

#define LM_RETURN_IF_ERROR(expr)          \
  do {                                    \
    ::lm::Status lm_status_ = (expr);     \
    if (!lm_status_.ok()) return lm_status_; \
  } while (0)
