#include "http/block_pool.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace lm::http {
namespace {

TEST(BlockPool, ReusesAFreedBlockOfTheSameSizeClass) {
  BlockPool pool;
  void* a = pool.Get(100);
  pool.Put(a, 100);
  EXPECT_EQ(pool.kept(), 1u);
  EXPECT_EQ(pool.Get(90), a);  // same 64-byte class (65..128)
  EXPECT_EQ(pool.kept(), 0u);
  pool.Put(a, 90);
}

TEST(BlockPool, DoesNotHandOutABlockOfAnotherSizeClass) {
  BlockPool pool;
  void* small = pool.Get(10);
  pool.Put(small, 10);
  void* big = pool.Get(1000);
  EXPECT_NE(big, small);
  EXPECT_EQ(pool.kept(), 1u);
  pool.Put(big, 1000);
}

TEST(BlockPool, KeepsAtMostItsLimitAndClearGivesEverythingBack) {
  BlockPool pool;
  std::vector<void*> blocks;
  for (size_t i = 0; i < BlockPool::kMaxKept + 5; ++i) blocks.push_back(pool.Get(32));
  for (void* p : blocks) pool.Put(p, 32);
  EXPECT_EQ(pool.kept(), BlockPool::kMaxKept);
  pool.Clear();
  EXPECT_EQ(pool.kept(), 0u);
}

TEST(PoolAllocator, BacksAStandardContainerAndRecyclesItsNodes) {
  BlockPool pool;
  using Alloc = PoolAllocator<std::pair<const std::string, std::string>>;
  {
    std::map<std::string, std::string, std::less<>, Alloc> m{Alloc(&pool)};
    m["host"] = "127.0.0.1";
    m["content-length"] = "0";
  }
  size_t kept = pool.kept();
  EXPECT_EQ(kept, 2u);  // both nodes came back
  {
    std::map<std::string, std::string, std::less<>, Alloc> m{Alloc(&pool)};
    m["host"] = "127.0.0.1";
    EXPECT_EQ(pool.kept(), kept - 1);  // taken from the pool, not the heap
  }
  EXPECT_TRUE(PoolAllocator<char>(&pool) == PoolAllocator<int>(&pool));
  BlockPool other;
  EXPECT_FALSE(PoolAllocator<char>(&pool) == PoolAllocator<char>(&other));
}

}  // namespace
}  // namespace lm::http
