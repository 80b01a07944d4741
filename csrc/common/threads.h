// A persistent thread pool shared by every kernel of the compiled core.
//
// Why not std::thread per call: a GEMV on this class of machine takes 0.1-1 ms and spawning
// threads costs tens of microseconds each. Why not OpenMP: torch ships its own libgomp and two
// OpenMP runtimes in one process oversubscribe the cores.
//
// Usage: parallel_for(n_tasks, threads, [&](int64_t task) { ... });  runs every task exactly
// once on up to `threads` threads (the calling thread included) and returns when all are done.
// One parallel region runs at a time; a second caller (kernels release the GIL) runs its tasks
// inline instead of waiting, so concurrent calls from Python threads never deadlock.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <unistd.h>

namespace frugalnn {

// Read once: std::thread::hardware_concurrency() reads /sys on every call (~10 us), and the pool
// asks on every parallel region.
inline int hardware_threads() {
  static const int n = [] {
    unsigned h = std::thread::hardware_concurrency();
    return h ? static_cast<int>(h) : 1;
  }();
  return n;
}

// The most threads any kernel call may ask for: 4x the hardware threads, and never less than 256
// so that a thread count valid on one machine stays valid on any other. Why a cap: the pool keeps
// its workers for the life of the process, so `threads=10**6` once meant thousands of idle OS
// threads; more threads than this only oversubscribe the cores. The bindings refuse more
// (ValueError, common/arrays.h resolve_threads), and so does frugalnn.threads (same number,
// `_core.max_threads()`); the pool below clamps as a last line.
inline int max_threads() {
  const int hw = hardware_threads();
  return 4 * hw > 256 ? 4 * hw : 256;
}

// The most threads one region actually runs on (the pool's size): 4x the hardware threads. A call
// may ask for more (up to max_threads()); it then runs on these, which changes no result (every
// kernel's output is independent of its thread count, which the tests check), and a 2-core
// machine never holds 255 workers because one call asked for 256.
inline int max_pool_threads() { return 4 * hardware_threads(); }

class ThreadPool {
 public:
  static ThreadPool& instance() {
    // Leaked on purpose: joining workers from a static destructor during interpreter shutdown
    // can deadlock, and the OS reclaims the threads at exit anyway.
    static ThreadPool* pool = new ThreadPool();
    return *pool;
  }

  void run(int64_t n_tasks, int threads, const std::function<void(int64_t)>& fn) {
    if (n_tasks <= 0) return;
    if (threads > n_tasks) threads = static_cast<int>(n_tasks);
    if (threads > max_pool_threads()) threads = max_pool_threads();
    if (threads > 0xFFFF) threads = 0xFFFF;  // participants must fit the 16 bits they get in generation_
    std::unique_lock<std::mutex> region(region_mutex_, std::try_to_lock);
    if (threads <= 1 || !region.owns_lock()) {
      for (int64_t t = 0; t < n_tasks; ++t) fn(t);
      return;
    }
    forget_workers_after_fork();
    ensure_workers(threads - 1);
    fn_ = &fn;
    n_tasks_ = n_tasks;
    error_ = nullptr;
    next_.store(0, std::memory_order_relaxed);
    finished_.store(0, std::memory_order_relaxed);
    // One word carries the region's sequence number and its participant count, so a worker can
    // never pair one region's count with another's (a slow non-participant may still be reading).
    ++sequence_;
    generation_.store((sequence_ << 16) | static_cast<uint64_t>(threads - 1), std::memory_order_release);
    {
      std::lock_guard<std::mutex> lock(m_);  // a worker between its check and its wait sees the change
    }
    wake_.notify_all();
    work();
    const int want = threads - 1;
    if (!spin_until([&] { return finished_.load(std::memory_order_acquire) == want; })) {
      std::unique_lock<std::mutex> lock(m_);
      done_.wait(lock, [&] { return finished_.load(std::memory_order_acquire) == want; });
    }
    fn_ = nullptr;
    std::exception_ptr error;
    {
      std::lock_guard<std::mutex> lock(m_);
      error = error_;
    }
    if (error) std::rethrow_exception(error);
  }

 private:
  // Workers and the caller spin briefly before sleeping: a kernel call takes 0.05-1 ms and comes
  // in long runs (one per layer per token), so a condition-variable wake-up (10-30 us on a VM)
  // would cost more than the work it splits. ~100 us of spinning covers the gap between calls.
  static constexpr int kSpinIterations = 2000;

  template <class Pred>
  static bool spin_until(Pred ready) {
    for (int i = 0; i < kSpinIterations; ++i) {
      if (ready()) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#else
      std::this_thread::yield();
#endif
    }
    return ready();
  }

  ThreadPool() : owner_pid_(getpid()) {}

  void work() {
    for (;;) {
      int64_t t = next_.fetch_add(1, std::memory_order_relaxed);
      if (t >= n_tasks_) return;
      try {
        (*fn_)(t);
      } catch (...) {
        std::lock_guard<std::mutex> lock(m_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  void worker_loop(int index, uint64_t seen) {
    bool hot = false;  // took part in the last region: likely to be needed again at once
    for (;;) {
      auto changed = [&] { return generation_.load(std::memory_order_acquire) != seen; };
      // Only a worker of the last region spins; one left out sleeps at once, so that after a call
      // on many threads the next calls on few do not pay for the others spinning.
      if (!hot || !spin_until(changed)) {
        std::unique_lock<std::mutex> lock(m_);
        wake_.wait(lock, changed);
      }
      seen = generation_.load(std::memory_order_acquire);
      hot = index < static_cast<int>(seen & 0xFFFF);
      if (!hot) continue;
      work();
      finished_.fetch_add(1, std::memory_order_acq_rel);
      {
        std::lock_guard<std::mutex> lock(m_);  // pairs with the caller's check-then-wait
      }
      done_.notify_one();
    }
  }

  void ensure_workers(int n) {
    while (static_cast<int>(workers_.size()) < n) {
      int index = static_cast<int>(workers_.size());
      uint64_t current = generation_.load(std::memory_order_relaxed);
      workers_.emplace_back([this, index, current] { worker_loop(index, current); });
    }
  }

  // A forked child inherits the pool's bookkeeping but not its threads.
  void forget_workers_after_fork() {
    if (getpid() == owner_pid_) return;
    for (auto& w : workers_) w.detach();
    workers_.clear();
    owner_pid_ = getpid();
  }

  std::mutex region_mutex_;
  std::mutex m_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t n_tasks_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int> finished_{0};
  std::atomic<uint64_t> generation_{0};  // (sequence_ << 16) | participants of the current region
  uint64_t sequence_ = 0;                // written only by the region owner
  std::exception_ptr error_;
  pid_t owner_pid_;
};

inline void parallel_for(int64_t n_tasks, int threads, const std::function<void(int64_t)>& fn) {
  ThreadPool::instance().run(n_tasks, threads, fn);
}

// Splits [0, n) into contiguous chunks of at least `min_chunk` items, about `per_thread`
// chunks per thread (more chunks than threads balances uneven cores on shared machines).
inline void parallel_range(int64_t n, int threads, int64_t min_chunk,
                           const std::function<void(int64_t, int64_t)>& fn,
                           int per_thread = 4) {
  if (n <= 0) return;
  if (min_chunk < 1) min_chunk = 1;
  int64_t chunks = threads <= 1 ? 1 : static_cast<int64_t>(threads) * per_thread;
  int64_t by_size = (n + min_chunk - 1) / min_chunk;
  if (chunks > by_size) chunks = by_size;
  if (chunks < 1) chunks = 1;
  int64_t step = (n + chunks - 1) / chunks;
  chunks = (n + step - 1) / step;
  parallel_for(chunks, threads, [&](int64_t c) {
    int64_t lo = c * step;
    int64_t hi = lo + step < n ? lo + step : n;
    fn(lo, hi);
  });
}

}  // namespace frugalnn
