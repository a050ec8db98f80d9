// BlockPool and PoolAllocator: memory for one connection's parsed request headers, recycled
// from one request to the next. Beast allocates every header field and the request line
// separately; on a kept-alive connection the next request needs blocks of the same sizes, so
// they come back from here instead of malloc. Not thread-safe: one connection's event loop.
//
//   BlockPool pool;
//   http::request_parser<http::string_body, PoolAllocator<char>> parser(
//       std::piecewise_construct, std::make_tuple(), std::make_tuple(PoolAllocator<char>(&pool)));
//   ...
//   pool.Clear();  // the connection went idle: give the blocks back to the heap
//
// The pool must outlive every allocator and container that uses it.
#pragma once

#include <cstddef>
#include <new>
#include <utility>
#include <vector>

namespace lm::http {

class BlockPool {
 public:
  BlockPool() = default;
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;
  ~BlockPool() { Clear(); }

  // A block of at least n bytes (n is rounded up to a size class).
  void* Get(size_t n) {
    size_t size = Round(n);
    for (size_t i = 0; i < free_.size(); ++i) {
      if (free_[i].first == size) {
        void* p = free_[i].second;
        free_[i] = free_.back();
        free_.pop_back();
        return p;
      }
    }
    return ::operator new(size);
  }

  // Takes back a block from Get(n); keeps up to kMaxKept of them.
  void Put(void* p, size_t n) {
    if (free_.size() < kMaxKept) {
      if (free_.capacity() == 0) free_.reserve(kMaxKept);
      free_.emplace_back(Round(n), p);
      return;
    }
    ::operator delete(p);
  }

  // Frees every kept block (and the list itself).
  void Clear() {
    for (auto& [size, p] : free_) ::operator delete(p);
    std::vector<std::pair<size_t, void*>>().swap(free_);
  }

  size_t kept() const { return free_.size(); }

  static constexpr size_t kMaxKept = 16;

 private:
  // Size classes of 64 bytes: a field's block differs by a few bytes between requests.
  static size_t Round(size_t n) { return (n + 63) / 64 * 64; }

  std::vector<std::pair<size_t, void*>> free_;
};

template <typename T>
class PoolAllocator {
 public:
  using value_type = T;

  explicit PoolAllocator(BlockPool* pool) noexcept : pool_(pool) {}
  template <typename U>
  PoolAllocator(const PoolAllocator<U>& other) noexcept : pool_(other.pool()) {}

  T* allocate(size_t n) { return static_cast<T*>(pool_->Get(n * sizeof(T))); }
  void deallocate(T* p, size_t n) noexcept { pool_->Put(p, n * sizeof(T)); }

  BlockPool* pool() const noexcept { return pool_; }

  template <typename U>
  bool operator==(const PoolAllocator<U>& other) const noexcept {
    return pool_ == other.pool();
  }

 private:
  BlockPool* pool_;
};

}  // namespace lm::http
