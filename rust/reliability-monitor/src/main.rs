//! `reliability-monitor`: see the library for what it does.

/// jemalloc with one arena and a small per-thread cache: the daemon makes some thousands
/// of small allocations a cycle on a dozen threads (results, messages, HTTP exchanges).
/// Against musl's allocator, with 90 checks: CPU per cycle 16% lower, RSS about 1 MiB
/// higher, still under Monit's. jemalloc's default thread cache took RSS to 10.7 MiB.
/// Every option measured is in ARCHITECTURE.md ("jemalloc").
#[cfg(all(target_arch = "x86_64", target_env = "musl"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc reads its options from this symbol at its first allocation (and then from
/// `_RJEM_MALLOC_CONF` in the environment, which overrides it).
#[cfg(all(target_arch = "x86_64", target_env = "musl"))]
#[allow(non_upper_case_globals, unsafe_code)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: Option<&'static std::ffi::CStr> = Some(c"narenas:1,tcache_max:1024,tcache_nslots_small_max:16");

fn main() {
    let code = reliability_monitor::cli::run(std::env::args_os(), &mut std::io::stdout(), &mut std::io::stderr());
    #[allow(clippy::exit)] // The one exit of the program: main -> run -> exit code.
    std::process::exit(code)
}
