//! The same readings through sysinfo.
use std::time::{Duration, Instant};
use sysinfo::{Disks, ProcessRefreshKind, ProcessesToUpdate, System};

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode == "bench" {
        let n: u32 = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(100);
        // What a daemon would keep between cycles: one System, refreshed.
        let mut sys = System::new();
        let mut disks = Disks::new();
        let t = Instant::now();
        let mut procs = 0;
        for _ in 0..n {
            sys.refresh_cpu_usage();
            sys.refresh_memory();
            disks.refresh(true);
            let _ = System::load_average();
            sys.refresh_processes_specifics(ProcessesToUpdate::All, true, ProcessRefreshKind::everything());
            procs += sys.processes().len();
        }
        let per = t.elapsed() / n;
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let rss: Vec<&str> = status
            .lines()
            .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
            .collect();
        println!(
            "si: {n} readings, {per:?} each, {} procs avg, {rss:?}",
            procs / n as usize
        );
        return;
    }
    let mut sys = System::new_all();
    std::thread::sleep(Duration::from_millis(500));
    sys.refresh_cpu_usage();
    let disks = Disks::new_with_refreshed_list();
    println!("cpu count {} usage {:.2}%", sys.cpus().len(), sys.global_cpu_usage());
    println!(
        "mem total {} free {} available {} used {} (KiB: total {} used {} free {} avail {})",
        sys.total_memory(),
        sys.free_memory(),
        sys.available_memory(),
        sys.used_memory(),
        sys.total_memory() / 1024,
        sys.used_memory() / 1024,
        sys.free_memory() / 1024,
        sys.available_memory() / 1024
    );
    println!("swap total {} used {}", sys.total_swap(), sys.used_swap());
    let l = System::load_average();
    println!("load {} {} {}", l.one, l.five, l.fifteen);
    for d in disks.list() {
        println!(
            "disk {} {:?} total {} avail {} used {}",
            d.mount_point().display(),
            d.file_system(),
            d.total_space() / 1024,
            d.available_space() / 1024,
            (d.total_space() - d.available_space()) / 1024
        );
    }
    let kinds = sys
        .processes()
        .values()
        .fold((0, 0, 0), |(a, b, c), p| match p.thread_kind() {
            None => (a + 1, b, c),
            Some(sysinfo::ThreadKind::Userland) => (a, b + 1, c),
            Some(_) => (a, b, c + 1),
        });
    println!("kinds process/userland-thread/kernel-thread {kinds:?}");
    println!(
        "procs {} (without threads: {})",
        sys.processes().len(),
        sys.processes().values().filter(|p| p.thread_kind().is_none()).count()
    );
    for (pid, p) in sys.processes() {
        if pid.as_u32() == 1 || pid.as_u32() == std::process::id() {
            println!(
                "proc {} {:?} rss_kib {} user {:?}",
                pid,
                p.name(),
                p.memory() / 1024,
                p.user_id()
            );
        }
    }
}
